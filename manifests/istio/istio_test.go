// Package istio holds the tests of the Istio example (manifests/istio): its objects against
// Istio's published CRD schemas on a real kube-apiserver, its MeshConfig against Istio's
// MeshConfig message, and its Envoy patches against Envoy's own messages. It has no code.
package istio

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	luav3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/lua/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/keygate-dev/keygate/internal/edgepath"
	"github.com/keygate-dev/keygate/internal/kubetest"
	"github.com/keygate-dev/keygate/internal/toolbin"
)

var srv *kubetest.Server

func TestMain(m *testing.M) { os.Exit(kubetest.Main(m, &srv)) }

// objectFiles are the example's Kubernetes objects (meshconfig.yaml is not one).
var objectFiles = []string{"gateway.yaml", "authorizationpolicy.yaml", "routes.yaml", "envoyfilter.yaml"}

// istioCRDs is the CRD file that istio.io/api publishes, from the module go.mod requires.
func istioCRDs(t *testing.T) string {
	t.Helper()
	root, err := toolbin.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "istio.io/api")
	cmd.Dir = root
	out, err := cmd.Output()
	dir := strings.TrimSpace(string(out))
	if err != nil || dir == "" {
		t.Fatalf("istio.io/api is not in the module cache (%v): run `go mod download istio.io/api`", err)
	}
	path := filepath.Join(dir, "kubernetes", "customresourcedefinitions.gen.yaml")
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("Istio's CRDs are missing from istio.io/api: %v", err)
	}
	return path
}

// Every object of the example is accepted by a real kube-apiserver that serves Istio's CRDs,
// with server-side strict field validation (an unknown or misspelt field fails); a wrong one is
// refused, so the validation is real.
func TestObjectsMatchIstiosCRDs(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := srv.Apply(ctx, istioCRDs(t)); err != nil {
		t.Fatalf("install Istio's CRDs: %v", err)
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "keygate"}}
	if _, err := srv.Client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := srv.WriteKubeconfig(kubeconfig); err != nil {
		t.Fatal(err)
	}
	kubectl, err := toolbin.Path("kubectl")
	if err != nil {
		t.Fatal(err)
	}
	apply := func(file string) (string, error) {
		cmd := exec.CommandContext(ctx, kubectl, "--kubeconfig", kubeconfig, "apply", "--dry-run=server", "--validate=strict", "-f", file)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	for _, f := range objectFiles {
		out, err := apply(f)
		if err != nil {
			t.Errorf("kubectl apply --dry-run=server -f %s: %v\n%s", f, err, out)
			continue
		}
		t.Logf("%s:\n%s", f, out)
	}
	data, err := os.ReadFile("authorizationpolicy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for wrong, edit := range map[string]string{"CUSTOMM": "action: CUSTOMM", "providr": "action: CUSTOM\n  providr: {}"} {
		bad := filepath.Join(t.TempDir(), "bad.yaml")
		if err := os.WriteFile(bad, bytes.Replace(data, []byte("action: CUSTOM"), []byte(edit), 1), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := apply(bad); err == nil || !strings.Contains(out, wrong) {
			t.Errorf("an AuthorizationPolicy with %s was not refused (%v):\n%s", wrong, err, out)
		}
	}
}

// meshconfig.yaml is a MeshConfig (strictly: an unknown field fails). The gRPC provider has no
// includeRequestHeadersInCheck or headersToUpstreamOnAllow: those are the HTTP provider's (the
// gRPC one sends every header and applies every header extauthz returns), so Istio refuses them.
func TestMeshConfig(t *testing.T) {
	data, err := os.ReadFile("meshconfig.yaml")
	if err != nil {
		t.Fatal(err)
	}
	mc := meshConfig(t, data)
	providers := mc.GetExtensionProviders()
	if len(providers) != 1 {
		t.Fatalf("%d extension providers, want 1", len(providers))
	}
	g := providers[0].GetEnvoyExtAuthzGrpc()
	if g == nil || g.GetFailOpen() || g.GetStatusOnError() != "503" || g.GetPort() != 19000 {
		t.Errorf("provider %s: %v; want gRPC, fail closed with 503, port 19000", providers[0].GetName(), g)
	}
	if n := mc.GetPathNormalization().GetNormalization(); n != meshv1alpha1.MeshConfig_ProxyPathNormalization_MERGE_SLASHES {
		t.Errorf("path normalisation %s, want MERGE_SLASHES", n)
	}
	withHTTPFields := bytes.Replace(data, []byte("      failOpen: false"), []byte("      failOpen: false\n      includeRequestHeadersInCheck: [authorization]"), 1)
	js, _ := yaml.YAMLToJSON(withHTTPFields)
	if err := protojson.Unmarshal(js, &meshv1alpha1.MeshConfig{}); err == nil || !strings.Contains(err.Error(), "includeRequestHeadersInCheck") {
		t.Errorf("includeRequestHeadersInCheck in envoyExtAuthzGrpc: err %v, want it refused", err)
	}
}

func meshConfig(t *testing.T, data []byte) *meshv1alpha1.MeshConfig {
	t.Helper()
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		t.Fatal(err)
	}
	var mc meshv1alpha1.MeshConfig
	if err := protojson.Unmarshal(js, &mc); err != nil {
		t.Fatalf("meshconfig.yaml is not an Istio MeshConfig: %v", err)
	}
	return &mc
}

