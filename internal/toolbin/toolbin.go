// Package toolbin finds the external programs the project runs (envoy, redis-server,
// kube-apiserver, etcd, kubectl). scripts/tools.sh installs them under .tools/bin; a program
// missing there is looked up on PATH, and a missing one is an error that says how to install it.
package toolbin

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// RepoRoot is the directory holding the project's go.mod, found by walking up from the working
// directory (tests run in their package directory).
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.HasPrefix(string(data), "module github.com/keygate-dev/keygate\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not inside the keygate repository (no go.mod of module github.com/keygate-dev/keygate above the working directory)")
		}
		dir = parent
	}
}

// Dir is .tools/bin of the repository.
func Dir() (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, ".tools", "bin"), nil
}

// Path returns the program to run for name: the environment variable KEYGATE_<NAME>_BIN if set
// (e.g. KEYGATE_KUBE_APISERVER_BIN), else .tools/bin/<name>, else <name> on PATH.
func Path(name string) (string, error) {
	env := "KEYGATE_" + strings.ToUpper(strings.NewReplacer("-", "_").Replace(name)) + "_BIN"
	if p := os.Getenv(env); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%s=%s: %w", env, p, err)
		}
		return p, nil
	}
	if dir, err := Dir(); err == nil {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("%s is not installed (looked in .tools/bin and PATH): run `make tools` (scripts/tools.sh) to install it, or set %s", name, env)
}
