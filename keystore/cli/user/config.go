// Package user is the keygate command: what a user runs to sign in at an edge, see what their
// key can reach, and write kubeconfig contexts whose credentials come from this command (a
// kubectl exec credential plugin), so that the key lives in one 0600 file and never in a
// kubeconfig. It speaks to the edge only (the login endpoints and the management API).
package user

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// Login is what `keygate login` saves: the edge, how to trust it, and the key.
type Login struct {
	// Server is the edge's URL, https://host:port.
	Server string `json:"server"`
	// CertificateAuthorityData is the PEM of the CA the edge's certificate is checked with;
	// empty: the system's roots.
	CertificateAuthorityData []byte `json:"certificateAuthorityData,omitempty"`
	InsecureSkipTLSVerify    bool   `json:"insecureSkipTLSVerify,omitempty"`
	// AccessKey is the key; AccessKeyName its object name.
	AccessKey     string `json:"accessKey"`
	AccessKeyName string `json:"accessKeyName,omitempty"`
	User          string `json:"user,omitempty"`
	// LoginKey is true for a key this command got by logging in: logout deletes it at the edge.
	// A key given with --access-key-stdin is only forgotten.
	LoginKey bool `json:"loginKey,omitempty"`
	// ExpiresAt is when the key stops working, if the edge said.
	ExpiresAt *time.Time `json:"expiresAt,omitempty"`
}

// errNotLoggedIn is what every command that needs a key says without one.
var errNotLoggedIn = errors.New("not logged in: run `keygate login URL`")

// DefaultConfigPath is $XDG_CONFIG_HOME/keygate/config.json (os.UserConfigDir).
func DefaultConfigPath() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("no config directory (%w): set --config or KEYGATE_CONFIG", err)
	}
	return filepath.Join(dir, "keygate", "config.json"), nil
}

// loadLogin reads the saved login; errNotLoggedIn when there is none.
func loadLogin(path string) (*Login, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errNotLoggedIn
	}
	if err != nil {
		return nil, err
	}
	var l Login
	if err := json.Unmarshal(data, &l); err != nil {
		return nil, fmt.Errorf("%s: %w (run `keygate login` to write it again)", path, err)
	}
	if l.AccessKey == "" {
		return nil, errNotLoggedIn
	}
	return &l, nil
}

// saveLogin writes l readable by its owner only, atomically: a kubectl running the credential
// plugin at that moment reads the old login or the new one, never half of one.
func saveLogin(path string, l *Login) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	data, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".config-*.json")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// forgetLogin removes the saved login, and the credential plugin's callers file beside it.
func forgetLogin(path string) error {
	for _, p := range []string{path, path + ".callers"} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}