// The EnvoyFilter's patches are Envoy configuration (strictly): the connection manager's
// settings that extauthz relies on, and the Lua filter that xds installs, byte for byte.
func TestEnvoyFilterPatches(t *testing.T) {
	data, err := os.ReadFile("envoyfilter.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var ef struct {
		Spec struct {
			ConfigPatches []struct {
				Patch struct {
					Value map[string]any `json:"value"`
				} `json:"patch"`
			} `json:"configPatches"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(data, &ef); err != nil {
		t.Fatal(err)
	}
	var msgs []any
	for _, p := range ef.Spec.ConfigPatches {
		typed, ok := p.Patch.Value["typed_config"]
		if !ok { // a route's patch: Envoy's Route message, strictly
			js, _ := json.Marshal(p.Patch.Value)
			var r routev3.Route
			if err := protojson.Unmarshal(js, &r); err != nil || r.GetRoute().GetIdleTimeout().AsDuration() != 0 || r.GetRoute().GetIdleTimeout() == nil {
				t.Errorf("route patch %s: %v; want an idle timeout of 0 (none)", js, err)
			}
			continue
		}
		js, err := json.Marshal(typed)
		if err != nil {
			t.Fatal(err)
		}
		var a anypb.Any
		if err := protojson.Unmarshal(js, &a); err != nil {
			t.Fatalf("patch is not Envoy configuration: %v\n%s", err, js)
		}
		m, err := a.UnmarshalNew()
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, m)
	}
	if len(msgs) != 2 {
		t.Fatalf("%d typed patches, want the connection manager's and the Lua filter", len(msgs))
	}
	hcm, ok := msgs[0].(*hcmv3.HttpConnectionManager)
	if !ok || !hcm.GetNormalizePath().GetValue() || !hcm.GetMergeSlashes() ||
		hcm.GetPathWithEscapedSlashesAction() != hcmv3.HttpConnectionManager_REJECT_REQUEST ||
		hcm.GetCommonHttpProtocolOptions().GetHeadersWithUnderscoresAction().String() != "DROP_HEADER" {
		t.Errorf("connection manager patch %v lacks the edge's normalisation", msgs[0])
	}
	lua, ok := msgs[1].(*luav3.Lua)
	if !ok || lua.GetDefaultSourceCode().GetInlineString() != edgepath.HeaderListsLua {
		t.Errorf("the EnvoyFilter's Lua is not edgepath.HeaderListsLua: %v", msgs[1])
	}
}
