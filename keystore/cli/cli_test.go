package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"sigs.k8s.io/yaml"

	"github.com/keygate-dev/keygate/internal/redisserver"
	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
	"github.com/keygate-dev/keygate/keystore/store"
)

var redisAddr string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "keygate-cli-test-")
	if err != nil {
		panic(err)
	}
	srv, err := redisserver.Start(context.Background(), redisserver.Options{Dir: dir})
	if err != nil {
		fmt.Fprintln(os.Stderr, "keystore/cli tests need a real Redis:", err)
		os.Exit(1)
	}
	redisAddr = srv.Addr
	code := m.Run()
	srv.Stop()
	os.RemoveAll(dir)
	os.Exit(code)
}

func run(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = Main(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// Names differ per run, so that the tests also pass with -count=N against one Redis.
var runID = strconv.FormatInt(time.Now().UnixNano()%1e9, 36)

func TestCreateKeyPrintsOnlyTheKey(t *testing.T) {
	name := "ci-" + runID
	code, out, errOut := run("create-key", "--redis-address", redisAddr, "--name", name, "--user", "alice", "--groups", "dev, qa", "--ttl", "24h")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	plain := strings.TrimSpace(out)
	if !strings.HasPrefix(plain, store.KeyPrefix) || strings.Contains(plain, "\n") {
		t.Fatalf("stdout = %q, want just the key", out)
	}
	if strings.Contains(errOut, plain) {
		t.Error("the key was also printed on stderr")
	}
	k, err := store.New(redis.NewClient(&redis.Options{Addr: redisAddr})).Lookup(context.Background(), plain)
	if err != nil {
		t.Fatal(err)
	}
	if k.Spec.User != "alice" || strings.Join(k.Spec.Groups, ",") != "dev,qa" || k.Spec.TTL != 86400 || k.Spec.Type != v1.AccessKeyTypeUser {
		t.Errorf("stored key = %+v", k.Spec)
	}

	code, out, _ = run("get-key", "--redis-address", redisAddr, name)
	var got v1.OwnedAccessKey
	if code != 0 || json.Unmarshal([]byte(out), &got) != nil || got.Name != name || strings.Contains(out, plain) {
		t.Errorf("get-key: exit %d, output %s", code, out)
	}
	code, out, _ = run("get-key", "--redis-address", redisAddr, "--output", "yaml", name)
	got = v1.OwnedAccessKey{}
	if code != 0 || yaml.UnmarshalStrict([]byte(out), &got) != nil || got.Name != name || got.Spec.User != "alice" || strings.Contains(out, plain) {
		t.Errorf("get-key --output yaml: exit %d, output %s", code, out)
	}
	if code, _, errOut := run("disable-key", "--redis-address", redisAddr, name); code != 0 {
		t.Fatalf("disable-key: %s", errOut)
	}
	k, _ = store.New(redis.NewClient(&redis.Options{Addr: redisAddr})).Lookup(context.Background(), plain)
	if !k.Spec.Disabled {
		t.Error("disable-key did not disable the key")
	}
	if code, _, errOut := run("delete-key", "--redis-address", redisAddr, name); code != 0 {
		t.Fatalf("delete-key: %s", errOut)
	}
	if code, _, errOut := run("get-key", "--redis-address", redisAddr, name); code != 1 || !strings.Contains(errOut, "not found") {
		t.Errorf("get-key after delete: exit %d, %s", code, errOut)
	}
}

func TestRedisAddressFromEnvironment(t *testing.T) {
	t.Setenv("KEYSTORE_REDIS_ADDRESS", redisAddr)
	if code, out, errOut := run("create-key", "--team", "platform"); code != 0 || !strings.HasPrefix(out, store.KeyPrefix) {
		t.Errorf("exit %d, stdout %q, stderr %s", code, out, errOut)
	}
}

func TestErrors(t *testing.T) {
	tests := map[string]struct {
		args    []string
		code    int
		message string
	}{
		"no command":      {nil, 2, "Usage: keystore COMMAND"},
		"unknown command": {[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		"no owner":        {[]string{"create-key", "--redis-address", redisAddr}, 2, "needs --user or --team"},
		"bad ttl":         {[]string{"create-key", "--redis-address", redisAddr, "--user", "u", "--ttl", "soon"}, 2, `--ttl "soon"`},
		"short key":       {[]string{"create-key", "--redis-address", redisAddr, "--user", "u", "--key", "short"}, 1, "at least 32 characters"},
		"unknown flag":    {[]string{"create-key", "--colour", "red"}, 2, "flag provided but not defined"},
		"missing name":    {[]string{"get-key", "--redis-address", redisAddr}, 2, "exactly one key name"},
		"bad output":      {[]string{"list-keys", "--redis-address", redisAddr, "--output", "table"}, 2, `--output "table": want json or yaml`},
		"redis down":      {[]string{"get-key", "--redis-address", "127.0.0.1:1", "x"}, 1, "connect"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			code, _, errOut := run(tc.args...)
			if code != tc.code || !strings.Contains(errOut, tc.message) {
				t.Errorf("exit %d, stderr %q; want exit %d mentioning %q", code, errOut, tc.code, tc.message)
			}
		})
	}
}

func TestCreateKeyWithScopeFile(t *testing.T) {
	dir := t.TempDir()
	good := dir + "/scope.yaml"
	os.WriteFile(good, []byte("rules:\n  - verbs: [get, list, watch]\n    namespaces: [ci]\n    cluster: demo\n"), 0o644)
	code, out, errOut := run("create-key", "--redis-address", redisAddr, "--user", "ci-bot", "--scope-file", good)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	k, err := store.New(redis.NewClient(&redis.Options{Addr: redisAddr})).Lookup(context.Background(), strings.TrimSpace(out))
	if err != nil {
		t.Fatal(err)
	}
	if k.Spec.Scope == nil || len(k.Spec.Scope.Rules) != 1 || k.Spec.Scope.Rules[0].Cluster != "demo" || strings.Join(k.Spec.Scope.Rules[0].Verbs, ",") != "get,list,watch" {
		t.Errorf("stored scope = %+v", k.Spec.Scope)
	}
	typo := dir + "/typo.yaml"
	os.WriteFile(typo, []byte("rules:\n  - verb: [get]\n"), 0o644)
	if code, _, errOut := run("create-key", "--redis-address", redisAddr, "--user", "u", "--scope-file", typo); code != 2 || !strings.Contains(errOut, `unknown field "rules[0].verb"`) {
		t.Errorf("a scope with a typo: exit %d, %q; want exit 2 naming the field", code, errOut)
	}
}

func TestDefaultName(t *testing.T) {
	valid := regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?-[a-z0-9]{5}$`)
	for owner, base := range map[string]string{
		"alice":                  "alice",
		"Alice@Example.com":      "alice-example-com",
		"Platform Team":          "platform-team",
		"--weird__owner--":       "weird-owner",
		"ü":                      "key",
		strings.Repeat("ab", 40): strings.Repeat("ab", 20),
		strings.Repeat("a-", 40): strings.TrimSuffix(strings.Repeat("a-", 20), "-"),
	} {
		got := defaultName(owner)
		if !strings.HasPrefix(got, base+"-") || len(got) != len(base)+6 || !valid.MatchString(got) {
			t.Errorf("defaultName(%q) = %q, want %q plus a 5-character suffix, a valid name", owner, got, base)
		}
	}
}
