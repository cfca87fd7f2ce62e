package monitoring

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/keygate-dev/keygate/internal/toolbin"
)

// TestDashboardIsGenerated: the committed JSON is what the code generates, so nobody edits the
// JSON by hand and the code is what reviewers read.
func TestDashboardIsGenerated(t *testing.T) {
	want, err := Dashboard()
	if err != nil {
		t.Fatal(err)
	}
	root, err := toolbin.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(root, DashboardFile))
	if err != nil {
		t.Fatalf("%v: run `go run ./manifests/monitoring/cmd/dashboard` to generate it", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from what manifests/monitoring generates: run `go run ./manifests/monitoring/cmd/dashboard` and commit the result", DashboardFile)
	}
}
