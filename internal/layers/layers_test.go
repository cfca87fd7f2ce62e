package layers

import (
	"bufio"
	"bytes"
	"os/exec"
	"strings"
	"testing"

	"github.com/keygate-dev/keygate/internal/toolbin"
)

const module = "github.com/keygate-dev/keygate/"

// mayImport lists, for each top-level folder, the folders its packages (tests included) may
// import besides their own. A folder listed with a slash is one package tree of another
// component, not the whole component.
var mayImport = map[string][]string{
	"internal": nil,
	"envoy":    {"internal"},
	"keystore": {"internal"},
	"xds":      {"internal", "envoy"},
	// The check service reads keys and users as the key store writes them, and what a key
	// means; never the management API, the login endpoints or the CLI.
	"extauthz": {"internal", "keystore/accesskey", "keystore/apis", "keystore/store", "keystore/users"},
	"localdev": {"internal", "envoy", "xds/source/file"},
	// bench/streams measures exec and port-forward on the whole local platform (its kubelet
	// stand-in, API servers and edge), which localdev starts as the e2e tests use it.
	// bench/authz gives its do-nothing server extauthz's gRPC server options
	// (extauthz/server.GRPCServerOptions), so that the two differ only in what a check does.
	"bench": {"internal", "envoy", "localdev", "xds/translate", "xds/source/kube/apis", "keystore/store", "keystore/apis", "extauthz/server"},
	"e2e":   {"internal", "envoy", "localdev", "extauthz", "keystore", "xds"},
	// Tests of the manifests read the path grammar and start API servers; the dashboard and
	// alert rules describe the components by their metric names only (the e2e test reads the
	// committed JSON, not this code). The chart's tests compare its Envoy bootstrap with
	// package envoy's and load its targets file as xds does; no component imports them.
	"manifests": {"internal", "envoy", "xds/source/file"},
}

func TestImportsRunOneWay(t *testing.T) {
	root, err := toolbin.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Imports " "}} {{join .TestImports " "}} {{join .XTestImports " "}}`, "./...")
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	packages := 0
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		pkg := strings.TrimPrefix(fields[0], module)
		packages++
		top, _, _ := strings.Cut(pkg, "/")
		allowed, known := mayImport[top]
		if !known {
			t.Errorf("%s: top-level folder %q has no entry in mayImport: say what it may import", pkg, top)
			continue
		}
		for _, imp := range fields[1:] {
			dep, ours := strings.CutPrefix(imp, module)
			if !ours || dep == pkg || within(dep, top) {
				continue
			}
			if !allowedDep(dep, allowed) {
				t.Errorf("%s imports %s: %s may import only its own packages and %v (docs/architecture.md)", pkg, dep, top, allowed)
			}
		}
	}
	if packages < 20 {
		t.Fatalf("go list found %d packages; the test is not reading the module", packages)
	}
}

func within(pkg, tree string) bool { return pkg == tree || strings.HasPrefix(pkg, tree+"/") }

func allowedDep(dep string, allowed []string) bool {
	for _, a := range allowed {
		if within(dep, a) {
			return true
		}
	}
	return false
}
