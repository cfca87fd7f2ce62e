// Package accesskey is what an access key means, whoever asks: when it stops working, who it
// acts as and which groups it carries. extauthz judges every request with it; keystore answers
// `selves` with it. Pure: no I/O, no clock.
package accesskey

import (
	"slices"
	"time"

	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
)

// Expiry is when k stops working: ttl seconds after its creation, or after its last activity
// (or creation) with ttlAfterLastActivity. maxTTL, the operator's cap (0: none), caps the ttl
// and gives keys without one an expiry. ok is false for a key that never expires.
func Expiry(k *v1.OwnedAccessKey, maxTTL time.Duration) (t time.Time, ok bool) {
	ttl := time.Duration(k.Spec.TTL) * time.Second
	if k.Spec.TTL > 0 && ttl/time.Second != time.Duration(k.Spec.TTL) {
		ttl = 1<<63 - 1 // overflow: as good as never, but still capped below
	}
	if maxTTL > 0 && (ttl <= 0 || ttl > maxTTL) {
		ttl = maxTTL
	}
	if ttl <= 0 {
		return time.Time{}, false
	}
	from := k.CreationTimestamp.Time
	if k.Spec.TTLAfterLastActivity && k.Status.LastActivity != nil && k.Status.LastActivity.After(from) {
		from = k.Status.LastActivity.Time
	}
	if from.IsZero() {
		// A key without a creation time cannot be aged; treat it as expired rather than eternal.
		return time.Time{}, true
	}
	return from.Add(ttl), true
}

// Expired reports whether k has expired at now under the operator's cap maxTTL.
func Expired(k *v1.OwnedAccessKey, now time.Time, maxTTL time.Duration) bool {
	exp, ok := Expiry(k, maxTTL)
	return ok && !now.Before(exp)
}

// User is who a key acts as: its user, or loft:team:<team> for a team key.
func User(k *v1.OwnedAccessKey) string {
	if k.Spec.User != "" {
		return k.Spec.User
	}
	if k.Spec.Team != "" {
		return "loft:team:" + k.Spec.Team
	}
	return ""
}

// Groups are the key's groups, the user's groups (from the user store), then loft:user:<user>
// (or loft:team:<team>) and system:authenticated, without duplicates, in that order.
func Groups(k *v1.OwnedAccessKey, userGroups []string) []string {
	n := len(k.Spec.Groups) + len(userGroups) + 2
	out := make([]string, 0, n)
	// extauthz computes this for every request: a handful of groups is searched faster than a
	// map is built; many are not.
	var seen map[string]bool
	if n > 16 {
		seen = make(map[string]bool, n)
	}
	add := func(g string) {
		if g == "" {
			return
		}
		if seen != nil {
			if seen[g] {
				return
			}
			seen[g] = true
		} else if slices.Contains(out, g) {
			return
		}
		out = append(out, g)
	}
	for _, g := range k.Spec.Groups {
		add(g)
	}
	for _, g := range userGroups {
		add(g)
	}
	switch {
	case k.Spec.User != "":
		add("loft:user:" + k.Spec.User)
	case k.Spec.Team != "":
		add("loft:team:" + k.Spec.Team)
	}
	add("system:authenticated")
	return out
}

// FromSSO reports whether k was made by a single sign-on login: only keystore sets
// spec.identity.connectorData (the identity provider's sealed refresh token), and no API
// client can.
func FromSSO(k *v1.OwnedAccessKey) bool {
	return k.Spec.Identity != nil && len(k.Spec.Identity.ConnectorData) > 0
}

// RedactConnectorData removes spec.identity.connectorData from k, for every answer of every
// API and command: it is a credential for the identity provider (sealed, but never anyone's
// to hold). k is changed in place and returned.
func RedactConnectorData(k *v1.OwnedAccessKey) *v1.OwnedAccessKey {
	if k != nil && k.Spec.Identity != nil {
		k.Spec.Identity.ConnectorData = nil
	}
	return k
}
