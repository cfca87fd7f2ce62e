package accesskey

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
)

func TestExpiry(t *testing.T) {
	created := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	key := func(spec v1.OwnedAccessKeySpec, last *time.Time) *v1.OwnedAccessKey {
		k := &v1.OwnedAccessKey{Spec: spec}
		k.CreationTimestamp = metav1.NewTime(created)
		if last != nil {
			t := metav1.NewTime(*last)
			k.Status.LastActivity = &t
		}
		return k
	}
	later := created.Add(time.Hour)
	for _, tc := range []struct {
		name   string
		key    *v1.OwnedAccessKey
		maxTTL time.Duration
		want   time.Time
		wantOK bool
	}{
		{name: "no ttl never expires", key: key(v1.OwnedAccessKeySpec{}, nil)},
		{name: "ttl counts from creation", key: key(v1.OwnedAccessKeySpec{TTL: 60}, &later), want: created.Add(time.Minute), wantOK: true},
		{name: "ttlAfterLastActivity counts from the last use", key: key(v1.OwnedAccessKeySpec{TTL: 60, TTLAfterLastActivity: true}, &later), want: later.Add(time.Minute), wantOK: true},
		{name: "ttlAfterLastActivity without a use counts from creation", key: key(v1.OwnedAccessKeySpec{TTL: 60, TTLAfterLastActivity: true}, nil), want: created.Add(time.Minute), wantOK: true},
		{name: "the operator's cap gives an eternal key an expiry", key: key(v1.OwnedAccessKeySpec{}, nil), maxTTL: time.Hour, want: created.Add(time.Hour), wantOK: true},
		{name: "the operator's cap shortens a longer ttl", key: key(v1.OwnedAccessKeySpec{TTL: 7200}, nil), maxTTL: time.Hour, want: created.Add(time.Hour), wantOK: true},
		{name: "a shorter ttl stays under the cap", key: key(v1.OwnedAccessKeySpec{TTL: 60}, nil), maxTTL: time.Hour, want: created.Add(time.Minute), wantOK: true},
		{name: "an overflowing ttl is still capped", key: key(v1.OwnedAccessKeySpec{TTL: 1 << 62}, nil), maxTTL: time.Hour, want: created.Add(time.Hour), wantOK: true},
		{name: "a key without a creation time is expired", key: &v1.OwnedAccessKey{Spec: v1.OwnedAccessKeySpec{TTL: 60}}, wantOK: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := Expiry(tc.key, tc.maxTTL)
			if ok != tc.wantOK || !got.Equal(tc.want) {
				t.Errorf("Expiry = %v, %v; want %v, %v", got, ok, tc.want, tc.wantOK)
			}
			if tc.wantOK && Expired(tc.key, tc.want.Add(-time.Nanosecond), tc.maxTTL) && !tc.want.IsZero() {
				t.Errorf("Expired just before %v", tc.want)
			}
			if Expired(tc.key, tc.want, tc.maxTTL) != tc.wantOK {
				t.Errorf("Expired at %v = %v, want %v", tc.want, !tc.wantOK, tc.wantOK)
			}
		})
	}
}

func TestUserAndGroups(t *testing.T) {
	for _, tc := range []struct {
		name       string
		spec       v1.OwnedAccessKeySpec
		userGroups []string
		wantUser   string
		wantGroups []string
	}{
		{name: "user key", spec: v1.OwnedAccessKeySpec{User: "alice", Groups: []string{"dev", "system:authenticated", "dev"}}, userGroups: []string{"ops", "dev"},
			wantUser: "alice", wantGroups: []string{"dev", "system:authenticated", "ops", "loft:user:alice"}},
		{name: "team key", spec: v1.OwnedAccessKeySpec{Team: "platform"},
			wantUser: "loft:team:platform", wantGroups: []string{"loft:team:platform", "system:authenticated"}},
		{name: "no owner", spec: v1.OwnedAccessKeySpec{Groups: []string{""}},
			wantUser: "", wantGroups: []string{"system:authenticated"}},
		{name: "many groups", spec: v1.OwnedAccessKeySpec{User: "bob", Groups: []string{"g1", "g2", "g3", "g4", "g5", "g6", "g7", "g8", "g9", "g1", "g2", "g3"}},
			userGroups: []string{"g9", "g10", "g11", "g12", "g13", "g14", "g15", "g16", "", "system:authenticated"}, wantUser: "bob",
			wantGroups: []string{"g1", "g2", "g3", "g4", "g5", "g6", "g7", "g8", "g9", "g10", "g11", "g12", "g13", "g14", "g15", "g16",
				"system:authenticated", "loft:user:bob"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := &v1.OwnedAccessKey{Spec: tc.spec}
			if got := User(k); got != tc.wantUser {
				t.Errorf("User = %q, want %q", got, tc.wantUser)
			}
			if diff := cmp.Diff(tc.wantGroups, Groups(k, tc.userGroups)); diff != "" {
				t.Errorf("Groups (-want +got):\n%s", diff)
			}
		})
	}
}
