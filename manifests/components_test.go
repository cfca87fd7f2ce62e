package manifests_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/keygate-dev/keygate/internal/pki"
	"github.com/keygate-dev/keygate/internal/toolbin"
	"github.com/keygate-dev/keygate/xds/source/file"
)

// components are the Go components the chart runs, with the command line of their help.
var components = map[string][]string{
	"xds":      {"--help"},
	"extauthz": {"--help"},
	"keystore": {"serve", "--help"},
}

var (
	helpOnce sync.Once
	helps    map[string]string
	helpErr  error
)

// componentHelp builds the three components (from the build cache, mostly) and returns each
// one's --help, which lists every flag with its environment variable: `--name (ENV_NAME)`.
func componentHelp(t *testing.T) map[string]string {
	t.Helper()
	helpOnce.Do(func() {
		root, err := toolbin.RepoRoot()
		if err != nil {
			helpErr = err
			return
		}
		dir, err := os.MkdirTemp("", "keygate-manifests-")
		if err != nil {
			helpErr = err
			return
		}
		defer os.RemoveAll(dir)
		args := []string{"build", "-o", dir + "/"}
		for c := range components {
			args = append(args, "./"+c+"/cmd/"+c)
		}
		cmd := exec.Command("go", args...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			helpErr = err
			t.Logf("go build: %s", out)
			return
		}
		helps = map[string]string{}
		for c, helpArgs := range components {
			// --help exits 0 or 2 depending on the flag package; the text is what matters.
			out, _ := exec.Command(filepath.Join(dir, c), helpArgs...).CombinedOutput()
			helps[c] = string(out)
		}
	})
	if helpErr != nil {
		t.Fatalf("build the components: %v", helpErr)
	}
	return helps
}

var flagName = regexp.MustCompile(`^--([a-z0-9-]+)`)

// TestFlagsAreTheComponents: every flag and environment variable the chart gives xds, extauthz
// and keystore, with every values file, is one the component's --help lists; a renamed or
// misspelt flag fails here, not in a crash-looping pod.
func TestFlagsAreTheComponents(t *testing.T) {
	help := componentHelp(t)
	for name, file := range valuesFiles(t) {
		t.Run(name, func(t *testing.T) {
			for workload, pod := range podTemplates(t, renderValues(t, file)) {
				for _, c := range pod.Spec.Containers {
					h, ours := help[c.Name]
					if !ours {
						continue
					}
					checkFlags(t, workload, c, h)
				}
			}
		})
	}
}

func checkFlags(t *testing.T, workload string, c corev1.Container, help string) {
	t.Helper()
	if len(help) < 200 {
		t.Fatalf("%s --help printed too little to check against:\n%s", c.Name, help)
	}
	for _, a := range c.Args {
		if m := flagName.FindStringSubmatch(a); m != nil && !strings.Contains(help, "--"+m[1]+" (") {
			t.Errorf("%s: %s has no flag --%s", workload, c.Name, m[1])
		}
	}
	for _, e := range c.Env {
		if strings.ToUpper(strings.SplitN(e.Name, "_", 2)[0]) == strings.ToUpper(c.Name) && !strings.Contains(help, "("+e.Name+")") {
			t.Errorf("%s: %s has no environment variable %s", workload, c.Name, e.Name)
		}
	}
}

// TestTargetsFileLoads: the targets file the chart gives xds loads with xds's own loader (the
// mounted certificate files stood in by real ones), with keystore's upstreams and the extra
// targets of the values.
func TestTargetsFileLoads(t *testing.T) {
	dir := t.TempDir()
	ca, err := pki.NewCA("keygate control plane")
	if err != nil {
		t.Fatal(err)
	}
	client, err := ca.Client("keygate-edge")
	if err != nil {
		t.Fatal(err)
	}
	for path, data := range map[string][]byte{
		"keystore-ca/ca.crt":  ca.CertPEM,
		"edge-client/tls.crt": client.CertPEM,
		"edge-client/tls.key": client.KeyPEM,
	} {
		p := filepath.Join(dir, path)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for name, file := range valuesFiles(t) {
		t.Run(name, func(t *testing.T) {
			var targets string
			for _, o := range renderValues(t, file).objs {
				if o.GetKind() == "ConfigMap" && o.GetName() == release+"-xds" {
					targets, _, _ = unstructuredString(o.Object, "data", "targets.yaml")
				}
			}
			if targets == "" {
				t.Fatalf("no targets.yaml in ConfigMap %s-xds", release)
			}
			path := filepath.Join(dir, name+".yaml")
			if err := os.WriteFile(path, []byte(strings.ReplaceAll(targets, "/etc/keygate/", dir+"/")), 0o600); err != nil {
				t.Fatal(err)
			}
			m, err := loadTargets(path)
			if err != nil {
				t.Fatalf("xds refuses the chart's targets file: %v\n%s", err, targets)
			}
			if m < 2 {
				t.Errorf("%d targets, want keystore's management API and login at least", m)
			}
		})
	}
}

func loadTargets(path string) (int, error) {
	m, err := file.Load(path)
	return len(m.Targets), err
}
