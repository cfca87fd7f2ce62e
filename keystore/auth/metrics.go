package auth

import "github.com/prometheus/client_golang/prometheus"

// Result labels of keygate_keystore_logins_total.
const (
	LoginOK         = "ok"          // a key was issued
	LoginInvalid    = "invalid"     // wrong password, unknown or disabled user
	LoginLimited    = "limited"     // refused with 429: too many recent failures
	LoginBadRequest = "bad_request" // not a well-formed login request (400, 405, 413, 415)
	LoginError      = "error"       // the user or key store failed (503) or a bug (500)
)

// Method labels of keygate_keystore_logins_total.
const (
	MethodPassword = "password" // POST /auth/password/login and the login page's form
	MethodOIDC     = "oidc"     // POST /auth/oidc/login: the CLI's code from the browser
)

// Result labels of keygate_keystore_logouts_total.
const (
	LogoutOK              = "ok"              // the login key was deleted
	LogoutUnauthenticated = "unauthenticated" // no, unknown or disabled key (401)
	LogoutForbidden       = "forbidden"       // not a login key (403)
	LogoutBadRequest      = "bad_request"     // wrong method (405)
	LogoutError           = "error"           // the key store failed (503)
)

type metrics struct {
	logins  *prometheus.CounterVec
	logouts *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "keygate", Subsystem: "keystore", Name: "logins_total",
			Help: "Logins that issue a Login key, by method (password: /auth/password/login and the login page; oidc: /auth/oidc/login) and result (ok, invalid, limited, bad_request, error).",
		}, []string{"method", "result"}),
		logouts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "keygate", Subsystem: "keystore", Name: "logouts_total",
			Help: "Logouts at /auth/logout by result (ok, unauthenticated, forbidden, bad_request, error).",
		}, []string{"result"}),
	}
	// Every series exists from the start, at 0, so that rate() and alerts on e.g. "limited"
	// work before the first such event.
	for _, method := range []string{MethodPassword, MethodOIDC} {
		for _, r := range []string{LoginOK, LoginInvalid, LoginLimited, LoginBadRequest, LoginError} {
			m.logins.WithLabelValues(method, r)
		}
	}
	for _, r := range []string{LogoutOK, LogoutUnauthenticated, LogoutForbidden, LogoutBadRequest, LogoutError} {
		m.logouts.WithLabelValues(r)
	}
	if reg != nil {
		// Register, not MustRegister: a second handler on one registry is a configuration
		// error for New to return, not a panic.
		if err := reg.Register(m.logins); err != nil {
			return nil, err
		}
		if err := reg.Register(m.logouts); err != nil {
			reg.Unregister(m.logins)
			return nil, err
		}
	}
	return m, nil
}
