package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"
	"golang.org/x/crypto/bcrypt"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/keygate-dev/keygate/extauthz/activity"
	"github.com/keygate-dev/keygate/extauthz/decide"
	"github.com/keygate-dev/keygate/extauthz/identity"
	"github.com/keygate-dev/keygate/extauthz/userinfo"
	"github.com/keygate-dev/keygate/internal/edgepath"
	"github.com/keygate-dev/keygate/internal/metricstest"
	"github.com/keygate-dev/keygate/internal/redisserver"
	"github.com/keygate-dev/keygate/keystore/accesskey"
	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
	"github.com/keygate-dev/keygate/keystore/store"
	"github.com/keygate-dev/keygate/keystore/users"
)

var (
	keys *store.Store
	rdb  *redis.Client
)

func TestMain(m *testing.M) {
	redisserver.TestMain(m, "extauthz/server", redisserver.Options{}, func(srv *redisserver.Server) {
		rdb = redis.NewClient(&redis.Options{Addr: srv.Addr})
		keys = store.New(rdb)
	})
}

// serve runs a Server over real gRPC on loopback, with extauthz's gRPC options, and returns a
// client for it (gRPC's own codec).
func serve(t *testing.T, k Keys, opts Options) (authv3.AuthorizationClient, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	s := New(k, opts, slog.New(slog.NewTextHandler(io.Discard, nil)), reg)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(GRPCServerOptions()...) // extauthz's codec: every test's checks go through it
	authv3.RegisterAuthorizationServer(gs, s)
	go func() { _ = gs.Serve(l) }()
	t.Cleanup(gs.Stop)
	conn, err := grpc.NewClient(l.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return authv3.NewAuthorizationClient(conn), reg
}

func check(t *testing.T, c authv3.AuthorizationClient, ref edgepath.Ref, path string, headers map[string]string) *authv3.CheckResponse {
	t.Helper()
	req := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{Method: "GET", Path: path, Headers: headers}},
	}}
	if ref.Kind != "" {
		req.Attributes.ContextExtensions = ref.ContextExtensions()
	}
	resp, err := c.Check(context.Background(), req)
	if err != nil {
		t.Fatalf("Check returned an error instead of a decision: %v", err)
	}
	return resp
}

// newKey creates a key, replacing one of the same name left by an earlier run (go test -count=N
// reuses the package's Redis).
func newKey(t *testing.T, name string, spec v1.OwnedAccessKeySpec, created time.Time) string {
	t.Helper()
	if err := keys.Delete(context.Background(), name); err != nil && !errors.Is(err, store.ErrNotFound) {
		t.Fatal(err)
	}
	k := &v1.OwnedAccessKey{ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: metav1.NewTime(created)}, Spec: spec}
	plain, err := keys.Create(context.Background(), k)
	if err != nil {
		t.Fatal(err)
	}
	return plain
}

