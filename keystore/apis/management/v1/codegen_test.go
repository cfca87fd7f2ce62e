package v1_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The repository root, seen from this package's directory (go test runs tests there).
const repoRoot = "../../../.."

// generated are the files scripts/codegen.sh writes, relative to the repository root.
var generated = []string{
	"keystore/apis/management/v1/zz_generated.deepcopy.go",
	"keystore/apis/management/v1/zz_generated.model_name.go",
	"keystore/apis/management/v1/openapi/zz_generated.openapi.go",
	"keystore/apis/management/v1/openapi/violations.report",
}

// TestGeneratedFilesUpToDate runs the generators on a copy of the API sources, so that a stale
// committed file fails the tests instead of surfacing later as a server that silently lacks a
// field in its OpenAPI or deep-copies only part of an object. The copy keeps the working tree
// untouched even when the generators change something.
func TestGeneratedFilesUpToDate(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the code generators")
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go is not on PATH")
	}
	tmp := t.TempDir()
	for _, f := range []string{"go.mod", "go.sum", "scripts/codegen.sh", "scripts/boilerplate.go.txt"} {
		copyFile(t, filepath.Join(repoRoot, f), filepath.Join(tmp, f))
	}
	// The API package's hand-written sources only: the generated files must come from the run.
	sources, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range sources {
		if strings.HasPrefix(f, "zz_generated.") || strings.HasSuffix(f, "_test.go") {
			continue
		}
		copyFile(t, f, filepath.Join(tmp, "keystore/apis/management/v1", f))
	}

	cmd := exec.Command("bash", filepath.Join(tmp, "scripts/codegen.sh"))
	cmd.Dir = tmp
	// A go.work elsewhere on the path must not pull in other modules.
	cmd.Env = append(os.Environ(), "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scripts/codegen.sh: %v\n%s", err, out)
	}

	for _, f := range generated {
		want, err := os.ReadFile(filepath.Join(tmp, f))
		if err != nil {
			t.Fatalf("the generators did not write %s: %v", f, err)
		}
		got, err := os.ReadFile(filepath.Join(repoRoot, f))
		if err != nil {
			t.Errorf("%s is missing: run make generate", f)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is out of date: run make generate (-committed +generated):\n%s", f, firstLines(cmp.Diff(strings.Split(string(got), "\n"), strings.Split(string(want), "\n")), 40))
		}
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// firstLines keeps a diff of a regenerated 4000-line file readable.
func firstLines(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	if len(lines) > n {
		lines[n] = "..."
	}
	return strings.Join(lines, "\n")
}
