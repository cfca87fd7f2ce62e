package file

import (
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/keygate-dev/keygate/internal/edgepath"
	"github.com/keygate-dev/keygate/internal/pki"
	"github.com/keygate-dev/keygate/xds/model"
)

// fixture is a directory with the PEM files a targets file names.
type fixture struct {
	dir                string
	ca, cert, key      []byte
	otherCert, otherKy []byte
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ca, err := pki.NewCA("test upstream CA")
	if err != nil {
		t.Fatal(err)
	}
	edge, err := ca.Client("edge")
	if err != nil {
		t.Fatal(err)
	}
	other, err := ca.Client("other")
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{dir: t.TempDir(), ca: ca.CertPEM, cert: edge.CertPEM, key: edge.KeyPEM, otherCert: other.CertPEM, otherKy: other.KeyPEM}
	f.write(t, "ca.crt", f.ca)
	f.write(t, "edge.crt", f.cert)
	f.write(t, "edge.key", f.key)
	f.write(t, "other.key", f.otherKy)
	f.write(t, "garbage.pem", []byte("not a certificate\n"))
	return f
}

func (f *fixture) write(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(f.dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestLoad(t *testing.T) {
	f := newFixture(t)
	f.write(t, "sub/ca.crt", f.ca)
	tls := func(raw string) model.Upstream {
		return model.Upstream{URL: mustURL(t, raw), CA: f.ca, ClientCert: f.cert, ClientKey: f.key}
	}
	file := `# every kind of target
management: {url: "https://127.0.0.1:9443", caFile: ca.crt, clientCertFile: edge.crt, clientKeyFile: edge.key}
auth: {url: "http://127.0.0.1:9080"}
oidc: {url: "https://dex.example.com", caFile: sub/ca.crt}
clusters:
  - name: staging
    url: https://api.staging.example.com:6443/
    caFile: ` + filepath.Join(f.dir, "ca.crt") + `
    clientCertData: |
` + indent(string(f.cert), 6) + `
    clientKeyFile: edge.key
    tlsServerName: kubernetes.default.svc
  - name: demo
    url: https://127.0.0.1:6443
    caData: |
` + indent(string(f.ca), 6) + `
    clientCertFile: edge.crt
    clientKeyFile: edge.key
    grafana:
      url: http://127.0.0.1:3000
    spaces:
      - {name: team-b, project: beta}
      - {name: team-a, project: alpha}
virtualClusters:
  - name: vc1
    namespace: vcluster-demo
    cluster: demo
    project: team-a
    url: https://127.0.0.1:7443
    caFile: ca.crt
    clientCertFile: edge.crt
    clientKeyFile: edge.key
`
	path := f.write(t, "targets.yaml", []byte(file))
	got, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	staging := tls("https://api.staging.example.com:6443")
	staging.ServerName = "kubernetes.default.svc"
	want := model.Model{Targets: []model.Target{
		{Ref: edgepath.Ref{Kind: edgepath.KindAuth}, Upstream: model.Upstream{URL: mustURL(t, "http://127.0.0.1:9080")}},
		{Ref: edgepath.Ref{Kind: edgepath.KindGrafana, Cluster: "demo"}, Upstream: model.Upstream{URL: mustURL(t, "http://127.0.0.1:3000")}},
		{Ref: edgepath.Ref{Kind: edgepath.KindCluster, Cluster: "demo", Spaces: "team-a=alpha,team-b=beta"}, Upstream: tls("https://127.0.0.1:6443")},
		{Ref: edgepath.Ref{Kind: edgepath.KindCluster, Cluster: "staging"}, Upstream: staging},
		{Ref: edgepath.Ref{Kind: edgepath.KindManagement}, Upstream: tls("https://127.0.0.1:9443")},
		{Ref: edgepath.Ref{Kind: edgepath.KindVirtualCluster, Cluster: "demo", Namespace: "vcluster-demo", VirtualCluster: "vc1", Project: "team-a"}, Upstream: tls("https://127.0.0.1:7443")},
		{Ref: edgepath.Ref{Kind: edgepath.KindOIDC}, Upstream: model.Upstream{URL: mustURL(t, "https://dex.example.com"), CA: f.ca}},
	}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Load (-want +got):\n%s", diff)
	}
}

func indent(s string, n int) string {
	pad := strings.Repeat(" ", n)
	return pad + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n"+pad)
}

func TestLoadErrors(t *testing.T) {
	const demo = "clusters:\n  - {name: demo, url: \"https://127.0.0.1:6443\", caFile: ca.crt}\n"
	tests := map[string]struct {
		file string
		// want are substrings the error must contain, each naming the entry and the field.
		want []string
	}{
		"empty file":            {"", []string{"the file is empty"}},
		"only comments":         {"# nothing yet\n", []string{"the file is empty"}},
		"not yaml":              {"clusters: [\n", []string{"not valid YAML"}},
		"unknown top-level key": {"cluster: []\n", []string{`unknown field "cluster"`}},
		"unknown upstream key":  {"clusters:\n  - {name: demo, url: \"http://127.0.0.1:1\", insecure: true}\n", []string{`unknown field "clusters[0].insecure"`}},
		"duplicate key":         {"clusters: []\nclusters: []\n", []string{`key "clusters" already set in map`}},
		"field in the wrong case": {
			"clusters:\n  - {name: demo, url: \"https://127.0.0.1:6443\", cafile: ca.crt}\n",
			[]string{`unknown field "clusters[0].cafile"`},
		},
		"missing ca file": {
			"clusters:\n  - {name: demo, url: \"http://127.0.0.1:1\"}\n  - {name: staging, url: \"https://127.0.0.1:6443\", caFile: staging-ca.crt}\n",
			[]string{"clusters[1] (staging): caFile: open ", "staging-ca.crt: no such file or directory"},
		},
		"https without ca": {
			"clusters:\n  - {name: demo, url: \"https://127.0.0.1:6443\"}\n",
			[]string{"clusters[0] (demo): caFile: an https upstream needs caFile or caData"},
		},
		"ca is not a certificate": {
			"clusters:\n  - {name: demo, url: \"https://127.0.0.1:6443\", caFile: garbage.pem}\n",
			[]string{"clusters[0] (demo): caFile: no PEM certificate found"},
		},
		"ca is a key": {
			"clusters:\n  - {name: demo, url: \"https://127.0.0.1:6443\", caFile: edge.key}\n",
			[]string{`clusters[0] (demo): caFile: holds a PEM "PRIVATE KEY" block`},
		},
		"ca file and data": {
			"clusters:\n  - {name: demo, url: \"https://127.0.0.1:6443\", caFile: ca.crt, caData: x}\n",
			[]string{"clusters[0] (demo): caFile and caData: set one, not both"},
		},
		"cert without key": {
			"clusters:\n  - {name: demo, url: \"https://127.0.0.1:6443\", caFile: ca.crt, clientCertFile: edge.crt}\n",
			[]string{"clusters[0] (demo): clientKeyFile: clientCertFile is set without a client key"},
		},
		"key without cert": {
			"clusters:\n  - {name: demo, url: \"https://127.0.0.1:6443\", caFile: ca.crt, clientKeyFile: edge.key}\n",
			[]string{"clusters[0] (demo): clientCertFile: clientKeyFile is set without a client certificate"},
		},
		"cert and key do not match": {
			"clusters:\n  - {name: demo, url: \"https://127.0.0.1:6443\", caFile: ca.crt, clientCertFile: edge.crt, clientKeyFile: other.key}\n",
			[]string{"clusters[0] (demo): clientCertFile: not a matching PEM certificate and key"},
		},
		"tls settings on http": {
			"clusters:\n  - {name: demo, url: \"http://127.0.0.1:6443\", caFile: ca.crt}\n",
			[]string{"clusters[0] (demo): caFile: set for an http upstream"},
		},
		"bad scheme": {
			"clusters:\n  - {name: demo, url: \"ftp://127.0.0.1\"}\n",
			[]string{"clusters[0] (demo): url: \"ftp://127.0.0.1\": scheme must be http or https"},
		},
		"no host": {
			"clusters:\n  - {name: demo, url: \"https:///x\"}\n",
			[]string{"clusters[0] (demo): url: \"https:///x\": has no host"},
		},
		"missing url": {
			"clusters:\n  - {name: demo}\n",
			[]string{"clusters[0] (demo): url: is required"},
		},
		"url with path": {
			"clusters:\n  - {name: demo, url: \"http://127.0.0.1:1/base\"}\n",
			[]string{"clusters[0] (demo): url: \"http://127.0.0.1:1/base\": must not have a path"},
		},
		"bad port": {
			"clusters:\n  - {name: demo, url: \"http://127.0.0.1:70000\"}\n",
			[]string{"port \"70000\" is not a number from 1 to 65535"},
		},
		"bad cluster name": {
			"clusters:\n  - {name: Demo_1, url: \"http://127.0.0.1:1\"}\n",
			[]string{`clusters[0] (Demo_1): name: cluster target: cluster "Demo_1" is not valid`},
		},
		"duplicate cluster": {
			demo + "  - {name: demo, url: \"http://127.0.0.1:2\"}\n",
			[]string{"clusters[1] (demo): name: duplicate of clusters[0]"},
		},
		"bad grafana": {
			"clusters:\n  - {name: demo, url: \"http://127.0.0.1:1\", grafana: {url: \"https://127.0.0.1:3000\"}}\n",
			[]string{"clusters[0] (demo): grafana: caFile: an https upstream needs caFile or caData"},
		},
		"space with a bad name": {
			"clusters:\n  - {name: demo, url: \"http://127.0.0.1:1\", spaces: [{name: Team_A, project: p}]}\n",
			[]string{"clusters[0] (demo): spaces[0] (Team_A): name:"},
		},
		"space without a project": {
			"clusters:\n  - {name: demo, url: \"http://127.0.0.1:1\", spaces: [{name: team-a}]}\n",
			[]string{`clusters[0] (demo): spaces[0] (team-a): project ""`},
		},
		"duplicate space": {
			"clusters:\n  - {name: demo, url: \"http://127.0.0.1:1\", spaces: [{name: a, project: p}, {name: a, project: q}]}\n",
			[]string{"clusters[0] (demo): spaces[1] (a): name: duplicate space"},
		},
		"virtual cluster of an unknown cluster": {
			demo + "virtualClusters:\n  - {name: vc1, namespace: ns, cluster: prod, url: \"http://127.0.0.1:1\"}\n",
			[]string{`virtualClusters[0] (vc1): cluster: "prod" is not the name of an entry in clusters`},
		},
		"virtual cluster without namespace": {
			demo + "virtualClusters:\n  - {name: vc1, cluster: demo, url: \"http://127.0.0.1:1\"}\n",
			[]string{"virtualClusters[0] (vc1): name: virtualcluster target: namespace is empty"},
		},
		"duplicate virtual cluster": {
			demo + "virtualClusters:\n  - {name: vc1, namespace: ns, cluster: demo, url: \"http://127.0.0.1:1\"}\n  - {name: vc1, namespace: ns, cluster: demo, url: \"http://127.0.0.1:2\"}\n",
			[]string{"virtualClusters[1] (vc1): name: duplicate of virtualClusters[0]"},
		},
		"bad tls server name": {
			"clusters:\n  - {name: demo, url: \"https://127.0.0.1:6443\", caFile: ca.crt, tlsServerName: \"not a name\"}\n",
			[]string{`clusters[0] (demo): tlsServerName: "not a name" is neither an IP address nor a DNS name`},
		},
		"every error at once": {
			"management: {url: \"https://127.0.0.1:1\"}\nclusters:\n  - {name: demo, url: \"ftp://x\"}\n",
			[]string{"management: caFile: an https upstream needs", "clusters[0] (demo): url:"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t)
			path := f.write(t, "targets.yaml", []byte(tc.file))
			_, err := Load(path)
			if err == nil {
				t.Fatal("Load succeeded, want an error")
			}
			if !strings.HasPrefix(err.Error(), "load targets "+path+": ") {
				t.Errorf("error %q does not name the file", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not contain %q", err, w)
				}
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	if err == nil || !strings.Contains(err.Error(), "nope.yaml: no such file or directory") {
		t.Fatalf("Load of a missing file = %v, want a not-found error naming it", err)
	}
}

func TestLoadNoTargets(t *testing.T) {
	f := newFixture(t)
	m, err := Load(f.write(t, "targets.yaml", []byte("clusters: []\n")))
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Targets) != 0 {
		t.Errorf("targets = %v, want none", m.Targets)
	}
}
