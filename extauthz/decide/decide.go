// Package decide judges a request: given an access key, the target it is for and the time, may
// it pass? Pure: no I/O, no clock, so every rule is a table test.
package decide

import (
	"fmt"
	"time"

	"github.com/keygate-dev/keygate/extauthz/attributes"
	"github.com/keygate-dev/keygate/internal/edgepath"
	"github.com/keygate-dev/keygate/keystore/accesskey"
	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
)

// Outcome is what happens to a request.
type Outcome int

// Outcomes.
const (
	// Allow forwards the request with the key's identity.
	Allow Outcome = iota
	// Unauthenticated refuses it with 401: the key does not work at all.
	Unauthenticated
	// Forbidden refuses it with 403: the key works, but not for this.
	Forbidden
)

func (o Outcome) String() string {
	return [...]string{"allow", "unauthenticated", "forbidden"}[o]
}

// Decision is the verdict with its reasons.
type Decision struct {
	Outcome Outcome
	// Reason is a short machine-readable cause for logs and metrics ("expired", "disabled",
	// "scope").
	Reason string
	// Message is what the client is told. It names only the request's own target.
	Message string
}

// Options are the operator's settings.
type Options struct {
	// MaxTTL caps every key's lifetime, counted like its ttl; 0 means no cap.
	MaxTTL time.Duration
}

// Decide judges a request with key k to target ref, with request attributes a, at time now.
func Decide(k *v1.OwnedAccessKey, ref edgepath.Ref, a attributes.Attributes, now time.Time, opts Options) Decision {
	if k.Spec.Disabled {
		return Decision{Unauthenticated, "disabled", fmt.Sprintf("access key %q is disabled", k.Name)}
	}
	if accesskey.Expired(k, now, opts.MaxTTL) {
		return Decision{Unauthenticated, "expired", fmt.Sprintf("access key %q has expired", k.Name)}
	}
	if ref.Kind == edgepath.KindNone || ref.Kind.Public() {
		// Nothing to reach (Envoy answers 404), or nothing that needs a key.
		return Decision{Outcome: Allow}
	}
	if k.Spec.Type == v1.AccessKeyTypeOIDCRefreshToken {
		// A refresh token of the OIDC provider is an access key only so that it is listed,
		// bounded and revoked like one (keystore/oidc). It is given to a relying party to get
		// tokens from /oidc/, never to act as the user: were it a bearer key here, any client
		// a user signed in to could call every API as them.
		return Decision{Unauthenticated, "refresh token", fmt.Sprintf("access key %q is an OIDC refresh token: it is exchanged at /oidc/ for tokens, and opens nothing else", k.Name)}
	}
	if check, refused := scopeRefuses(k.Spec.Scope, ref, a); refused {
		reason := "scope"
		if !check.Parsed() {
			reason = "unparsed"
		}
		return Decision{Forbidden, reason, fmt.Sprintf("access key %q is not allowed to %s", k.Name, describe(check, ref))}
	}
	return Decision{Outcome: Allow}
}

// describe names what a request does, for a denial: `list pods in namespace "a" on cluster
// "demo"`, `get /version on cluster "demo"`, `access grafana of cluster "demo"`. It names only
// the request's own objects.
func describe(a attributes.Attributes, ref edgepath.Ref) string {
	if !a.Parsed() {
		return "send this request to " + ref.String() + ": its method or path is not one Kubernetes can authorize"
	}
	if !a.ResourceRequest {
		if a.Path == "" || a.Verb == "" {
			return "access " + ref.String()
		}
		return a.Verb + " " + a.Path + " on " + ref.String()
	}
	res := a.Resource
	if a.Subresource != "" {
		res += "/" + a.Subresource
	}
	if a.APIGroup != "" {
		res += "." + a.APIGroup
	}
	s := a.Verb + " " + res
	if a.Name != "" {
		s += fmt.Sprintf(" %q", a.Name)
	}
	if ns := objectNamespace(a); ns != "" {
		s += fmt.Sprintf(" in namespace %q", ns)
	}
	return s + " on " + ref.String()
}