func TestCheck(t *testing.T) {
	now := time.Now()
	c, _ := serve(t, keys, Options{})
	valid := newKey(t, "check-valid", v1.OwnedAccessKeySpec{User: "alice", Groups: []string{"dev", "qa"}}, now)
	expired := newKey(t, "check-expired", v1.OwnedAccessKeySpec{User: "bob", TTL: 60}, now.Add(-time.Hour))
	disabled := newKey(t, "check-disabled", v1.OwnedAccessKeySpec{User: "carol", Disabled: true}, now)
	// An OIDC refresh token is stored as a key; a relying party holding one tries it as one.
	refresh := newKey(t, "check-refresh", v1.OwnedAccessKeySpec{User: "erin", Type: v1.AccessKeyTypeOIDCRefreshToken,
		OIDCProvider: &v1.AccessKeyOIDCProvider{ClientID: "argocd", Scopes: "openid offline_access"}}, now)
	scoped := newKey(t, "check-scoped", v1.OwnedAccessKeySpec{User: "dave", Scope: &v1.AccessKeyScope{Clusters: []v1.AccessKeyScopeCluster{{Cluster: "demo"}}}}, now)
	demo := edgepath.Ref{Kind: edgepath.KindCluster, Cluster: "demo"}
	staging := edgepath.Ref{Kind: edgepath.KindCluster, Cluster: "staging"}

	tests := map[string]struct {
		ref     edgepath.Ref
		path    string
		auth    string
		code    int32
		message string
	}{
		"no key":             {demo, "/kubernetes/cluster/demo/api", "", 401, "no access key"},
		"basic auth":         {demo, "/kubernetes/cluster/demo/api", "Basic eDp5", 401, "not a bearer token"},
		"unknown key":        {demo, "/kubernetes/cluster/demo/api", "Bearer kgk_unknownunknownunknownunknownunknown", 401, "invalid access key"},
		"expired key":        {demo, "/kubernetes/cluster/demo/api", "Bearer " + expired, 401, `access key "check-expired" has expired`},
		"disabled key":       {demo, "/kubernetes/cluster/demo/api", "Bearer " + disabled, 401, `access key "check-disabled" is disabled`},
		"OIDC refresh token": {demo, "/kubernetes/cluster/demo/api", "Bearer " + refresh, 401, `access key "check-refresh" is an OIDC refresh token`},
		"out of scope":       {staging, "/kubernetes/cluster/staging/api", "Bearer " + scoped, 403, `access key "check-scoped" is not allowed to get /api on cluster "staging"`},
		"bad route metadata": {edgepath.Ref{Kind: edgepath.KindCluster, Cluster: "Bad_Name"}, "/x", "Bearer " + valid, 500, "misconfigured"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			headers := map[string]string{}
			if tc.auth != "" {
				headers["authorization"] = tc.auth
			}
			resp := check(t, c, tc.ref, tc.path, headers)
			denied := resp.GetDeniedResponse()
			if denied == nil {
				t.Fatalf("allowed; want HTTP %d", tc.code)
			}
			if int32(denied.GetStatus().GetCode()) != tc.code {
				t.Errorf("HTTP %d, want %d", denied.GetStatus().GetCode(), tc.code)
			}
			var s metav1.Status
			if err := json.Unmarshal([]byte(denied.GetBody()), &s); err != nil || s.Kind != "Status" || s.Code != tc.code || !strings.Contains(s.Message, tc.message) {
				t.Errorf("body %s; want a Status with code %d mentioning %q", denied.GetBody(), tc.code, tc.message)
			}
			if strings.Contains(denied.GetBody(), "kgk_") {
				t.Error("the denial echoes the key")
			}
		})
	}

	t.Run("valid key to a cluster", func(t *testing.T) {
		resp := check(t, c, demo, "/kubernetes/cluster/demo/api", map[string]string{
			"authorization":    "Bearer " + valid,
			"impersonate-user": "system:admin",
			"impersonate-uid":  "0",
			"x-remote-user":    "root",
			"x-webauth-user":   "root",
			"accept":           "application/json",
		})
		ok := resp.GetOkResponse()
		if ok == nil {
			t.Fatalf("denied: %s", resp.GetDeniedResponse().GetBody())
		}
		set := map[string]string{}
		for _, h := range ok.GetHeaders() {
			set[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
		}
		if set["Impersonate-User"] != "alice" || set["Impersonate-Extra-Loft-Access-Key"] != "check-valid" {
			t.Errorf("headers set = %v", set)
		}
		removed := ok.GetHeadersToRemove()
		slices.Sort(removed)
		// What the client sent and Envoy passed goes; Grafana's default auth-proxy headers that
		// it did not send are xds's Envoy's to strip (edgepath.StrippedByEdge), as is the
		// target response header (the route adds it).
		want := []string{"authorization", "impersonate-uid", "x-remote-user", "x-webauth-user"}
		if !slices.Equal(removed, want) {
			t.Errorf("headers removed = %v, want %v (impersonate-user is overwritten instead)", removed, want)
		}
		if added := ok.GetResponseHeadersToAdd(); len(added) != 0 {
			t.Errorf("response headers added = %v, want none behind xds's Envoy (its route names the target)", added)
		}
		lists := resp.GetDynamicMetadata().GetFields()[edgepath.MetadataHeaderLists].GetStructValue().GetFields()
		var groups []string
		for _, v := range lists["Impersonate-Group"].GetListValue().GetValues() {
			groups = append(groups, v.GetStringValue())
		}
		if !slices.Equal(groups, []string{"dev", "qa", "loft:user:alice", "system:authenticated"}) {
			t.Errorf("group list in metadata = %v", groups)
		}
	})

	t.Run("no context extensions: every Grafana header goes, and the target is named", func(t *testing.T) {
		resp := check(t, c, edgepath.Ref{}, "/kubernetes/cluster/demo/api", map[string]string{"authorization": "Bearer " + valid})
		ok := resp.GetOkResponse()
		if ok == nil {
			t.Fatalf("denied: %s", resp.GetDeniedResponse().GetBody())
		}
		removed := ok.GetHeadersToRemove()
		slices.Sort(removed)
		// Grafana's auth-proxy headers go whether sent or not: Envoy does not send them to
		// extauthz, and an Envoy our xds does not program may not strip them.
		want := []string{"authorization", "x-webauth-email", "x-webauth-groups", "x-webauth-login", "x-webauth-name", "x-webauth-role", "x-webauth-user"}
		if !slices.Equal(removed, want) {
			t.Errorf("headers removed = %v, want %v", removed, want)
		}
		added := ok.GetResponseHeadersToAdd()
		if len(added) != 1 || added[0].GetHeader().GetKey() != TargetHeader || added[0].GetHeader().GetValue() != "kubernetes/cluster/demo" {
			t.Errorf("response headers added = %v, want %s: kubernetes/cluster/demo", added, TargetHeader)
		}
	})

	t.Run("no context extensions: target from the path", func(t *testing.T) {
		resp := check(t, c, edgepath.Ref{}, "/kubernetes/cluster/staging/api", map[string]string{"authorization": "Bearer " + scoped})
		if d := resp.GetDeniedResponse(); d == nil || d.GetStatus().GetCode() != 403 {
			t.Errorf("scoped key to staging by path: %v, want 403", resp)
		}
	})

	t.Run("no context extensions: one target or refused", func(t *testing.T) {
		admin := map[string]string{"authorization": "Bearer " + valid}
		for path, want := range map[string]int32{
			"/kubernetes/cluster/demo/api":               0,
			"/kubernetes/cluster/demo":                   0,
			"/kubernetes/cluster/demo/../staging/api":    400,
			"//kubernetes/cluster/staging/api":           400,
			"/kubernetes/cluster/demo/%2e%2e/staging/":   400,
			"/kubernetes/cluster/demo%2F..%2Fstaging/":   400,
			"/kubernetes/cluster/Demo/api":               404,
			"/Kubernetes/cluster/demo/api":               404,
			"/nothing-here":                              404,
			"/auth/../kubernetes/cluster/demo/api":       400,
			"/kubernetes/cluster/demo/api?x=/../staging": 0,
		} {
			resp := check(t, c, edgepath.Ref{}, path, admin)
			if got := resp.GetDeniedResponse().GetStatus().GetCode(); int32(got) != want {
				t.Errorf("%s: HTTP %d (0: allowed), want %d: %s", path, got, want, resp.GetDeniedResponse().GetBody())
			}
		}
		// The key comes before the 404, as on the xds-programmed edge: no key learns nothing.
		if got := check(t, c, edgepath.Ref{}, "/nothing-here", nil).GetDeniedResponse().GetStatus().GetCode(); got != 401 {
			t.Errorf("/nothing-here without a key: HTTP %d, want 401", got)
		}
		// Context extensions stay authoritative: the route said which target, whatever the path.
		if resp := check(t, c, demo, "/kubernetes/cluster/demo//api", admin); resp.GetOkResponse() == nil {
			t.Errorf("route with extensions refused: %s", resp.GetDeniedResponse().GetBody())
		}
	})

	t.Run("public target needs no key", func(t *testing.T) {
		if resp := check(t, c, edgepath.Ref{Kind: edgepath.KindAuth}, "/auth/password/login", nil); resp.GetOkResponse() == nil {
			t.Errorf("public route denied: %v", resp)
		}
	})
}

