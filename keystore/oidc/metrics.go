package oidc

import (
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	tokens    *prometheus.CounterVec
	refused   *prometheus.CounterVec
	rotations prometheus.Counter
	published prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keygate_keystore_oidc_token_requests_total",
			Help: "Requests to the OIDC token endpoint, by grant type and result (ok, or the OAuth error code).",
		}, []string{"grant_type", "result"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keygate_keystore_oidc_refreshes_refused_total",
			Help: "Refresh tokens refused, by reason.",
		}, []string{"reason"}),
		rotations: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "keygate_keystore_oidc_key_rotations_total",
			Help: "Signing keys this replica made current.",
		}),
		published: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "keygate_keystore_oidc_signing_keys",
			Help: "Signing keys published in the JWKS (the current one and retired ones whose tokens may live).",
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.tokens, m.refused, m.rotations, m.published} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
