package e2e

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/keygate-dev/keygate/internal/edgepath"
	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
	"github.com/keygate-dev/keygate/localdev"
)

// The edge behind an Envoy that our xds does not program: a second Envoy, configured from
// envoy/static, in front of the same upstreams, calling the same extauthz without
// context_extensions. It starts with the first test that needs it (about a second).
var staticEdge struct {
	once sync.Once
	edge *localdev.StaticEdge
	err  error
}

// staticURL is the static Envoy's base URL, starting it if needed.
func staticURL(t *testing.T) string {
	t.Helper()
	staticEdge.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		staticEdge.edge, staticEdge.err = platform.StartStaticEdge(ctx)
	})
	if staticEdge.err != nil {
		t.Fatalf("start the static Envoy: %v", staticEdge.err)
	}
	return staticEdge.edge.URL
}

func stopStaticEdge() {
	if staticEdge.edge != nil {
		staticEdge.edge.Stop()
	}
}

// staticKubeconfig is kubeconfig for the static Envoy.
func staticKubeconfig(t *testing.T, key string) string {
	t.Helper()
	data, err := platform.KubeconfigAt(staticURL(t), key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// kubectl reaches every target through the static Envoy, each its own upstream, as the key's
// user with every group on its own header line (the Lua filter), and the management API.
func TestStaticEnvoyKubectl(t *testing.T) {
	t.Parallel()
	user := unique("static")
	_, key := newKey(t, v1.OwnedAccessKeySpec{User: user, Groups: []string{"dev", "qa"}})
	admin, mine := staticKubeconfig(t, platform.AdminKey), staticKubeconfig(t, key)
	for name, ref := range kubeTargets {
		t.Run(localdev.ContextName(ref), func(t *testing.T) {
			t.Parallel()
			out, errOut, err := runKubectl(t, admin, ref, "get", "namespaces", "-o", "name")
			if err != nil {
				t.Fatalf("kubectl get namespaces: %v\n%s", err, errOut)
			}
			for other, marker := range markers {
				if has := strings.Contains(out, "namespace/"+marker+"\n"); has != (other == name) {
					t.Errorf("marker %s present = %v; output:\n%s", marker, has, out)
				}
			}
			got := whoami(t, mine, ref, "--as", "system:admin")
			want := []string{"dev", "qa", "loft:user:" + user, "system:authenticated"}
			if got.Username != user || !slices.Equal(got.Groups, want) {
				t.Errorf("whoami = %s %v, want %s %v (the client's --as ignored)", got.Username, got.Groups, user, want)
			}
		})
	}
	mgmt := edgepath.Ref{Kind: edgepath.KindManagement}
	if out, errOut, err := runKubectl(t, admin, mgmt, "get", "ownedaccesskeys", "-o", "name"); err != nil || !strings.Contains(out, "ownedaccesskey.management.loft.sh/admin\n") {
		t.Errorf("kubectl get ownedaccesskeys through the static Envoy: %v\n%s%s", err, out, errOut)
	}
}

// The path-trick matrix through the static Envoy: it normalises as xds's listener does, and
// what extauthz judged is what answered.
func TestStaticEnvoyRoutingAndAuthorisationAgree(t *testing.T) {
	t.Parallel()
	routingAgrees(t, staticURL(t))
	t.Run("scoped key", func(t *testing.T) {
		t.Parallel()
		scopedKeyStaysIn(t, staticURL(t))
	})
}

// Without a key every checked path gets 401; with one, paths that name no target get 404.
func TestStaticEnvoyUnknownTargets(t *testing.T) {
	t.Parallel()
	base := staticURL(t)
	for _, path := range []string{"/grafana/staging/api/health", "/kubernetes/cluster/nope/api", "/kubernetes/virtualcluster/demo/vcluster-demo/nope/api", "/nothing-here", "/Kubernetes/cluster/demo/api"} {
		resp, body := rawGetAt(t, base, platform.AdminKey, path)
		if s := status(t, resp, body); resp.StatusCode != 404 || s.Reason != metav1.StatusReasonNotFound {
			t.Errorf("%s with a valid key: HTTP %d %s, want 404 NotFound: %s", path, resp.StatusCode, s.Reason, body)
		}
		if resp, body := rawGetAt(t, base, "", path); resp.StatusCode != 401 {
			t.Errorf("%s without a key: HTTP %d, want 401: %s", path, resp.StatusCode, body)
		}
	}
}

// Grafana gets the key's user, never the key; the login endpoints need no key.
func TestStaticEnvoyGrafanaAndLogin(t *testing.T) {
	t.Parallel()
	base := staticURL(t)
	resp, body := rawGetAt(t, base, platform.AdminKey, "/grafana/demo/api/health")
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"user":"`+localdev.AdminUser+`"`) || strings.Contains(string(body), platform.AdminKey) {
		t.Errorf("grafana through the static Envoy: HTTP %d: %s", resp.StatusCode, body)
	}
	resp, body = rawGetAt(t, base, "", "/auth/login")
	if resp.StatusCode != http.StatusOK {
		t.Errorf("login page through the static Envoy: HTTP %d: %s", resp.StatusCode, body)
	}
}

// exec, attach and port-forward, over WebSocket and SPDY, reach the API server through the
// static Envoy (it answers that the pod has no node).
func TestStaticEnvoyStreams(t *testing.T) {
	t.Parallel()
	ns, pod := demoPod(t)
	cfg := staticKubeconfig(t, platform.AdminKey)
	for what, c := range streamCommands(ns, pod) {
		t.Run(what, func(t *testing.T) {
			errOut, err := kubectlEnv(t, cfg, demo, c.env, c.args...)
			if err == nil || !strings.Contains(errOut, "does not have a host assigned") {
				t.Errorf("kubectl %s: err %v; want the API server's answer:\n%s", what, err, errOut)
			}
		})
	}
}