// groupsSent returns the Impersonate-Group values of an OK response, failing on a denial.
func groupsSent(t *testing.T, resp *authv3.CheckResponse) []string {
	t.Helper()
	if resp.GetOkResponse() == nil {
		t.Fatalf("denied: %s", resp.GetDeniedResponse().GetBody())
	}
	lists := resp.GetDynamicMetadata().GetFields()[edgepath.MetadataHeaderLists].GetStructValue().GetFields()
	var groups []string
	for _, v := range lists["Impersonate-Group"].GetListValue().GetValues() {
		groups = append(groups, v.GetStringValue())
	}
	return groups
}

// ownedKey creates a key for the store user u, recording u's UID as keystore does.
func ownedKey(t *testing.T, name string, u *users.User, groups ...string) string {
	t.Helper()
	if err := keys.Delete(context.Background(), name); err != nil && !errors.Is(err, store.ErrNotFound) {
		t.Fatal(err)
	}
	k := &v1.OwnedAccessKey{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1.OwnedAccessKeySpec{User: u.Name, Groups: groups}}
	accesskey.SetOwnerUID(k, u.UID)
	plain, err := keys.Create(context.Background(), k)
	if err != nil {
		t.Fatal(err)
	}
	return plain
}

// storeUsers (re)creates us in the user store and returns them as stored.
func storeUsers(t *testing.T, us *users.Store, list ...users.User) []*users.User {
	t.Helper()
	ctx := context.Background()
	var out []*users.User
	for _, u := range list {
		if err := us.Delete(ctx, u.Name); err != nil && !errors.Is(err, users.ErrNotFound) {
			t.Fatal(err)
		}
		if err := us.Create(ctx, u, "correct horse battery"); err != nil {
			t.Fatal(err)
		}
		got, err := us.Get(ctx, u.Name)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, got)
	}
	return out
}

