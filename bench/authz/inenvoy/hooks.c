// The event hooks Envoy looks up when it loads an HTTP filter module. Only the request
// headers reach Go (kcCheck): every other hook is a no-op here, in C, so that a request costs
// one call into the Go runtime rather than one per hook (a filter, its headers and body both
// ways, its completion and its destruction). Hooks this filter never triggers (callouts,
// streams, schedulers) exist only because Envoy 1.40 requires them to load the module.
#include "envoyabi.h"
#include "_cgo_export.h"

// ENVOY_DYNAMIC_MODULES_ABI_VERSION of Envoy 1.40. Envoy only warns when it differs.
const char* envoy_dynamic_module_on_program_init(void) { return "v0.2.0"; }

// The module's configuration is a number (kcNewConfig), not a pointer to Go memory, which C
// may not keep. 0 (NULL) tells Envoy the configuration was refused.
const void* envoy_dynamic_module_on_http_filter_config_new(void* config_envoy_ptr, kc_buffer name,
                                                           kc_buffer config) {
  return (const void*)kcNewConfig((char*)config.ptr, config.length);
}

void envoy_dynamic_module_on_http_filter_config_destroy(const void* config_module_ptr) {
  kcDestroyConfig((uintptr_t)config_module_ptr);
}

// A filter keeps no state of its own: it is its configuration's number.
const void* envoy_dynamic_module_on_http_filter_new(const void* config_module_ptr,
                                                    void* filter_envoy_ptr) {
  return config_module_ptr;
}

int envoy_dynamic_module_on_http_filter_request_headers(void* filter_envoy_ptr,
                                                        const void* filter_module_ptr,
                                                        bool end_of_stream) {
  return kcCheck(filter_envoy_ptr, (uintptr_t)filter_module_ptr);
}

int envoy_dynamic_module_on_http_filter_request_body(void* f, const void* m, bool eos) { return 0; }
int envoy_dynamic_module_on_http_filter_request_trailers(void* f, const void* m) { return 0; }
int envoy_dynamic_module_on_http_filter_response_headers(void* f, const void* m, bool eos) { return 0; }
int envoy_dynamic_module_on_http_filter_response_body(void* f, const void* m, bool eos) { return 0; }
int envoy_dynamic_module_on_http_filter_response_trailers(void* f, const void* m) { return 0; }
void envoy_dynamic_module_on_http_filter_stream_complete(void* f, const void* m) {}
void envoy_dynamic_module_on_http_filter_destroy(const void* m) {}
void envoy_dynamic_module_on_http_filter_http_callout_done(void) {}
void envoy_dynamic_module_on_http_filter_http_stream_headers(void) {}
void envoy_dynamic_module_on_http_filter_http_stream_data(void) {}
void envoy_dynamic_module_on_http_filter_http_stream_trailers(void) {}
void envoy_dynamic_module_on_http_filter_http_stream_complete(void) {}
void envoy_dynamic_module_on_http_filter_http_stream_reset(void) {}
void envoy_dynamic_module_on_http_filter_scheduled(void) {}
void envoy_dynamic_module_on_http_filter_downstream_above_write_buffer_high_watermark(void) {}
void envoy_dynamic_module_on_http_filter_downstream_below_write_buffer_low_watermark(void) {}

static kc_buffer kc_string(const char* s) {
  size_t n = 0;
  while (s[n] != 0) n++;
  return (kc_buffer){s, n};
}

kc_buffer kc_authorization(void* filter_envoy_ptr) {
  kc_buffer value = {NULL, 0};
  if (!envoy_dynamic_module_callback_http_get_header(filter_envoy_ptr, kc_request_header,
                                                     kc_string("authorization"), &value, 0, NULL)) {
    value.ptr = NULL;
    value.length = 0;
  }
  return value;
}

// What the bench's do-nothing ext_authz server's OK answer makes Envoy do: name the user, and
// keep the key from the upstream.
void kc_allow(void* filter_envoy_ptr) {
  envoy_dynamic_module_callback_http_set_header(filter_envoy_ptr, kc_request_header,
                                                kc_string("impersonate-user"), kc_string("bench"));
  envoy_dynamic_module_callback_http_set_header(filter_envoy_ptr, kc_request_header,
                                                kc_string("authorization"), (kc_buffer){NULL, 0});
}

void kc_deny(void* filter_envoy_ptr, uint32_t status_code) {
  envoy_dynamic_module_callback_http_send_response(filter_envoy_ptr, status_code, NULL, 0,
                                                   kc_string("denied"), kc_string("keycheck_denied"));
}
