package user

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// access is where the command writes: --kubeconfig explicit, else KUBECONFIG (set by the test).
func access(explicit string) *clientcmd.PathOptions {
	o := options{kubeconfig: explicit}
	return o.pathOptions()
}

func existing(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["work"] = &clientcmdapi.Cluster{Server: "https://work.example"}
	cfg.AuthInfos["work"] = &clientcmdapi.AuthInfo{Token: "work-token"}
	cfg.Contexts["work"] = &clientcmdapi.Context{Cluster: "work", AuthInfo: "work"}
	cfg.CurrentContext = "work"
	data, err := clientcmd.Write(*cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func demo(name string) Context {
	return Context{Name: name, Server: "https://edge.example/kubernetes/cluster/demo", Command: "/usr/bin/keygate", Args: []string{"credential"}}
}

func TestMerge(t *testing.T) {
	for name, tc := range map[string]struct {
		mode          os.FileMode
		switchContext bool
		wantCurrent   string
	}{
		"switches when asked":         {0o600, true, "loft_demo"},
		"keeps current otherwise":     {0o600, false, "work"},
		"keeps a group-readable mode": {0o640, true, "loft_demo"},
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "config")
			existing(t, path, tc.mode)
			if err := Merge(access(path), demo("loft_demo"), tc.switchContext); err != nil {
				t.Fatal(err)
			}
			cfg, err := clientcmd.LoadFromFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.CurrentContext != tc.wantCurrent {
				t.Errorf("current context %q, want %q", cfg.CurrentContext, tc.wantCurrent)
			}
			if cfg.AuthInfos["work"] == nil || cfg.AuthInfos["work"].Token != "work-token" || cfg.Contexts["work"] == nil {
				t.Errorf("the existing context was not kept: %+v", cfg.Contexts)
			}
			u := cfg.AuthInfos["loft_demo"]
			if u == nil || u.Exec == nil || u.Exec.APIVersion != ExecAPIVersion || u.Token != "" {
				t.Errorf("user loft_demo: %+v, want an exec plugin and no token", u)
			}
			if st, _ := os.Stat(path); st.Mode().Perm() != tc.mode {
				t.Errorf("mode %v, want %v", st.Mode().Perm(), tc.mode)
			}
		})
	}
}

// TestMergeKubeconfigList: with KUBECONFIG=a:b, entries go where kubectl config puts them (the
// first file of the list that exists), and the other files are left alone.
func TestMergeKubeconfigList(t *testing.T) {
	dir := t.TempDir()
	a, b, c := filepath.Join(dir, "a"), filepath.Join(dir, "b"), filepath.Join(dir, "c")
	existing(t, b, 0o600)
	existing(t, c, 0o600)
	before, _ := os.ReadFile(c)
	t.Setenv("KUBECONFIG", strings.Join([]string{a, b, c}, string(os.PathListSeparator)))
	if err := Merge(access(""), demo("loft_demo"), true); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.ReadFile(c); string(before) != string(after) {
		t.Errorf("third file changed:\n%s", after)
	}
	if _, err := os.Stat(a); !os.IsNotExist(err) {
		t.Errorf("first file, which did not exist, was written: %v", err)
	}
	cfg, err := clientcmd.LoadFromFile(b)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Contexts["loft_demo"] == nil || cfg.Contexts["work"] == nil || cfg.CurrentContext != "loft_demo" {
		t.Errorf("second file: contexts %v, current %q", cfg.Contexts, cfg.CurrentContext)
	}
}

// TestConcurrentMergesKeepEveryContext: many runs at once each add their context and none is
// lost or half-written (the files stay locked from read to write).
func TestConcurrentMergesKeepEveryContext(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config")
	existing(t, path, 0o600)
	const n = 16
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- Merge(access(path), demo(fmt.Sprintf("loft_c%d", i)), true)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := clientcmd.LoadFromFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var missing []string
	for i := range n {
		if cfg.Contexts[fmt.Sprintf("loft_c%d", i)] == nil {
			missing = append(missing, fmt.Sprint(i))
		}
	}
	if len(missing) > 0 || cfg.Contexts["work"] == nil {
		t.Errorf("contexts lost: %s (work kept: %v)", strings.Join(missing, ","), cfg.Contexts["work"] != nil)
	}
	if _, err := os.Stat(path + ".lock"); !os.IsNotExist(err) {
		t.Errorf("lock file left behind: %v", err)
	}
}