// A store user's keys carry the user's current groups (a key's own only where the user still
// has them); a key whose user the store does not know carries its own groups only.
func TestUserStoreGroups(t *testing.T) {
	us := users.New(rdb, users.Options{Cost: bcrypt.MinCost})
	alice := storeUsers(t, us, users.User{Name: "ustore-alice", Groups: []string{"ops", "dev"}})[0]
	c, _ := serve(t, keys, Options{Users: userinfo.New(us, userinfo.Options{}, nil)})
	demo := edgepath.Ref{Kind: edgepath.KindCluster, Cluster: "demo"}
	auth := func(plain string) map[string]string { return map[string]string{"authorization": "Bearer " + plain} }

	key := ownedKey(t, "ustore-alice", alice, "dev", "qa")
	got := groupsSent(t, check(t, c, demo, "/api", auth(key)))
	if want := []string{"dev", "ops", "loft:user:ustore-alice", "system:authenticated"}; !slices.Equal(got, want) {
		t.Errorf("groups of a stored user = %v, want %v (qa is not the user's)", got, want)
	}
	external := newKey(t, "ustore-external", v1.OwnedAccessKeySpec{User: "ustore-nobody", Groups: []string{"qa"}}, time.Now())
	got = groupsSent(t, check(t, c, demo, "/api", auth(external)))
	if want := []string{"qa", "loft:user:ustore-nobody", "system:authenticated"}; !slices.Equal(got, want) {
		t.Errorf("groups of an unknown user = %v, want %v", got, want)
	}
}

