package accesskey

import (
	"errors"
	"strings"
)

// Errors for each way a header can be unusable; each is answered with 401.
var (
	ErrMissing   = errors.New(`no access key: send "Authorization: Bearer <access key>"`)
	ErrNotBearer = errors.New(`the Authorization header is not a bearer token: send "Authorization: Bearer <access key>"`)
	ErrEmpty     = errors.New(`the bearer token is empty: send "Authorization: Bearer <access key>"`)
	ErrMalformed = errors.New(`the bearer token is malformed: send exactly one "Authorization: Bearer <access key>"`)
)

// Bearer returns the token of an Authorization header value. Envoy joins repeated headers with
// commas; keys never contain commas or spaces, so either means the header is not one token.
func Bearer(header string) (string, error) {
	if header == "" {
		return "", ErrMissing
	}
	scheme, tok, found := strings.Cut(header, " ")
	if !found || !strings.EqualFold(scheme, "Bearer") {
		return "", ErrNotBearer
	}
	tok = strings.TrimSpace(tok)
	if tok == "" {
		return "", ErrEmpty
	}
	if strings.ContainsAny(tok, ", \t") {
		return "", ErrMalformed
	}
	return tok, nil
}
