package monitoring

import (
	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

// The queries select by metric name, never by job: job names differ between make run (xds,
// extauthz, keystore, envoy) and a cluster's ServiceMonitors. Envoy's admin listener has its own
// connection manager stats, hence edge.
const (
	edge     = `envoy_http_conn_manager_prefix="edge"`
	rate     = `[$__rate_interval]`
	redisDur = `{__name__=~"keygate_(extauthz|keystore)_redis_command_duration_seconds_bucket", command!="xread"}`
)

// rows are the dashboard's rows and panels, in order.
func rows() []row {
	return []row{requests(), cache(), redis(), xds(), logins()}
}

func requests() row {
	return row{"Requests", panels(
		graph("Requests through the edge", "Requests Envoy answered, by status class.", "reqps",
			query{`sum by (envoy_response_code_class) (rate(envoy_http_downstream_rq_xx{` + edge + `}` + rate + `))`, "{{envoy_response_code_class}}xx"}),
		graph("Checks by result and target kind", "extauthz's decisions: ok, unauthenticated (401), forbidden (403), error (503/500).", "reqps",
			query{`sum by (result, target_kind) (rate(keygate_extauthz_checks_total` + rate + `))`, "{{result}} {{target_kind}}"}),
		graph("Denials by reason", "Why checks were refused: no_key, unknown_key, disabled, expired, scope, unparsed, user_*, store_unavailable, misconfigured.", "reqps",
			query{`sum by (reason) (rate(keygate_extauthz_denials_total` + rate + `))`, "{{reason}}"}),
		graph("Check latency", "Time extauthz takes to answer Envoy.", "s",
			query{`histogram_quantile(0.5, sum by (le) (rate(keygate_extauthz_check_duration_seconds_bucket` + rate + `)))`, "p50"},
			query{`histogram_quantile(0.99, sum by (le) (rate(keygate_extauthz_check_duration_seconds_bucket` + rate + `)))`, "p99"}),
		single("Edge 5xx ratio", "Share of requests Envoy answered with 5xx (extauthz or an upstream down).", "percentunit",
			query{`sum(rate(envoy_http_downstream_rq_xx{` + edge + `, envoy_response_code_class="5"}` + rate + `)) / clamp_min(sum(rate(envoy_http_downstream_rq_xx{` + edge + `}` + rate + `)), 1e-9)`, "5xx"}),
	)}
}

func cache() row {
	return row{"Key cache and revocation", panels(
		graph("Key cache", "Access-key lookups answered from memory (hit) or Redis (miss); keys dropped by a change (invalidation) or to make room (eviction).", "ops",
			query{`sum by (result) (rate(keygate_extauthz_keycache_lookups_total` + rate + `))`, "{{result}}"},
			query{`sum(rate(keygate_extauthz_keycache_invalidations_total` + rate + `))`, "invalidation"},
			query{`sum(rate(keygate_extauthz_keycache_evictions_total` + rate + `))`, "eviction"}),
		graph("Revocation lag", "Age of a key or user change when an extauthz replica dropped what it cached: how long a revoked key could still pass.", "s",
			query{`histogram_quantile(0.99, sum by (le, stream) (rate(keygate_extauthz_revocation_lag_seconds_bucket` + rate + `)))`, "p99 {{stream}}"},
			query{`max by (stream) (rate(keygate_extauthz_revocation_lag_seconds_sum` + rate + `) / rate(keygate_extauthz_revocation_lag_seconds_count` + rate + `))`, "mean {{stream}}"}),
		single("Cached keys", "Access keys held in memory, over all replicas.", "short",
			query{`sum(keygate_extauthz_keycache_keys)`, "keys"}),
		single("Replicas following changes", "extauthz replicas whose key cache follows Redis's change stream (the others read Redis at every check), and of those the ones that refuse unknown keys on their lease, without a read (--digest-lease; 0 for long while live means renewals fail).", "short",
			query{`sum(keygate_extauthz_keycache_live)`, "live"},
			query{`sum(keygate_extauthz_keycache_lease_trusted)`, "on a lease"}),
	)}
}

func redis() row {
	return row{"Redis", panels(
		graph("Redis latency (p99)", "Time Redis took to answer extauthz and keystore, by command (blocking change-stream reads left out).", "s",
			query{`histogram_quantile(0.99, sum by (le, command) (rate(` + redisDur + rate + `)))`, "{{command}}"}),
		graph("Redis errors", "Failed Redis commands by component; checks fail closed (503) while Redis is unreachable.", "ops",
			query{`sum by (__name__) (rate({__name__=~"keygate_(extauthz|keystore)_redis_errors_total"}` + rate + `))`, "{{__name__}}"}),
	)}
}

func xds() row {
	return row{"xDS", panels(
		single("Connected Envoys", "Envoys holding an ADS stream to xds.", "short",
			query{`sum(keygate_xds_connected_envoys)`, "Envoys"}),
		graph("Targets by kind", "Targets in the configuration xds publishes.", "short",
			query{`max by (kind) (keygate_xds_targets)`, "{{kind}}"}),
		graph("Pushes and NACKs", "Responses sent to Envoys and configurations Envoy refused, by resource type.", "ops",
			query{`sum by (type) (rate(keygate_xds_pushes_total` + rate + `))`, "push {{type}}"},
			query{`sum by (type) (rate(keygate_xds_nacks_total` + rate + `))`, "NACK {{type}}"}),
		graph("Configuration reloads", "Source changes by result: applied, unchanged, invalid (unreadable), rejected (not translatable).", "ops",
			query{`sum by (result) (rate(keygate_xds_config_reloads_total` + rate + `))`, "{{result}}"}),
	)}
}

func logins() row {
	return row{"Logins and certificates", panels(
		graph("Logins by result", "Password logins at /auth/password/login: ok, invalid, limited (429), bad_request, error.", "ops",
			query{`sum by (result) (rate(keygate_keystore_logins_total` + rate + `))`, "{{result}}"}),
		graph("Certificate expiry", "Time left on each certificate keygate's servers present, and on Envoy's.", "s",
			query{`min by (job, cert) (keygate_certificate_expiry_timestamp_seconds) - time()`, "{{job}} {{cert}}"},
			query{`min(envoy_server_days_until_first_cert_expiring) * 86400`, "Envoy"}),
	)}
}

func panels(ps ...cog.Builder[dashboard.Panel]) []cog.Builder[dashboard.Panel] { return ps }