// Keys whose user the store says is disabled, deleted, re-created, or an external identity's
// name now given to a store user, are refused with 401 and a message that says which.
func TestUserStoreRefusals(t *testing.T) {
	ctx := context.Background()
	us := users.New(rdb, users.Options{Cost: bcrypt.MinCost})
	stored := storeUsers(t, us, users.User{Name: "ustore-bob", Disabled: true}, users.User{Name: "ustore-gone"},
		users.User{Name: "ustore-again"})
	bob := ownedKey(t, "ustore-bob", stored[0])
	gone := ownedKey(t, "ustore-gone", stored[1])
	again := ownedKey(t, "ustore-again", stored[2])
	if err := us.Delete(ctx, "ustore-gone"); err != nil {
		t.Fatal(err)
	}
	storeUsers(t, us, users.User{Name: "ustore-again"})
	external := newKey(t, "ustore-ext", v1.OwnedAccessKeySpec{User: "ustore-ext"}, time.Now())
	storeUsers(t, us, users.User{Name: "ustore-ext"})

	c, _ := serve(t, keys, Options{Users: userinfo.New(us, userinfo.Options{}, nil)})
	demo := edgepath.Ref{Kind: edgepath.KindCluster, Cluster: "demo"}
	for plain, want := range map[string]string{
		bob:      `the user \"ustore-bob\" of access key \"ustore-bob\" is disabled`,
		gone:     `the user \"ustore-gone\" of access key \"ustore-gone\" no longer exists`,
		again:    `access key \"ustore-again\" was made for an earlier user \"ustore-again\", who was deleted; create a new key`,
		external: `access key \"ustore-ext\" was made for an external identity \"ustore-ext\" before a user of that name was added to the user store; create a new key`,
	} {
		d := check(t, c, demo, "/api", map[string]string{"authorization": "Bearer " + plain}).GetDeniedResponse()
		if d == nil || d.GetStatus().GetCode() != 401 || !strings.Contains(d.GetBody(), want) {
			t.Errorf("got %v; want 401 saying %s", d, want)
		}
	}
}

// When Redis does not answer, the edge fails closed with 503, never OK.
func TestCheckFailsClosedWithoutRedis(t *testing.T) {
	down := store.New(redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: 200 * time.Millisecond}))
	c, reg := serve(t, down, Options{})
	resp := check(t, c, edgepath.Ref{Kind: edgepath.KindCluster, Cluster: "demo"}, "/kubernetes/cluster/demo/api", map[string]string{"authorization": "Bearer kgk_somekeysomekeysomekeysomekeysomekey"})
	d := resp.GetDeniedResponse()
	if d == nil || d.GetStatus().GetCode() != 503 || !strings.Contains(d.GetBody(), "cannot be checked") {
		t.Fatalf("with Redis down: %v; want a 503 denial", resp)
	}
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() == "keygate_extauthz_key_store_errors_total" && mf.GetMetric()[0].GetCounter().GetValue() != 1 {
			t.Errorf("key store errors = %v, want 1", mf.GetMetric()[0].GetCounter().GetValue())
		}
	}
}

func TestClockDrivesExpiry(t *testing.T) {
	created := time.Now().Add(-30 * time.Minute)
	plain := newKey(t, "clock", v1.OwnedAccessKeySpec{User: "erin"}, created)
	for _, tc := range []struct {
		maxTTL time.Duration
		want   bool
	}{{time.Hour, true}, {10 * time.Minute, false}} {
		c, _ := serve(t, keys, Options{Decide: decide.Options{MaxTTL: tc.maxTTL}})
		resp := check(t, c, edgepath.Ref{Kind: edgepath.KindCluster, Cluster: "demo"}, "/", map[string]string{"authorization": "Bearer " + plain})
		if got := resp.GetOkResponse() != nil; got != tc.want {
			t.Errorf("max TTL %s on a 30-minute-old key: allowed %v, want %v", tc.maxTTL, got, tc.want)
		}
	}
}

func TestMetricNames(t *testing.T) {
	c, reg := serve(t, keys, Options{})
	check(t, c, edgepath.Ref{Kind: edgepath.KindCluster, Cluster: "demo"}, "/", nil)
	metricstest.Lint(t, reg)
}

func TestUpstreamPath(t *testing.T) {
	demo := edgepath.Ref{Kind: edgepath.KindCluster, Cluster: "demo"}
	tests := map[string]struct {
		ref        edgepath.Ref
		path, want string
	}{
		"prefix stripped":             {demo, "/kubernetes/cluster/demo/api/v1/pods?watch=1", "/api/v1/pods?watch=1"},
		"prefix without slash":        {demo, "/kubernetes/cluster/demo", "/"},
		"prefix without slash, query": {demo, "/kubernetes/cluster/demo?timeout=1s", "/?timeout=1s"},
		"longer name is not ours":     {demo, "/kubernetes/cluster/demo2/api", "/kubernetes/cluster/demo2/api"},
		"no target":                   {edgepath.Ref{Kind: edgepath.KindNone}, "/x", "/x"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := upstreamPath(tc.ref, tc.path); got != tc.want {
				t.Errorf("upstreamPath(%q) = %q, want %q", tc.path, got, tc.want)
			}
		})
	}
}

