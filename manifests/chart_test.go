package manifests_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/keygate-dev/keygate/internal/kubetest"
	"github.com/keygate-dev/keygate/internal/toolbin"
)

// The chart, and the namespace and release name its tests install it as (the kustomize base
// is rendered the same way).
const (
	chartDir  = "helm/keygate"
	namespace = "keygate"
	release   = "keygate"
)

var update = flag.Bool("update", false, "rewrite the generated kustomize base (kustomize/base/keygate.yaml) from the chart")

// srv is one kube-apiserver for every dry-run of the package.
var srv *kubetest.Server

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(kubetest.Main(m, &srv))
}

// tool finds an installed program or fails saying how to install it.
func tool(t *testing.T, name string) string {
	t.Helper()
	p, err := toolbin.Path(name)
	if err != nil {
		t.Fatalf("%v (make tools installs it)", err)
	}
	return p
}

// run runs a program and returns its standard output; a failure shows its standard error.
func run(t *testing.T, name string, args ...string) []byte {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(tool(t, name), args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	return stdout.Bytes()
}

// valuesFiles are the chart's test values (ci/*-values.yaml), by name.
func valuesFiles(t *testing.T) map[string]string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(chartDir, "ci", "*-values.yaml"))
	if err != nil || len(files) < 5 {
		t.Fatalf("want the chart's test values (default, redis-trial, sentinel, ha, ...) in %s/ci: found %v (%v)", chartDir, files, err)
	}
	m := map[string]string{}
	for _, f := range files {
		m[strings.TrimSuffix(filepath.Base(f), "-values.yaml")] = f
	}
	return m
}

// render is `helm template` of chart with the values files, as YAML.
func render(t *testing.T, chart string, values ...string) []byte {
	t.Helper()
	args := []string{"template", release, chart, "--namespace", namespace}
	for _, v := range values {
		args = append(args, "--values", v)
	}
	return run(t, "helm", args...)
}

// objects decodes every document of rendered YAML.
func objects(t *testing.T, data []byte) []*unstructured.Unstructured {
	t.Helper()
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var objs []*unstructured.Unstructured
	for {
		obj := &unstructured.Unstructured{}
		err := dec.Decode(&obj.Object)
		if errors.Is(err, io.EOF) {
			return objs
		}
		if err != nil {
			t.Fatalf("rendered YAML does not decode: %v", err)
		}
		if len(obj.Object) > 0 {
			objs = append(objs, obj)
		}
	}
}

// TestLint runs `helm lint --strict` with each of the chart's test values.
func TestLint(t *testing.T) {
	for name, file := range valuesFiles(t) {
		t.Run(name, func(t *testing.T) {
			run(t, "helm", "lint", "--strict", chartDir, "--namespace", namespace, "--values", file)
		})
	}
}

// TestBadValuesSayWhatToFix: values the chart refuses (by its values.schema.json or its
// templates) fail the render with a message naming the value.
func TestBadValuesSayWhatToFix(t *testing.T) {
	for name, tc := range map[string]struct{ set, want string }{
		"one extauthz":          {"extauthz.replicas=1,extauthz.autoscaling.enabled=false", "/extauthz/replicas': minimum: got 1, want 2"},
		"extauthz min 1":        {"extauthz.autoscaling.minReplicas=1", "/extauthz/autoscaling/minReplicas': minimum: got 1, want 2"},
		"misspelt value":        {"extauth.replicas=3", "additional properties 'extauth' not allowed"},
		"misspelt nested value": {"redis.adress=x:6379", "additional properties 'adress' not allowed"},
		"no redis":              {"redis.address=", "redis.address is required"},
		"unknown redis deploy":  {"redis.deploy=cluster", "value must be one of 'none', 'single', 'sentinel'"},
		"management target":     {"xds.extraTargets.management.url=https://x", "xds.extraTargets.management"},
		"unnamed edge secret":   {"tls.edge=", "the Secret of volume edge-tls is not named"},
		"oidc without url":      {"keystore.oidc.enabled=true", "keystore.oidc.enabled needs keystore.externalURL"},
		"oidc without key":      {"keystore.oidc.enabled=true,keystore.externalURL=https://edge.example.com", "need keystore.encryptionKey.secretName"},
	} {
		t.Run(name, func(t *testing.T) {
			cmd := exec.Command(tool(t, "helm"), "template", release, chartDir, "--namespace", namespace, "--set", tc.set)
			out, err := cmd.CombinedOutput()
			if err == nil || !strings.Contains(string(out), tc.want) {
				t.Fatalf("helm template --set %s: %v, want an error saying %q:\n%s", tc.set, err, tc.want, out)
			}
		})
	}
}

