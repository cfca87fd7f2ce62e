package user

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The key create sends: whole seconds rounded up, and a scope file read strictly, so that a
// misspelt field is an error rather than a wider key.
func TestNewAccessKey(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	k, err := newAccessKey("ci", createKeyFlags{ttl: 90*time.Minute + time.Millisecond, scopeFile: write("ok.yaml", "clusters:\n- cluster: demo\n")})
	if err != nil || k.Spec.TTL != 5401 || k.Spec.Scope == nil || k.Spec.Scope.Clusters[0].Cluster != "demo" || k.Spec.Type != "User" {
		t.Errorf("newAccessKey: %v %+v", err, k)
	}
	if k, err := newAccessKey("ci", createKeyFlags{}); err != nil || k.Spec.TTL != 0 || k.Spec.Scope != nil {
		t.Errorf("no flags: %v %+v", err, k)
	}
	if _, err := newAccessKey("ci", createKeyFlags{scopeFile: write("typo.yaml", "cluster:\n- cluster: demo\n")}); err == nil || !strings.Contains(err.Error(), "not an AccessKeyScope") {
		t.Errorf("a misspelt scope field: %v", err)
	}
	if _, err := newAccessKey("ci", createKeyFlags{ttl: -time.Hour}); err == nil {
		t.Error("a negative ttl was taken")
	}
}

// The plugin asks the edge only when the same parent process runs it again (client-go's retry
// after a 401), never on a first run.
func TestAskedAgain(t *testing.T) {
	o := &options{configPath: filepath.Join(t.TempDir(), "config.json")}
	if o.askedAgain() {
		t.Error("first run counted as a second")
	}
	if !o.askedAgain() {
		t.Error("second run of the same parent not noticed")
	}
	if st, err := os.Stat(o.callersFile()); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("callers file: %v %v", st, err)
	}
}

// use --print -o json prints the same kubeconfig as the YAML, in JSON: one context, its exec
// user, no key.
func TestPrintKubeconfigJSON(t *testing.T) {
	var out strings.Builder
	o := &options{streams: streams{out: &out}}
	c := Context{Name: "loft_demo", Server: "https://edge.example/kubernetes/cluster/demo", Command: "/bin/keygate", Args: []string{"credential"}}
	if err := o.printKubeconfig(c, "json"); err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		CurrentContext string `json:"current-context"`
		Users          []struct {
			User struct {
				Exec struct{ Command, APIVersion string } `json:"exec"`
			} `json:"user"`
		} `json:"users"`
	}
	if err := json.Unmarshal([]byte(out.String()), &cfg); err != nil || cfg.CurrentContext != "loft_demo" || len(cfg.Users) != 1 ||
		cfg.Users[0].User.Exec.Command != "/bin/keygate" || cfg.Users[0].User.Exec.APIVersion != ExecAPIVersion {
		t.Errorf("use --print -o json: %v\n%s", err, out.String())
	}
}
