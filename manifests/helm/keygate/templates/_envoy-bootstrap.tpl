{{/* Envoy's bootstrap: the same as envoy/bootstrap.yaml renders for `make run` (package envoy,
with TLS), pointing at the xds and extauthz Services, plus a listener that serves health and
Prometheus stats from the admin interface, which stays on loopback. manifests' tests check that it
matches package envoy's rendering and that the real Envoy accepts it. */}}
{{- define "keygate.envoyBootstrap" -}}
{{- $xds := dict "root" . "component" "xds" -}}
{{- $extauthz := dict "root" . "component" "extauthz" -}}
node:
  id: "keygate-envoy"
  cluster: keygate-edge
admin:
  address:
    socket_address: {address: "127.0.0.1", port_value: 9901}
dynamic_resources:
  ads_config:
    api_type: DELTA_GRPC
    transport_api_version: V3
    grpc_services:
      - envoy_grpc: {cluster_name: xds}
    set_node_on_first_message_only: true
  cds_config:
    resource_api_version: V3
    ads: {}
  lds_config:
    resource_api_version: V3
    ads: {}
static_resources:
  clusters:
    - name: xds
      type: STRICT_DNS
      connect_timeout: 1s
      load_assignment:
        cluster_name: xds
        endpoints:
          - lb_endpoints:
              - endpoint:
                  address:
                    socket_address: {address: {{ include "keygate.host" $xds | quote }}, port_value: {{ .Values.xds.grpcPort }}}
      typed_extension_protocol_options:
        envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
          "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
          explicit_http_config:
            http2_protocol_options:
              connection_keepalive: {interval: 30s, timeout: 30s}
      {{- include "keygate.envoyGrpcTLS" $xds | nindent 6 }}
    - name: extauthz
      type: STRICT_DNS
      connect_timeout: 1s
      load_assignment:
        cluster_name: extauthz
        endpoints:
          - lb_endpoints:
              - endpoint:
                  address:
                    socket_address: {address: {{ include "keygate.host" $extauthz | quote }}, port_value: {{ .Values.extauthz.grpcPort }}}
      typed_extension_protocol_options:
        envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
          "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
          explicit_http_config:
            http2_protocol_options:
              connection_keepalive: {interval: 30s, timeout: 5s}
      circuit_breakers:
        thresholds:
          - {priority: DEFAULT, max_connections: 100000, max_pending_requests: 100000, max_requests: 100000, max_retries: 100000}
      # A dead replica leaves at once, the health check brings it back (envoy/bootstrap.yaml).
      outlier_detection:
        consecutive_5xx: 5
        interval: 1s
        base_ejection_time: 10s
        max_ejection_percent: 50
      health_checks:
        - timeout: 1s
          interval: 2s
          # Also before the cluster has carried traffic (default 60 s): checks scheduled at start-up would wait that long.
          no_traffic_interval: 2s
          unhealthy_threshold: 2
          healthy_threshold: 1
          grpc_health_check: {}
      {{- include "keygate.envoyGrpcTLS" $extauthz | nindent 6 }}
    # The chart's addition: the admin interface, for the health listener below only.
    - name: admin
      type: STATIC
      connect_timeout: 1s
      load_assignment:
        cluster_name: admin
        endpoints:
          - lb_endpoints:
              - endpoint:
                  address:
                    socket_address: {address: "127.0.0.1", port_value: 9901}
  listeners:
    # Kubelet's probes and Prometheus reach this port; it forwards only /ready (as /readyz)
    # and /stats/prometheus to the admin interface, and answers /healthz itself (the
    # process lives while it answers; readiness waits for xds's first configuration).
    - name: health
      address:
        socket_address: {address: "0.0.0.0", port_value: {{ .Values.envoy.metricsPort }}}
      filter_chains:
        - filters:
            - name: envoy.filters.network.http_connection_manager
              typed_config:
                "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                stat_prefix: health
                http_filters:
                  - name: envoy.filters.http.router
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
                route_config:
                  virtual_hosts:
                    - name: health
                      domains: ["*"]
                      routes:
                        - match: {path: /healthz}
                          direct_response: {status: 200, body: {inline_string: "ok\n"}}
                        - match: {path: /readyz}
                          route: {cluster: admin, prefix_rewrite: /ready}
                        - match: {path: /stats/prometheus}
                          route: {cluster: admin}
                        - match: {prefix: /}
                          direct_response: {status: 404}
overload_manager:
  refresh_interval: 0.25s
  resource_monitors:
    - name: envoy.resource_monitors.global_downstream_max_connections
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig
        max_active_downstream_connections: 50000
    - name: envoy.resource_monitors.fixed_heap
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.resource_monitors.fixed_heap.v3.FixedHeapConfig
        max_heap_size_bytes: {{ int64 .Values.envoy.maxHeapBytes }}
  actions:
    - name: envoy.overload_actions.shrink_heap
      triggers:
        - name: envoy.resource_monitors.fixed_heap
          threshold: {value: 0.95}
    - name: envoy.overload_actions.stop_accepting_requests
      triggers:
        - name: envoy.resource_monitors.fixed_heap
          threshold: {value: 0.98}
{{- end -}}
{{/* A gRPC cluster's mutual TLS (envoy/bootstrap.yaml's "tls"): Envoy presents its client
certificate and verifies the server's against the control plane's CA and the Service's name. */}}
{{- define "keygate.envoyGrpcTLS" -}}
{{- $host := include "keygate.host" . -}}
transport_socket:
  name: envoy.transport_sockets.tls
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
    sni: {{ $host | quote }}
    common_tls_context:
      alpn_protocols: [h2]
      tls_params: {tls_maximum_protocol_version: TLSv1_3}
      tls_certificates:
        - certificate_chain: {filename: "/etc/keygate/grpc/tls.crt"}
          private_key: {filename: "/etc/keygate/grpc/tls.key"}
      validation_context:
        trusted_ca: {filename: "/etc/keygate/grpc/ca.crt"}
        match_typed_subject_alt_names:
          - san_type: DNS
            matcher: {exact: {{ $host | quote }}}
{{- end -}}
