package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keygate-dev/keygate/internal/toolbin"
)

// tmuxServer is a tmux server of the test's own (its own socket), holding one window.
type tmuxServer struct {
	t          *testing.T
	bin, sock  string
	env        []string
	screenRows int
}

func newTmux(t *testing.T) *tmuxServer {
	t.Helper()
	bin, err := toolbin.Path("tmux")
	if err != nil {
		t.Fatalf("%v (Debian: apt-get install tmux; scripts/tools.sh installs it)", err)
	}
	// A short socket path: a Unix socket's path is limited to about 100 bytes.
	dir, err := os.MkdirTemp("", "kgtmux")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	s := &tmuxServer{t: t, bin: bin, sock: filepath.Join(dir, "s"), env: append(os.Environ(), "TERM=xterm-256color")}
	t.Cleanup(func() { _, _ = s.tmux("", "kill-server") })
	return s
}

// tmux runs a tmux client of this server; stdin goes to its standard input.
func (s *tmuxServer) tmux(stdin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.bin, append([]string{"-S", s.sock}, args...)...)
	cmd.Env, cmd.Stdin = s.env, strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("tmux %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// screen is what the window shows now.
func (s *tmuxServer) screen() string {
	out, err := s.tmux("", "capture-pane", "-p", "-t", "main")
	if err != nil {
		s.t.Fatal(err)
	}
	return out
}

// waitFor polls the screen until it shows text, and returns it.
func (s *tmuxServer) waitFor(text string) string {
	s.t.Helper()
	var screen string
	eventually(s.t, 60*time.Second, "the terminal to show "+text, func() error {
		if screen = s.screen(); !strings.Contains(screen, text) {
			return errors.New(screen)
		}
		return nil
	})
	return screen
}

// TestKeygateCLITerminal runs `keygate login URL --username NAME` in a real terminal (tmux):
// it prompts for the password, the password is typed (pasted from a tmux buffer, so it is on
// no command line) and never shown, and the login works.
func TestKeygateCLITerminal(t *testing.T) {
	t.Parallel()
	tm := newTmux(t)
	name, password := unique("tty"), "pw-"+randomHex(t, 12)
	keystoreCmd(t, password+"\n", "create-user", name, "--password-stdin", "--bcrypt-cost", "4")
	c := newKeygateCLI(t)
	shell := fmt.Sprintf("KEYGATE_CONFIG=%q KUBECONFIG=%q %q login %q --username %q --certificate-authority %q; echo EXIT=$?; sleep 300",
		c.config, c.kubeconfig, filepath.Join(platform.Bin, "keygate"), platform.EdgeURL, name, edgeCA())
	if _, err := tm.tmux("", "new-session", "-d", "-s", "main", "-x", "160", "-y", "40", shell); err != nil {
		t.Fatal(err)
	}
	tm.waitFor("Password:") // capture-pane drops trailing spaces
	if _, err := tm.tmux(password, "load-buffer", "-b", "pw", "-"); err != nil {
		t.Fatal(err)
	}
	if _, err := tm.tmux("", "paste-buffer", "-d", "-b", "pw", "-t", "main"); err != nil {
		t.Fatal(err)
	}
	if _, err := tm.tmux("", "send-keys", "-t", "main", "Enter"); err != nil {
		t.Fatal(err)
	}
	screen := tm.waitFor("EXIT=")
	t.Logf("the terminal:\n%s", strings.TrimRight(screen, "\n"))
	if strings.Contains(screen, password) {
		t.Errorf("the password was shown:\n%s", screen)
	}
	if !strings.Contains(screen, "EXIT=0") || !strings.Contains(screen, "Logged in at "+platform.EdgeURL+" as "+name) {
		t.Errorf("login in a terminal:\n%s", screen)
	}
	if out := c.keygate("", "list", "accesskeys"); !strings.Contains(out, "Login") {
		t.Errorf("after the terminal login, list accesskeys:\n%s", out)
	}
}
