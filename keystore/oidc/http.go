package oidc

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"

	httphelper "github.com/zitadel/oidc/v3/pkg/http"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// Paths served besides op's (relative to the issuer).
const (
	tokenPath     = "/oauth/token"
	loggedOutPath = "/logged-out"
)

// serve is op's handler with what it lacks: Cache-Control: no-store on token responses
// (RFC 6749 §5.1), their metrics, and the page end_session lands on without a client's URI.
func (p *Provider) serve(h http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/", h)
	mux.HandleFunc(tokenPath, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Pragma", "no-cache")
		// Parsed here, so that the grant type is known after op has read the body.
		_ = r.ParseForm()
		rec := &recorder{ResponseWriter: w, code: http.StatusOK}
		h.ServeHTTP(rec, r)
		p.metrics.tokens.WithLabelValues(grantLabel(r.PostFormValue("grant_type")), rec.result()).Inc()
	})
	mux.HandleFunc(oidc.DiscoveryEndpoint, p.discovery)
	mux.HandleFunc(loggedOutPath, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("You are signed out of the applications you asked to sign out of.\n"))
	})
	return mux
}

// discovery is op's discovery document without what op advertises but this provider does not
// do: the implicit flow and its response types, the JWT bearer grant, device authorization,
// signed client assertions at the revocation endpoint.
func (p *Provider) discovery(w http.ResponseWriter, r *http.Request) {
	d := op.CreateDiscoveryConfig(op.ContextWithIssuer(r.Context(), p.issuer), p.op, &storage{p})
	d.ResponseTypesSupported = []string{string(oidc.ResponseTypeCode)}
	d.ResponseModesSupported = []string{string(oidc.ResponseModeQuery), string(oidc.ResponseModeFragment), string(oidc.ResponseModeFormPost)}
	d.GrantTypesSupported = []oidc.GrantType{oidc.GrantTypeCode, oidc.GrantTypeRefreshToken}
	d.DeviceAuthorizationEndpoint = ""
	d.RevocationEndpointAuthSigningAlgValuesSupported = nil
	d.IntrospectionEndpointAuthSigningAlgValuesSupported = nil
	httphelper.MarshalJSON(w, d)
}

// grantLabel keeps the metric's grant_type values few: a client may send anything.
func grantLabel(g string) string {
	switch g {
	case "authorization_code", "refresh_token", "client_credentials", "password",
		"urn:ietf:params:oauth:grant-type:jwt-bearer", "urn:ietf:params:oauth:grant-type:token-exchange",
		"urn:ietf:params:oauth:grant-type:device_code":
		return g
	case "":
		return "none"
	}
	return "other"
}

// recorder keeps a token response's status and the start of its body, for its error code.
type recorder struct {
	http.ResponseWriter
	code int
	body bytes.Buffer
}

func (r *recorder) WriteHeader(code int) {
	r.code = code
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.body.Len() < 4096 {
		r.body.Write(b)
	}
	return r.ResponseWriter.Write(b)
}

// result is "ok" or the OAuth error code of the response (RFC 6749 §5.2 names them all).
func (r *recorder) result() string {
	if r.code == http.StatusOK {
		return "ok"
	}
	var e struct {
		Error string `json:"error"`
	}
	_ = json.Unmarshal(r.body.Bytes(), &e)
	switch e.Error {
	case "invalid_request", "invalid_client", "invalid_grant", "unauthorized_client",
		"unsupported_grant_type", "invalid_scope", "server_error":
		return e.Error
	}
	return "error_" + strings.TrimSpace(http.StatusText(r.code))
}
