package e2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/keygate-dev/keygate/localdev"
)

// Routing and authorisation agree: for paths dressed up with //, /./, /../, %2F, %2e%2e, mixed
// case, a prefix without its slash and query strings, the upstream that answered is the target
// extauthz judged (X-Keygate-Target), or the edge refused the request. Who answered is read from
// the marker namespace that only that upstream has.
func TestRoutingAndAuthorisationAgree(t *testing.T) {
	t.Parallel()
	routingAgrees(t, platform.EdgeURL)
}

// pathTrick is a path dressed up, and the upstream that must answer it.
type pathTrick struct {
	path string
	// want is the prefix of the upstream that must answer, or "" when the edge must refuse.
	want string
}

// pathTricks are the paths of the matrix, by name.
func pathTricks() map[string]pathTrick {
	list := "api/v1/namespaces"
	return map[string]pathTrick{
		"plain":                        {"/kubernetes/cluster/demo/" + list, "kubernetes/cluster/demo"},
		"double slash inside":          {"/kubernetes/cluster/demo//" + list, "kubernetes/cluster/demo"},
		"double slash first":           {"//kubernetes/cluster/staging/" + list, "kubernetes/cluster/staging"},
		"dot segment":                  {"/kubernetes/cluster/./demo/" + list, "kubernetes/cluster/demo"},
		"dot-dot into another cluster": {"/kubernetes/cluster/demo/../staging/" + list, "kubernetes/cluster/staging"},
		"dot-dot out of a vcluster":    {"/kubernetes/virtualcluster/demo/vcluster-demo/vc1/../../../../cluster/staging/" + list, "kubernetes/cluster/staging"},
		"encoded dot-dot":              {"/kubernetes/cluster/demo/%2e%2e/staging/" + list, "kubernetes/cluster/staging"},
		"encoded dot-dot, upper case":  {"/kubernetes/cluster/demo/%2E%2E/staging/" + list, "kubernetes/cluster/staging"},
		"encoded slash":                {"/kubernetes/cluster/demo%2F..%2Fstaging/" + list, ""},
		"encoded slash in the rest":    {"/kubernetes/cluster/demo/api%2Fv1/namespaces", ""},
		"mixed-case prefix":            {"/Kubernetes/Cluster/demo/" + list, ""},
		"mixed-case cluster":           {"/kubernetes/cluster/Demo/" + list, ""},
		"query naming another target":  {"/kubernetes/cluster/demo/" + list + "?x=/kubernetes/cluster/staging/", "kubernetes/cluster/demo"},
		"query with dot-dot":           {"/kubernetes/cluster/staging/" + list + "?limit=500&x=/../demo/", "kubernetes/cluster/staging"},
		"virtual cluster":              {"/kubernetes/virtualcluster/demo/vcluster-demo/vc1/" + list, "kubernetes/virtualcluster/demo/vcluster-demo/vc1"},
		"vcluster dot-dot to its host": {"/kubernetes/virtualcluster/demo/vcluster-demo/vc1/../../../../cluster/demo/" + list, "kubernetes/cluster/demo"},
	}
}

// routingAgrees runs the path-trick matrix against the edge at base.
func routingAgrees(t *testing.T, base string) {
	// Prefixes of the targets, and the marker that names each upstream.
	upstreams := map[string]string{
		"kubernetes/cluster/demo":                          markers[localdev.ClusterDemo],
		"kubernetes/cluster/staging":                       markers[localdev.ClusterStaging],
		"kubernetes/virtualcluster/demo/vcluster-demo/vc1": markers[localdev.VirtualClusterName],
	}
	for name, tc := range pathTricks() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			resp, body := rawGetAt(t, base, platform.AdminKey, tc.path)
			judged := resp.Header.Get("X-Keygate-Target")
			if tc.want == "" {
				if resp.StatusCode != http.StatusBadRequest && resp.StatusCode != http.StatusNotFound {
					t.Fatalf("HTTP %d (judged %q), want the edge to refuse with 400 or 404: %s", resp.StatusCode, judged, body)
				}
				return
			}
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("HTTP %d (judged %q), want 200 from %s: %s", resp.StatusCode, judged, tc.want, body)
			}
			answered := whoAnswered(t, body, upstreams)
			if judged != tc.want || answered != tc.want {
				t.Errorf("judged %q, answered %q; want both %q", judged, answered, tc.want)
			}
		})
	}
}

// A key scoped to demo never reaches staging, however the path is dressed up.
func TestScopedKeyCannotEscapeByPath(t *testing.T) {
	t.Parallel()
	scopedKeyStaysIn(t, platform.EdgeURL)
}

// scopedKeyStaysIn tries a demo-scoped key on staging through the edge at base.
func scopedKeyStaysIn(t *testing.T, base string) {
	_, key := newKey(t, scopedToDemo())
	for _, path := range []string{
		"/kubernetes/cluster/demo/../staging/api/v1/namespaces",
		"/kubernetes/cluster/demo/%2e%2e/staging/api/v1/namespaces",
		"//kubernetes/cluster/staging/api/v1/namespaces",
		"/kubernetes/cluster/demo/./../staging/api/v1/namespaces",
		"/kubernetes/virtualcluster/demo/vcluster-demo/vc1/../../../../cluster/staging/api/v1/namespaces",
		"/kubernetes/cluster/staging?x=/kubernetes/cluster/demo/",
	} {
		resp, body := rawGetAt(t, base, key, path)
		if resp.StatusCode == http.StatusOK {
			t.Errorf("%s: a demo-scoped key got 200 (judged %q): %s", path, resp.Header.Get("X-Keygate-Target"), body)
		}
	}
}

// rawGetAt sends the path exactly as written (Go's client would otherwise clean some of it)
// to the edge at base.
func rawGetAt(t *testing.T, base, key, path string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.URL.Opaque = "//" + req.URL.Host + path
	if i := strings.IndexByte(path, '?'); i >= 0 {
		req.URL.Opaque = "//" + req.URL.Host + path[:i]
		req.URL.RawQuery = path[i+1:]
	}
	req.Header.Set("Authorization", "Bearer "+key)
	return do(t, req)
}

// whoAnswered names the upstream whose marker namespace is in a namespace list.
func whoAnswered(t *testing.T, body []byte, upstreams map[string]string) string {
	t.Helper()
	var list corev1.NamespaceList
	if err := json.Unmarshal(body, &list); err != nil || list.Kind != "NamespaceList" {
		t.Fatalf("not a namespace list (%v): %s", err, body)
	}
	for prefix, marker := range upstreams {
		for _, ns := range list.Items {
			if ns.Name == marker {
				return prefix
			}
		}
	}
	return "unknown"
}