// TestServerAcceptsEveryObject applies what each values file renders with `kubectl apply
// --dry-run=server` to a real kube-apiserver that has the project's CRDs and the Prometheus
// Operator's: the API server's validation (schemas, CRD schemas, defaults) accepts every object.
// A kind whose CRD is not installed fails it.
func TestServerAcceptsEveryObject(t *testing.T) {
	kubeconfig := prepareCluster(t)
	dir := t.TempDir()
	for name, file := range valuesFiles(t) {
		t.Run(name, func(t *testing.T) {
			out := filepath.Join(dir, name+".yaml")
			if err := os.WriteFile(out, render(t, chartDir, file), 0o644); err != nil {
				t.Fatal(err)
			}
			dryRun(t, kubeconfig, out)
		})
	}
}

// dryRun is `kubectl apply --dry-run=server --validate=strict` of a file (unknown or duplicate
// fields are errors); it also checks that kubectl saw every object of the file.
func dryRun(t *testing.T, kubeconfig, file string) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	want := len(objects(t, data))
	out := run(t, "kubectl", "--kubeconfig", kubeconfig, "apply", "--dry-run=server", "--validate=strict", "-f", file)
	if got := strings.Count(string(out), "(server dry run)"); got != want {
		t.Fatalf("kubectl applied %d objects of %d:\n%s", got, want, out)
	}
}

// prepareCluster installs the CRDs and namespaces the chart's objects need, once, and returns
// a kubeconfig for kubectl.
func prepareCluster(t *testing.T) string {
	t.Helper()
	kubeconfig := filepath.Join(srv.Dir, "admin.kubeconfig")
	if _, err := os.Stat(kubeconfig); err == nil {
		return kubeconfig
	}
	root, err := toolbin.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	operator, err := filepath.Glob(filepath.Join(root, ".tools", "crds", "prometheus-operator-*", "*.yaml"))
	if err != nil || len(operator) == 0 {
		t.Fatalf("the Prometheus Operator's CRDs are not in .tools/crds (%v): make tools fetches them", err)
	}
	ours, err := filepath.Glob(filepath.Join(root, "manifests", "crds", "targets.keygate.dev_*.yaml"))
	if err != nil || len(ours) == 0 {
		t.Fatalf("no CRDs in manifests/crds: %v", err)
	}
	ns := filepath.Join(t.TempDir(), "namespaces.yaml")
	var doc strings.Builder
	for _, n := range []string{namespace, "observability", "monitoring"} {
		fmt.Fprintf(&doc, "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: %s}\n", n)
	}
	if err := os.WriteFile(ns, []byte(doc.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := srv.Apply(ctx, append(append(ours, operator...), ns)...); err != nil {
		t.Fatalf("install CRDs and namespaces: %v", err)
	}
	if err := srv.WriteKubeconfig(kubeconfig); err != nil {
		t.Fatal(err)
	}
	return kubeconfig
}

// TestChartCRDsAreTheProjects: the chart installs the CRDs of manifests/crds, unchanged (Helm
// reads them from the chart's crds/ folder; keep one truth).
func TestChartCRDsAreTheProjects(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("crds", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var crds int
	for _, f := range files {
		if filepath.Base(f) == "kustomization.yaml" {
			continue
		}
		crds++
		want, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(chartDir, "crds", filepath.Base(f)))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s/crds/%s differs from %s (or is missing: %v): cp manifests/crds/%s %s/crds/", chartDir, filepath.Base(f), f, err, filepath.Base(f), chartDir)
		}
	}
	chartFiles, _ := filepath.Glob(filepath.Join(chartDir, "crds", "*.yaml"))
	if crds == 0 || len(chartFiles) != crds {
		t.Errorf("manifests/crds has %d CRDs, the chart's crds/ %d", crds, len(chartFiles))
	}
}
