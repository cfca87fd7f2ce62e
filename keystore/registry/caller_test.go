package registry

import (
	"context"
	"errors"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apiserver/pkg/authentication/user"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"

	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
)

func keyOf(user, team string, groups ...string) *v1.OwnedAccessKey {
	return &v1.OwnedAccessKey{Spec: v1.OwnedAccessKeySpec{User: user, Team: team, Groups: groups}}
}

// The ownership matrix: user, other user, team member, team key, admin.
func TestOwnership(t *testing.T) {
	alice := Caller{User: "alice", Teams: []string{"platform"}, Groups: []string{"dev"}}
	bob := Caller{User: "bob", Groups: []string{"dev"}}
	teamKey := Caller{Team: "platform", Groups: []string{"dev"}}
	admin := Caller{User: "root", Admin: true}
	tests := map[string]struct {
		caller  Caller
		key     *v1.OwnedAccessKey
		owns    bool
		mayHold bool
	}{
		"own key":                     {alice, keyOf("alice", ""), true, true},
		"other user's key":            {bob, keyOf("alice", ""), false, false},
		"team member, team key":       {alice, keyOf("", "platform"), true, true},
		"non-member, team key":        {bob, keyOf("", "platform"), false, false},
		"team key, its team's key":    {teamKey, keyOf("", "platform"), true, true},
		"team key, a user's key":      {teamKey, keyOf("alice", ""), false, false},
		"admin, anyone's key":         {admin, keyOf("bob", ""), true, true},
		"admin, any groups":           {admin, keyOf("bob", "", "system:masters"), true, true},
		"own key, own group":          {alice, keyOf("alice", "", "dev"), true, true},
		"own key, group not carried":  {alice, keyOf("alice", "", "ops"), true, false},
		"team key with foreign group": {alice, keyOf("", "platform", "ops"), true, false},
		"ownerless key":               {alice, keyOf("", ""), false, false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := tc.caller.Owns(tc.key); got != tc.owns {
				t.Errorf("Owns = %v, want %v", got, tc.owns)
			}
			why := tc.caller.MayHold(tc.key)
			if (why == "") != tc.mayHold {
				t.Errorf("MayHold = %q, want allowed=%v", why, tc.mayHold)
			}
		})
	}
}

func TestStripKeyFromLastApplied(t *testing.T) {
	const ann = "kubectl.kubernetes.io/last-applied-configuration"
	for name, tc := range map[string]struct{ in, want string }{
		"key removed":   {`{"spec":{"key":"kgk_secret","user":"u"}}`, `{"spec":{"user":"u"}}`},
		"no key":        {`{"spec":{"user":"u"}}`, `{"spec":{"user":"u"}}`},
		"unreadable":    {`{not json kgk_secret`, ""},
		"no annotation": {"", ""},
	} {
		t.Run(name, func(t *testing.T) {
			k := &v1.OwnedAccessKey{}
			if tc.in != "" {
				k.Annotations = map[string]string{ann: tc.in}
			}
			stripKeyFromLastApplied(k)
			if got := k.Annotations[ann]; got != tc.want {
				t.Errorf("annotation = %q, want %q", got, tc.want)
			}
		})
	}
}

// A caller whose teams the store could not read gets 503 (retry), not 401 (the key is bad): a
// Redis failover must not look like a revoked key to the management API's clients.
func TestCallerTeamsUnavailable(t *testing.T) {
	ctx := genericapirequest.WithUser(context.Background(), &user.DefaultInfo{Name: "alice"})
	down := func(context.Context, string) ([]string, error) {
		return nil, errors.New("dial tcp: connection refused")
	}
	_, err := callerFrom(ctx, "admins", down)
	if err = callerError(err); !apierrors.IsServiceUnavailable(err) {
		t.Errorf("teams unreadable: %v; want 503", err)
	}
	if err := callerError(errors.New("no user in the request")); !apierrors.IsUnauthorized(err) {
		t.Errorf("no user: %v; want 401", err)
	}
}
