package cli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/keygate-dev/keygate/internal/pki"
	"github.com/keygate-dev/keygate/internal/redisserver"
	"github.com/keygate-dev/keygate/keystore/store"
)

// A chosen key comes from stdin or a file and is the key stored; it is never printed anywhere
// but stdout, where create-key always prints the key.
func TestCreateKeyWithChosenKey(t *testing.T) {
	fromStdin := "chosen-key-from-stdin-0123456789-" + runID
	fromFile := "chosen-key-from-a-file-0123456789-" + runID
	file := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(file, []byte(fromFile+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	keys := store.New(redis.NewClient(&redis.Options{Addr: redisAddr}))
	for _, tc := range []struct {
		stdin, plain string
		args         []string
	}{
		{fromStdin + "\n", fromStdin, []string{"--key-stdin"}},
		{"", fromFile, []string{"-key-file", file}},
	} {
		code, out, errOut := runIO(tc.stdin, append([]string{"create-key", "--redis-address", redisAddr, "--user", "ci-bot", "--name", unique("chosen")}, tc.args...)...)
		if code != 0 || out != tc.plain+"\n" {
			t.Fatalf("%v: exit %d, stdout %q, stderr %s; want the chosen key on stdout", tc.args, code, out, errOut)
		}
		if strings.Contains(errOut, tc.plain) {
			t.Errorf("%v: the key is on stderr too", tc.args)
		}
		if k, err := keys.Lookup(context.Background(), tc.plain); err != nil || k.Spec.User != "ci-bot" {
			t.Errorf("%v: the chosen key looks up %v, %v; want ci-bot's key", tc.args, k, err)
		}
	}
}

// A key or a Redis password on the command line is refused, with where to put it instead; the
// refusal never repeats it, and nothing is created.
func TestSecretsNeverOnTheCommandLine(t *testing.T) {
	tests := map[string]struct {
		stdin   string
		args    []string
		code    int
		message string
	}{
		"--key":                 {"", []string{"create-key", "--user", "u", "--key", "hunter22-hunter22-hunter22-hunter22"}, 2, "keystore: " + keyFlagHint},
		"-key=":                 {"", []string{"create-key", "--user", "u", "-key=hunter22-hunter22-hunter22-hunter22"}, 2, "keystore: " + keyFlagHint},
		"--redis-password":      {"", []string{"list-keys", "--redis-password", "hunter22"}, 2, "keystore: --redis-password is never taken on the command line (it would show in shell history and ps): put it in a file named by --redis-password-file, or set the environment variable KEYSTORE_REDIS_PASSWORD"},
		"short chosen key":      {"hunter22\n", []string{"create-key", "--redis-address", redisAddr, "--user", "u", "--key-stdin"}, 1, "at least 32 characters"},
		"no key on stdin":       {"", []string{"create-key", "--redis-address", redisAddr, "--user", "u", "--key-stdin"}, 2, "--key-stdin: no key on stdin; pipe one in"},
		"stdin and file":        {"", []string{"create-key", "--user", "u", "--key-stdin", "--key-file", "k"}, 2, "--key-stdin and --key-file: give one"},
		"missing key file":      {"", []string{"create-key", "--user", "u", "--key-file", "/nonexistent/key"}, 2, "--key-file: open /nonexistent/key"},
		"missing password file": {"", []string{"list-keys", "--redis-password-file", "/nonexistent/pw"}, 2, "--redis-password-file: open /nonexistent/pw"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			code, out, errOut := runIO(tc.stdin, tc.args...)
			if code != tc.code || !strings.Contains(errOut, tc.message) {
				t.Errorf("exit %d, stderr %q; want exit %d mentioning %q", code, errOut, tc.code, tc.message)
			}
			if out != "" || strings.Contains(errOut, "hunter22") {
				t.Errorf("stdout %q, stderr %q: a refused secret was printed", out, errOut)
			}
		})
	}
}

// TestCommandsOverTLSWithAnACLUser runs the commands against a real Redis that speaks only TLS,
// wants a client certificate and knows only an ACL user, whose password comes from the
// environment: the commands work with the TLS flags, and without the client certificate they
// fail with TLS's reason.
func TestCommandsOverTLSWithAnACLUser(t *testing.T) {
	ca, err := pki.NewCA("keystore-cli-redis-ca")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := redisserver.Start(context.Background(), redisserver.Options{Dir: t.TempDir(), TLS: ca, Users: map[string]string{"keystore": "correct-horse"}})
	if err != nil {
		t.Fatalf("this test needs a real redis-server built with TLS: %v", err)
	}
	defer srv.Stop()
	pair, err := ca.Client("keystore")
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, err := pair.Write(t.TempDir(), "client")
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("KEYSTORE_REDIS_PASSWORD", "correct-horse")
	t.Setenv("KEYSTORE_REDIS_ADDRESS", srv.Addr)
	redisTLS := []string{"--redis-username", "keystore", "--redis-ca-file", srv.CAFile, "--redis-client-key-file", keyFile}
	name, plain := unique("tls"), "a-chosen-key-over-tls-0123456789-"+runID

	code, out, errOut := runIO(plain+"\n", append([]string{"create-key", "--user", "alice", "--name", name, "--key-stdin", "--redis-client-cert-file", certFile}, redisTLS...)...)
	if code != 0 || out != plain+"\n" {
		t.Fatalf("create-key over TLS: exit %d, stdout %q, stderr %s", code, out, errOut)
	}
	if code, out, errOut := run(append([]string{"get-key", name, "--redis-client-cert-file", certFile}, redisTLS...)...); code != 0 || !strings.Contains(out, `"user": "alice"`) {
		t.Errorf("get-key over TLS: exit %d, stdout %s, stderr %s", code, out, errOut)
	}
	code, _, errOut = run("list-keys", "--redis-username", "keystore", "--redis-ca-file", srv.CAFile)
	if code != 1 || !strings.Contains(errOut, "certificate required") {
		t.Errorf("without the client certificate: exit %d, stderr %q; want exit 1 saying the certificate is required", code, errOut)
	}
}
