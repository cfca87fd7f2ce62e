package oidc

import (
	"bytes"
	"context"
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
	mux.HandleFunc(tokenPath, p.token(h))
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

// token serves the token endpoint with op, adding Cache-Control: no-store (RFC 6749 §5.1) and
// the metric, and answering 503 server_error when the store failed: op words every failure to
// read a refresh token or a code as invalid_grant, which tells a client to drop its session, a
// wrong answer to an outage.
func (p *Provider) token(h http.Handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Pragma", "no-cache")
		// Parsed here, so that the grant type is known after op has read the body.
		_ = r.ParseForm()
		fault := new(bool)
		rec := &recorder{header: http.Header{}, code: http.StatusOK}
		h.ServeHTTP(rec, r.WithContext(context.WithValue(r.Context(), faultKey{}, fault)))
		if *fault && rec.code != http.StatusOK {
			rec = &recorder{header: http.Header{"Content-Type": {"application/json"}}, code: http.StatusServiceUnavailable}
			rec.body.WriteString(`{"error":"server_error","error_description":"tokens cannot be issued right now; try again later"}`)
		}
		for k, v := range rec.header {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.code)
		w.Write(rec.body.Bytes())
		p.metrics.tokens.WithLabelValues(grantLabel(r.PostFormValue("grant_type")), rec.result()).Inc()
	}
}

// faultKey marks, in a token request's context, that the store failed (see token).
type faultKey struct{}

// storeFault records that answering the request failed for want of the store.
func storeFault(ctx context.Context) {
	if f, ok := ctx.Value(faultKey{}).(*bool); ok {
		*f = true
	}
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

// recorder keeps a token response (they are small) until it is known to stand.
type recorder struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) WriteHeader(code int)        { r.code = code }
func (r *recorder) Write(b []byte) (int, error) { return r.body.Write(b) }

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
