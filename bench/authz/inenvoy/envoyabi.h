// The few declarations of Envoy's dynamic-module C ABI (Envoy 1.40,
// source/extensions/dynamic_modules/abi/abi.h, Apache-2.0) that keycheck uses: a
// buffer is a pointer and a length, a header a pair of them, and the three
// callbacks Envoy implements for reading and changing request headers and for
// answering locally. Written against the header rather than copied from it: the
// ABI is not stable between Envoy versions, so these must be checked again when
// Envoy is upgraded (the bench's test fails at once if they no longer match).
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
  const char* ptr;
  size_t length;
} kc_buffer;

typedef struct {
  const char* key_ptr;
  size_t key_length;
  const char* value_ptr;
  size_t value_length;
} kc_header;

// envoy_dynamic_module_type_http_header_type_RequestHeader.
enum { kc_request_header = 0 };

// envoy_dynamic_module_type_on_http_filter_request_headers_status.
enum { kc_continue = 0, kc_stop_iteration = 1 };

bool envoy_dynamic_module_callback_http_get_header(void* filter_envoy_ptr, int header_type,
                                                   kc_buffer key, kc_buffer* result,
                                                   size_t index, size_t* optional_size);

bool envoy_dynamic_module_callback_http_set_header(void* filter_envoy_ptr, int header_type,
                                                   kc_buffer key, kc_buffer value);

void envoy_dynamic_module_callback_http_send_response(void* filter_envoy_ptr, uint32_t status_code,
                                                      kc_header* headers, size_t headers_size,
                                                      kc_buffer body, kc_buffer details);

// Helpers in hooks.c, called from Go.
kc_buffer kc_authorization(void* filter_envoy_ptr);
void kc_allow(void* filter_envoy_ptr);
void kc_deny(void* filter_envoy_ptr, uint32_t status_code);
