// The event hooks Envoy looks up when it loads an HTTP filter module. Only the request
// headers reach Go (kcCheck): every other hook is a no-op here, in C, so that a request costs
// one call into the Go runtime rather than one per hook (a filter, its headers and body both
// ways, its completion and its destruction); unless the filter is named go_hooks_name. Hooks this filter never triggers (callouts,
// streams, schedulers) exist only because Envoy 1.40 requires them to load the module.
#include "envoyabi.h"
#include "_cgo_export.h"

// ENVOY_DYNAMIC_MODULES_ABI_VERSION of Envoy 1.40. Envoy only warns when it differs.
const char* envoy_dynamic_module_on_program_init(void) { return "v0.2.0"; }

#include <stdlib.h>
#include <string.h>

// kc_config is one filter configuration: its table in Go (kcNewConfig's number: C may not keep
// pointers to Go memory), and whether the filter's hooks all call into Go.
typedef struct {
  uintptr_t table;
  bool go_hooks;
} kc_config;

// go_hooks_name is the filter name that makes every hook call into Go, as Envoy's Go SDK does
// (one Go object per request, looked up at each hook): what a module written with the SDK would
// cost at least, beside this one's single call into Go per request.
static const char go_hooks_name[] = "keycheck-go-hooks";

// A filter's pointer is its kc_config (aligned, so even), or with go_hooks a number from
// kcFilterNew, which is odd.
#define KC_GO(m) ((((uintptr_t)(m)) & 1) != 0)

const void* envoy_dynamic_module_on_http_filter_config_new(void* config_envoy_ptr, kc_buffer name,
                                                           kc_buffer config) {
  uintptr_t table = kcNewConfig((char*)config.ptr, config.length);
  if (table == 0) {
    return NULL; // Envoy refuses the configuration
  }
  kc_config* c = malloc(sizeof *c);
  c->table = table;
  c->go_hooks = name.length == strlen(go_hooks_name) && memcmp(name.ptr, go_hooks_name, name.length) == 0;
  return c;
}

void envoy_dynamic_module_on_http_filter_config_destroy(const void* config_module_ptr) {
  const kc_config* c = config_module_ptr;
  kcDestroyConfig(c->table);
  free((void*)c);
}

// Without go_hooks a filter keeps no state of its own: it is its configuration.
const void* envoy_dynamic_module_on_http_filter_new(const void* config_module_ptr,
                                                    void* filter_envoy_ptr) {
  const kc_config* c = config_module_ptr;
  if (c->go_hooks) {
    return (const void*)kcFilterNew(c->table);
  }
  return c;
}

int envoy_dynamic_module_on_http_filter_request_headers(void* filter_envoy_ptr,
                                                        const void* filter_module_ptr,
                                                        bool end_of_stream) {
  if (KC_GO(filter_module_ptr)) {
    return kcFilterRequestHeaders(filter_envoy_ptr, (uintptr_t)filter_module_ptr);
  }
  return kcCheck(filter_envoy_ptr, ((const kc_config*)filter_module_ptr)->table);
}

// The hooks a request reaches besides its headers: a no-op, or a call into Go with go_hooks.
static int hook(const void* m) { return KC_GO(m) ? kcFilterHook((uintptr_t)m) : 0; }

int envoy_dynamic_module_on_http_filter_request_body(void* f, const void* m, bool eos) { return hook(m); }
int envoy_dynamic_module_on_http_filter_request_trailers(void* f, const void* m) { return hook(m); }
int envoy_dynamic_module_on_http_filter_response_headers(void* f, const void* m, bool eos) { return hook(m); }
int envoy_dynamic_module_on_http_filter_response_body(void* f, const void* m, bool eos) { return hook(m); }
int envoy_dynamic_module_on_http_filter_response_trailers(void* f, const void* m) { return hook(m); }
void envoy_dynamic_module_on_http_filter_stream_complete(void* f, const void* m) { hook(m); }

void envoy_dynamic_module_on_http_filter_destroy(const void* m) {
  if (KC_GO(m)) {
    kcFilterDestroy((uintptr_t)m);
  }
}

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
