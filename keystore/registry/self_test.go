package registry

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/crypto/bcrypt"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apiserver/pkg/authentication/user"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"

	"github.com/keygate-dev/keygate/internal/redisserver"
	"github.com/keygate-dev/keygate/keystore/accesskey"
	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
	"github.com/keygate-dev/keygate/keystore/store"
	"github.com/keygate-dev/keygate/keystore/teams"
	"github.com/keygate-dev/keygate/keystore/users"
)

var (
	keys     *store.Store
	people   *users.Store
	teamRecs *teams.Store
)

func TestMain(m *testing.M) {
	redisserver.TestMain(m, "keystore/registry", redisserver.Options{}, func(srv *redisserver.Server) {
		rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
		keys = store.New(rdb)
		people = users.New(rdb, users.Options{Cost: bcrypt.MinCost})
		teamRecs = teams.New(rdb)
	})
}

// as is a request context of name with groups, made with the key named key.
func as(name, key string, groups ...string) context.Context {
	u := &user.DefaultInfo{Name: name, Groups: groups, Extra: map[string][]string{AccessKeyExtra: {key}}}
	return genericapirequest.WithUser(context.Background(), u)
}

// The user store as the test sees it: alice is known with groups (and no UID, as users created
// before UIDs), dora is disabled, erin was re-created (UID erin-2).
func testUsers(ctx context.Context, name string) (*UserDetails, error) {
	switch name {
	case "alice":
		return &UserDetails{Info: &v1.UserInfo{EntityInfo: v1.EntityInfo{Name: "alice", Username: "alice", DisplayName: "Alice"}}, Groups: []string{"ops", "dev"}}, nil
	case "dora":
		return &UserDetails{Info: &v1.UserInfo{EntityInfo: v1.EntityInfo{Name: "dora"}}, Disabled: true}, nil
	case "erin":
		return &UserDetails{Info: &v1.UserInfo{EntityInfo: v1.EntityInfo{Name: "erin"}}, UID: "erin-2"}, nil
	}
	return nil, nil
}

func createKey(t *testing.T, name string, spec v1.OwnedAccessKeySpec, created time.Time, ownerUID ...string) string {
	t.Helper()
	name = fmt.Sprintf("%s-%d", name, time.Now().UnixNano())
	k := &v1.OwnedAccessKey{ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: metav1.NewTime(created)}, Spec: spec}
	for _, uid := range ownerUID {
		accesskey.SetOwnerUID(k, uid)
	}
	plain, err := keys.Create(context.Background(), k)
	if err != nil {
		t.Fatal(err)
	}
	return plain
}

func selfOf(t *testing.T, ctx context.Context, accessKey string) (*v1.Self, error) {
	t.Helper()
	s := NewSelves(keys, Options{AdminGroup: "admins"}, testUsers)
	obj, err := s.Create(ctx, &v1.Self{Spec: v1.SelfSpec{AccessKey: accessKey}}, nil, &metav1.CreateOptions{})
	if err != nil {
		return nil, err
	}
	return obj.(*v1.Self), nil
}

func TestSelfDescribesTheCaller(t *testing.T) {
	name := fmt.Sprintf("self-caller-%d", time.Now().UnixNano())
	if _, err := keys.Create(context.Background(), &v1.OwnedAccessKey{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1.OwnedAccessKeySpec{User: "alice", Type: v1.AccessKeyTypeUser}}); err != nil {
		t.Fatal(err)
	}
	self, err := selfOf(t, as("alice", name, "dev", "system:authenticated"), "")
	if err != nil {
		t.Fatal(err)
	}
	st := self.Status
	if st.User == nil || st.User.DisplayName != "Alice" || st.Subject != "alice" || st.AccessKey != name || st.AccessKeyType != v1.AccessKeyTypeUser {
		t.Errorf("status = %+v", st)
	}
	if !slices.Equal(st.Groups, []string{"dev", "system:authenticated"}) {
		t.Errorf("groups = %v, want the request's", st.Groups)
	}
}

// Loft's CLI sends a saved plain key in spec.accessKey to learn whether it still works and whose
// it is.
func TestSelfDescribesAnotherKey(t *testing.T) {
	scope := &v1.AccessKeyScope{Clusters: []v1.AccessKeyScopeCluster{{Cluster: "demo"}}}
	plain := createKey(t, "self-other", v1.OwnedAccessKeySpec{User: "alice", Groups: []string{"dev", "qa"}, Scope: scope, Type: v1.AccessKeyTypeOther}, time.Now())
	// Asked by someone else entirely: knowing the key is what counts.
	self, err := selfOf(t, as("bob", "bobs-key"), plain)
	if err != nil {
		t.Fatal(err)
	}
	st := self.Status
	if st.Subject != "alice" || st.User == nil || st.User.Name != "alice" || !strings.HasPrefix(st.AccessKey, "self-other-") || st.AccessKeyType != v1.AccessKeyTypeOther {
		t.Errorf("status = %+v, want alice's key", st)
	}
	if st.AccessKeyScope == nil || len(st.AccessKeyScope.Clusters) != 1 {
		t.Errorf("scope = %+v", st.AccessKeyScope)
	}
	if want := []string{"dev", "ops", "loft:user:alice", "system:authenticated"}; !slices.Equal(st.Groups, want) {
		t.Errorf("groups = %v, want %v (the key's that the user has, the user's, then the edge's)", st.Groups, want)
	}
	if self.Spec.AccessKey != "" {
		t.Error("the plain key is echoed in the response")
	}

	team := createKey(t, "self-team", v1.OwnedAccessKeySpec{Team: "platform"}, time.Now())
	self, err = selfOf(t, as("bob", "bobs-key"), team)
	if err != nil {
		t.Fatal(err)
	}
	if self.Status.Team == nil || self.Status.Team.Name != "platform" || self.Status.User != nil {
		t.Errorf("team key: status = %+v", self.Status)
	}
}

func TestSelfRefusesUnusableKeys(t *testing.T) {
	tests := map[string]string{
		"unknown":                            "kgk_" + strings.Repeat("x", 43),
		"disabled":                           createKey(t, "self-disabled", v1.OwnedAccessKeySpec{User: "alice", Disabled: true}, time.Now()),
		"expired":                            createKey(t, "self-expired", v1.OwnedAccessKeySpec{User: "alice", TTL: 60}, time.Now().Add(-time.Hour)),
		"disabled user":                      createKey(t, "self-dora", v1.OwnedAccessKeySpec{User: "dora"}, time.Now()),
		"deleted user":                       createKey(t, "self-gone", v1.OwnedAccessKeySpec{User: "gone"}, time.Now(), "gone-1"),
		"re-created user":                    createKey(t, "self-erin", v1.OwnedAccessKeySpec{User: "erin"}, time.Now(), "erin-1"),
		"external identity now a store user": createKey(t, "self-erin-ext", v1.OwnedAccessKeySpec{User: "erin"}, time.Now()),
		"a key's name":                       "self-caller",
		"whitespace key":                     "   ",
	}
	for name, plain := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := selfOf(t, as("alice", "k"), plain)
			if !apierrors.IsInvalid(err) {
				t.Fatalf("err = %v, want 422 Invalid", err)
			}
			st := err.(apierrors.APIStatus).Status()
			if len(st.Details.Causes) != 1 || st.Details.Causes[0].Field != "spec.accessKey" {
				t.Errorf("causes = %+v, want one naming spec.accessKey", st.Details.Causes)
			}
			if strings.TrimSpace(plain) != "" && strings.Contains(st.Message, plain) {
				t.Errorf("the message echoes the key: %s", st.Message)
			}
		})
	}
}
