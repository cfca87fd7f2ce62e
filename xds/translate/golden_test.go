package translate

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"sigs.k8s.io/yaml"

	"github.com/keygate-dev/keygate/internal/edgepath"
	"github.com/keygate-dev/keygate/xds/model"
	"github.com/keygate-dev/keygate/xds/source/file"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.yaml from the current output")

// goldenOptions are the options of every golden case: what differs between cases is the targets.
func goldenOptions(t testing.TB) Options {
	t.Helper()
	cert, err := os.ReadFile("testdata/pki/serving.crt")
	if err != nil {
		t.Fatal(err)
	}
	key, err := os.ReadFile("testdata/pki/serving.key")
	if err != nil {
		t.Fatal(err)
	}
	return Options{ListenAddress: "0.0.0.0", ListenPort: 8443, ServingCert: cert, ServingKey: key}
}

// TestGolden translates each testdata/<case>.yaml targets file and compares the resources with
// testdata/<case>.golden.yaml. Run `go test ./xds/translate -update` to rewrite the golden files
// after an intended change, and review the diff.
func TestGolden(t *testing.T) {
	cases, err := filepath.Glob("testdata/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	opts := goldenOptions(t)
	n := 0
	for _, in := range cases {
		if strings.HasSuffix(in, ".golden.yaml") {
			continue
		}
		n++
		name := strings.TrimSuffix(filepath.Base(in), ".yaml")
		t.Run(name, func(t *testing.T) {
			m, err := file.Load(in)
			if err != nil {
				t.Fatal(err)
			}
			checkGolden(t, strings.TrimSuffix(in, ".yaml")+".golden.yaml", m, opts)
		})
	}
	if n == 0 {
		t.Fatal("no golden cases in testdata")
	}
}

// TestGoldenModels are golden cases built as models in code, for what the targets file cannot
// express (a bearer token comes from the Kubernetes source only).
func TestGoldenModels(t *testing.T) {
	opts := goldenOptions(t)
	cases := map[string]model.Model{
		"token": model.New(
			model.Target{Ref: edgepath.Ref{Kind: edgepath.KindCluster, Cluster: "prod"}, Upstream: withToken(t, "https://api.prod.example.com:6443", "eyJhbGciOiJSUzI1NiJ9.golden.token")},
			model.Target{Ref: edgepath.Ref{Kind: edgepath.KindCluster, Cluster: "staging"}, Upstream: secure(t, "https://10.0.0.8:6443")},
		),
	}
	for name, m := range cases {
		t.Run(name, func(t *testing.T) {
			checkGolden(t, filepath.Join("testdata", name+".golden.yaml"), m, opts)
		})
	}
}

// checkGolden translates m and compares the resources with goldenPath (or, with -update, writes
// them there).
func checkGolden(t *testing.T, goldenPath string, m model.Model, opts Options) {
	t.Helper()
	got, err := Translate(m, opts)
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		data, err := marshalGolden(got)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(goldenPath, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(goldenPath)
	if err != nil {
		t.Fatalf("%v (run `go test ./xds/translate -update` to create it)", err)
	}
	want, err := unmarshalGolden(data)
	if err != nil {
		t.Fatalf("%s: %v", goldenPath, err)
	}
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Errorf("resources differ from %s (-want +got); if intended, run `go test ./xds/translate -update`:\n%s", goldenPath, diff)
	}
}

// golden is the layout of a golden file: the resources by type, each as protojson.
type golden struct {
	Listeners    []json.RawMessage `json:"listeners"`
	ScopedRoutes []json.RawMessage `json:"scopedRoutes"`
	Routes       []json.RawMessage `json:"routes"`
	Clusters     []json.RawMessage `json:"clusters"`
	Secrets      []json.RawMessage `json:"secrets"`
}

func marshalGolden(r Resources) ([]byte, error) {
	g := golden{Listeners: []json.RawMessage{}, ScopedRoutes: []json.RawMessage{}, Routes: []json.RawMessage{}, Clusters: []json.RawMessage{}, Secrets: []json.RawMessage{}}
	add := func(list *[]json.RawMessage, m proto.Message) error {
		b, err := protojson.Marshal(m)
		if err != nil {
			return err
		}
		*list = append(*list, b)
		return nil
	}
	for _, l := range r.Listeners {
		if err := add(&g.Listeners, l); err != nil {
			return nil, err
		}
	}
	for _, sc := range r.ScopedRoutes {
		if err := add(&g.ScopedRoutes, sc); err != nil {
			return nil, err
		}
	}
	for _, rc := range r.Routes {
		if err := add(&g.Routes, rc); err != nil {
			return nil, err
		}
	}
	for _, c := range r.Clusters {
		if err := add(&g.Clusters, c); err != nil {
			return nil, err
		}
	}
	for _, sec := range r.Secrets {
		if err := add(&g.Secrets, sec); err != nil {
			return nil, err
		}
	}
	j, err := json.Marshal(g)
	if err != nil {
		return nil, err
	}
	y, err := yaml.JSONToYAML(j)
	if err != nil {
		return nil, err
	}
	return append([]byte("# Generated by `go test ./xds/translate -update`. DO NOT EDIT.\n"), y...), nil
}

func unmarshalGolden(data []byte) (Resources, error) {
	var g golden
	if err := yaml.UnmarshalStrict(data, &g); err != nil {
		return Resources{}, err
	}
	var r Resources
	for i, b := range g.Listeners {
		l := &listenerv3.Listener{}
		if err := protojson.Unmarshal(b, l); err != nil {
			return Resources{}, fmt.Errorf("listeners[%d]: %w", i, err)
		}
		r.Listeners = append(r.Listeners, l)
	}
	for i, b := range g.ScopedRoutes {
		sc := &routev3.ScopedRouteConfiguration{}
		if err := protojson.Unmarshal(b, sc); err != nil {
			return Resources{}, fmt.Errorf("scopedRoutes[%d]: %w", i, err)
		}
		r.ScopedRoutes = append(r.ScopedRoutes, sc)
	}
	for i, b := range g.Routes {
		rc := &routev3.RouteConfiguration{}
		if err := protojson.Unmarshal(b, rc); err != nil {
			return Resources{}, fmt.Errorf("routes[%d]: %w", i, err)
		}
		r.Routes = append(r.Routes, rc)
	}
	for i, b := range g.Clusters {
		c := &clusterv3.Cluster{}
		if err := protojson.Unmarshal(b, c); err != nil {
			return Resources{}, fmt.Errorf("clusters[%d]: %w", i, err)
		}
		r.Clusters = append(r.Clusters, c)
	}
	for i, b := range g.Secrets {
		sec := &tlsv3.Secret{}
		if err := protojson.Unmarshal(b, sec); err != nil {
			return Resources{}, fmt.Errorf("secrets[%d]: %w", i, err)
		}
		r.Secrets = append(r.Secrets, sec)
	}
	return r, nil
}