// Allowed requests reach status.lastActivity through the recorder; refused ones do not, so a
// refused request cannot keep a ttlAfterLastActivity key alive.
func TestActivityIsRecorded(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2031, 2, 3, 4, 5, 6, 0, time.UTC)
	rec := activity.New(keys, activity.Options{Interval: time.Hour}, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	c, _ := serve(t, keys, Options{Activity: rec, Now: func() time.Time { return now }})
	used := newKey(t, "activity-used", v1.OwnedAccessKeySpec{User: "frank"}, now.Add(-time.Hour))
	refused := newKey(t, "activity-refused", v1.OwnedAccessKeySpec{User: "gina", Scope: &v1.AccessKeyScope{Clusters: []v1.AccessKeyScopeCluster{{Cluster: "staging"}}}}, now.Add(-time.Hour))
	demo := edgepath.Ref{Kind: edgepath.KindCluster, Cluster: "demo"}

	if resp := check(t, c, demo, "/kubernetes/cluster/demo/api", map[string]string{"authorization": "Bearer " + used}); resp.GetOkResponse() == nil {
		t.Fatalf("denied: %v", resp)
	}
	if resp := check(t, c, demo, "/kubernetes/cluster/demo/api", map[string]string{"authorization": "Bearer " + refused}); resp.GetDeniedResponse() == nil {
		t.Fatalf("allowed a key scoped to staging on demo")
	}
	if got, _ := keys.Get(ctx, "activity-used"); got.Status.LastActivity != nil {
		t.Fatalf("lastActivity written on the request path (%v); want it only at a flush", got.Status.LastActivity)
	}
	if err := rec.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := keys.Get(ctx, "activity-used")
	if err != nil {
		t.Fatal(err)
	}
	if got.Status.LastActivity == nil || !got.Status.LastActivity.Time.Equal(now) {
		t.Errorf("lastActivity of the used key = %v, want %v", got.Status.LastActivity, now)
	}
	if got, _ := keys.Get(ctx, "activity-refused"); got.Status.LastActivity != nil {
		t.Errorf("lastActivity of the refused key = %v, want none", got.Status.LastActivity)
	}
}

