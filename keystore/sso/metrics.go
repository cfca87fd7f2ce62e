package sso

import "github.com/prometheus/client_golang/prometheus"

// Results of keygate_keystore_sso_logins_total.
const (
	resultOK           = "ok"
	resultIdPError     = "idp_error"     // the IdP answered with an error, or refused the code
	resultBadState     = "bad_state"     // state missing, not the browser's, expired or used
	resultInvalidToken = "invalid_token" // the ID token (or its nonce) does not verify
	resultRefused      = "refused"       // the rules refuse the identity (name, allowed groups)
	resultError        = "error"         // the IdP, Redis or the key store cannot answer
	resultLimited      = "limited"       // too many logins started from the client's address
)

// Results of keygate_keystore_sso_identity_refreshes_total.
const (
	refreshOK       = "ok"
	refreshDisabled = "disabled" // the IdP (or the rules) no longer vouch for the key
	refreshError    = "error"    // the IdP or the store could not answer; retried
)

type metrics struct {
	logins    *prometheus.CounterVec
	refreshes *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keygate_keystore_sso_logins_total",
			Help: "Single sign-on logins by connector and result: callbacks (ok, idp_error, bad_state, invalid_token, refused, error) and starts refused (limited, error).",
		}, []string{"connector", "result"}),
		refreshes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keygate_keystore_sso_identity_refreshes_total",
			Help: "Refreshes of single sign-on keys' identities from their identity provider by result (ok, disabled, error).",
		}, []string{"result"}),
	}
	for _, r := range []string{refreshOK, refreshDisabled, refreshError} {
		m.refreshes.WithLabelValues(r)
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.logins, m.refreshes} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

// init makes every result of a connector visible at zero.
func (m *metrics) init(connector string) {
	for _, r := range []string{resultOK, resultIdPError, resultBadState, resultInvalidToken, resultRefused, resultError} {
		m.logins.WithLabelValues(connector, r)
	}
}

func (m *metrics) login(connector, result string) { m.logins.WithLabelValues(connector, result).Inc() }
func (m *metrics) refresh(result string)          { m.refreshes.WithLabelValues(result).Inc() }