// TestGrafanaAuthProxyHeaders: every header Grafana's auth proxy may read, sent by a client in
// any letter case, is removed, except the user and groups headers the edge owns, which it
// overwrites with the key's.
func TestGrafanaAuthProxyHeaders(t *testing.T) {
	c, _ := serve(t, keys, Options{Identity: identity.Options{GrafanaGroupsHeader: "X-WEBAUTH-GROUPS"}})
	key := newKey(t, "grafana-headers", v1.OwnedAccessKeySpec{User: "erin"}, time.Now())
	grafana := edgepath.Ref{Kind: edgepath.KindGrafana, Cluster: "demo"}
	resp := check(t, c, grafana, "/grafana/demo/api/user", map[string]string{
		"authorization": "Bearer " + key, "x-webauth-user": "admin", "x-webauth-groups": "admins",
		"x-webauth-role": "Admin", "X-WebAuth-Email": "admin@example.com", "x-webauth-name": "Admin",
		"x-webauth-login": "admin", "accept": "application/json",
	})
	ok := resp.GetOkResponse()
	if ok == nil {
		t.Fatalf("denied: %s", resp.GetDeniedResponse().GetBody())
	}
	set := map[string]string{}
	for _, h := range ok.GetHeaders() {
		set[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
	}
	if want := map[string]string{"X-WEBAUTH-USER": "erin", "X-WEBAUTH-GROUPS": `["loft:user:erin","system:authenticated"]`}; !maps.Equal(set, want) {
		t.Errorf("headers set = %v, want %v", set, want)
	}
	removed := ok.GetHeadersToRemove()
	slices.Sort(removed)
	want := []string{"authorization", "x-webauth-email", "x-webauth-login", "x-webauth-name", "x-webauth-role"}
	if !slices.Equal(removed, want) {
		t.Errorf("headers removed = %v, want %v (user and groups are overwritten instead)", removed, want)
	}
}

// TestGrafanaHeadersOnOtherRoutes: behind xds's Envoy, which strips Grafana's default auth-proxy
// headers from every request itself, an allowed request to a Kubernetes target removes only the
// configured ones it does not strip.
func TestGrafanaHeadersOnOtherRoutes(t *testing.T) {
	c, _ := serve(t, keys, Options{Identity: identity.Options{GrafanaUserHeader: "X-Grafana-User",
		GrafanaAuthProxyHeaders: []string{"X-WEBAUTH-ROLE", "X-Grafana-Role"}}})
	key := newKey(t, "grafana-elsewhere", v1.OwnedAccessKeySpec{User: "erin"}, time.Now())
	resp := check(t, c, edgepath.Ref{Kind: edgepath.KindCluster, Cluster: "demo"}, "/kubernetes/cluster/demo/api",
		map[string]string{"authorization": "Bearer " + key})
	removed := resp.GetOkResponse().GetHeadersToRemove()
	slices.Sort(removed)
	if want := []string{"authorization", "x-grafana-role", "x-grafana-user"}; !slices.Equal(removed, want) {
		t.Errorf("headers removed = %v, want %v", removed, want)
	}
}

// TestDenialsCountedByReason: each way a check refuses moves its own series of
// keygate_extauthz_denials_total, so a dashboard can tell a flood of unknown keys from expiries.
func TestDenialsCountedByReason(t *testing.T) {
	c, reg := serve(t, keys, Options{})
	expired := newKey(t, "denials-expired", v1.OwnedAccessKeySpec{User: "bob", TTL: 60}, time.Now().Add(-time.Hour))
	demo := edgepath.Ref{Kind: edgepath.KindCluster, Cluster: "demo"}
	tests := map[string]string{
		ReasonNoKey:      "",
		ReasonUnknownKey: "Bearer kgk_unknownunknownunknownunknownunknown",
		"expired":        "Bearer " + expired,
	}
	for reason, auth := range tests {
		t.Run(reason, func(t *testing.T) {
			before := denials(t, reg, reason)
			check(t, c, demo, "/kubernetes/cluster/demo/api", map[string]string{"authorization": auth})
			if got := denials(t, reg, reason); got != before+1 {
				t.Errorf("keygate_extauthz_denials_total{reason=%q} = %v after one such refusal, want %v", reason, got, before+1)
			}
		})
	}
}

// denials reads keygate_extauthz_denials_total{reason} from reg.
func denials(t *testing.T, reg prometheus.Gatherer, reason string) float64 {
	t.Helper()
	for _, mf := range metricstest.Lint(t, reg) {
		if mf.GetName() != "keygate_extauthz_denials_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == reason {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no keygate_extauthz_denials_total{reason=%q}", reason)
	return 0
}

// A flood of made-up keys cannot flood the logs: refusal lines are limited, and the counters
// keep every refusal, written or not.
func TestRefusalLogsAreLimited(t *testing.T) {
	var logs bytes.Buffer
	reg := prometheus.NewRegistry()
	s := New(keys, Options{}, slog.New(slog.NewTextHandler(&logs, nil)), reg)
	const n = 1000
	for i := range n {
		req := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
			ContextExtensions: edgepath.Ref{Kind: edgepath.KindCluster, Cluster: "demo"}.ContextExtensions(),
			Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
				Path: "/kubernetes/cluster/demo/api", Headers: map[string]string{"authorization": fmt.Sprintf("Bearer made-up-key-%060d", i)}}}}}
		if _, err := s.Check(context.Background(), req); err != nil {
			t.Fatal(err)
		}
	}
	lines := strings.Count(logs.String(), "denied: unknown access key")
	dropped := testutil.ToFloat64(s.metrics.logsDropped)
	denied := testutil.ToFloat64(s.metrics.denials.WithLabelValues(ReasonUnknownKey))
	if denied != n || float64(lines)+dropped != n || lines >= n {
		t.Errorf("%d refusals: %v counted, %d lines written, %v suppressed; want all counted, fewer written, written + suppressed = all", n, denied, lines, dropped)
	}
	metricstest.Lint(t, reg)
}
