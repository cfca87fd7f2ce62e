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
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"sigs.k8s.io/yaml"

	"github.com/keygate-dev/keygate/internal/redisserver"
	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
	"github.com/keygate-dev/keygate/keystore/store"
	"github.com/keygate-dev/keygate/keystore/users"
)

var redisAddr string

func TestMain(m *testing.M) {
	redisserver.TestMain(m, "keystore/cli", redisserver.Options{}, func(srv *redisserver.Server) {
		redisAddr = srv.Addr
	})
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

func runIO(stdin string, args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = MainIO(args, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

var uniqueN atomic.Int64

// unique gives a name that no other test, nor a repeated one (-count=N), nor another run against
// the same Redis uses.
func unique(prefix string) string {
	return fmt.Sprintf("%s-%s-%d", prefix, runID, uniqueN.Add(1))
}

// The lowest bcrypt cost keeps the user tests fast; the default cost is tested once.
const fastCost = "--bcrypt-cost=4"

func userStore() *users.Store {
	return users.New(redis.NewClient(&redis.Options{Addr: redisAddr}), users.Options{Cost: 4})
}

func TestUserCommands(t *testing.T) {
	ctx := context.Background()
	name := unique("alice")
	// Flags after the name, as the usage shows them; the password with a CRLF line ending.
	code, out, errOut := runIO("first password\r\nignored second line\n", "create-user", name, "--redis-address", redisAddr, fastCost,
		"--groups", "dev, qa", "--teams", "platform", "--display-name", "Alice", "--email", "alice@example.com", "--password-stdin")
	if code != 0 {
		t.Fatalf("create-user: exit %d: %s", code, errOut)
	}
	if out != "" || !strings.Contains(errOut, `created user "`+name+`"`) || strings.Contains(errOut, "generated") {
		t.Errorf("create-user --password-stdin: stdout %q, stderr %q; want nothing on stdout", out, errOut)
	}
	u, err := userStore().Authenticate(ctx, name, "first password")
	if err != nil {
		t.Fatalf("the password from stdin does not work: %v", err)
	}
	if u.DisplayName != "Alice" || u.Email != "alice@example.com" || strings.Join(u.Groups, ",") != "dev,qa" || strings.Join(u.Teams, ",") != "platform" {
		t.Errorf("stored user = %+v", u)
	}

	code, out, errOut = run("get-user", "--redis-address", redisAddr, name)
	var got users.User
	if code != 0 || json.Unmarshal([]byte(out), &got) != nil || got.Name != name || strings.Join(got.Teams, ",") != "platform" {
		t.Errorf("get-user: exit %d, %s%s", code, out, errOut)
	}
	noSecrets(t, "get-user", out)
	code, out, _ = run("get-user", name, "--redis-address", redisAddr, "--output", "yaml")
	got = users.User{}
	if code != 0 || yaml.UnmarshalStrict([]byte(out), &got) != nil || got.Email != "alice@example.com" {
		t.Errorf("get-user --output yaml: exit %d, %s", code, out)
	}
	noSecrets(t, "get-user --output yaml", out)

	for _, format := range []string{"json", "yaml"} {
		code, out, _ = run("list-users", "--redis-address", redisAddr, "--output", format)
		var list struct{ Items []users.User }
		if code != 0 || yaml.Unmarshal([]byte(out), &list) != nil {
			t.Fatalf("list-users --output %s: exit %d, %s", format, code, out)
		}
		found := false
		for _, u := range list.Items {
			found = found || u.Name == name
		}
		if !found {
			t.Errorf("list-users --output %s does not list %s: %s", format, name, out)
		}
		noSecrets(t, "list-users", out)
	}

	code, out, errOut = runIO("second password\n", "set-password", "--redis-address", redisAddr, fastCost, name, "--password-stdin")
	if code != 0 || out != "" {
		t.Fatalf("set-password --password-stdin: exit %d, stdout %q, %s", code, out, errOut)
	}
	if _, err := userStore().Authenticate(ctx, name, "second password"); err != nil {
		t.Errorf("the new password does not work: %v", err)
	}
	if _, err := userStore().Authenticate(ctx, name, "first password"); err == nil {
		t.Error("the old password still works")
	}

	code, out, errOut = run("set-password", "--redis-address", redisAddr, fastCost, name)
	generated := strings.TrimSpace(out)
	if code != 0 || len(generated) < 24 || strings.Contains(errOut, generated) || !strings.Contains(errOut, "shown once") {
		t.Fatalf("set-password (generated): exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if _, err := userStore().Authenticate(ctx, name, generated); err != nil {
		t.Errorf("the generated password does not work: %v", err)
	}

	if code, _, errOut := run("delete-user", "--redis-address", redisAddr, name); code != 0 || !strings.Contains(errOut, "deleted user") {
		t.Fatalf("delete-user: exit %d, %s", code, errOut)
	}
	if code, _, errOut := run("get-user", "--redis-address", redisAddr, name); code != 1 || !strings.Contains(errOut, "user not found") {
		t.Errorf("get-user after delete-user: exit %d, %s", code, errOut)
	}
}

// noSecrets fails when output looks like it holds a password or a bcrypt hash.
func noSecrets(t *testing.T, what, output string) {
	t.Helper()
	if strings.Contains(output, "$2a$") || strings.Contains(strings.ToLower(output), "password") {
		t.Errorf("%s printed a password or hash: %s", what, output)
	}
}

// TestCreateUserGeneratesPassword also runs the default bcrypt cost once.
func TestCreateUserGeneratesPassword(t *testing.T) {
	name := unique("gen")
	code, out, errOut := run("create-user", "--redis-address", redisAddr, name)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	password := strings.TrimSuffix(out, "\n")
	if len(password) < 24 || strings.ContainsAny(password, " \n") {
		t.Fatalf("stdout = %q, want just a password of 24 characters or more", out)
	}
	if strings.Contains(errOut, password) || !strings.Contains(errOut, "generated password is on stdout") {
		t.Errorf("stderr = %q; want a note, without the password", errOut)
	}
	if _, err := userStore().Authenticate(context.Background(), name, password); err != nil {
		t.Errorf("the generated password does not work: %v", err)
	}
	if code, out2, _ := run("create-user", "--redis-address", redisAddr, fastCost, unique("gen")); code != 0 || out2 == out {
		t.Errorf("a second generated password: exit %d, same as the first: %v", code, out2 == out)
	}
}

func TestUserCommandErrors(t *testing.T) {
	taken, fresh, nobody := unique("taken"), unique("fresh"), unique("nobody")
	if code, _, errOut := run("create-user", "--redis-address", redisAddr, fastCost, taken); code != 0 {
		t.Fatalf("create-user: %s", errOut)
	}
	tests := map[string]struct {
		stdin   string
		args    []string
		code    int
		message string
	}{
		"create: no name":          {"", []string{"create-user", "--redis-address", redisAddr}, 2, "create-user needs exactly one user name"},
		"create: two names":        {"", []string{"create-user", "--redis-address", redisAddr, "a", "b"}, 2, "exactly one user name"},
		"create: password flag":    {"", []string{"create-user", "x", "--password", "hunter22"}, 2, "never taken as flags"},
		"create: empty stdin":      {"", []string{"create-user", "--redis-address", redisAddr, fresh, "--password-stdin"}, 2, "no password on stdin"},
		"create: short password":   {"short\n", []string{"create-user", "--redis-address", redisAddr, fastCost, fresh, "--password-stdin"}, 1, "password: must have at least 8 characters"},
		"create: long password":    {strings.Repeat("p", 80) + "\n", []string{"create-user", "--redis-address", redisAddr, fastCost, fresh, "--password-stdin"}, 1, "at most 72 bytes"},
		"create: bad name":         {"", []string{"create-user", "--redis-address", redisAddr, fastCost, "Alice"}, 1, `name "Alice"`},
		"create: bad email":        {"", []string{"create-user", "--redis-address", redisAddr, fastCost, fresh, "--email", "nope"}, 1, `email "nope"`},
		"create: reserved group":   {"", []string{"create-user", "--redis-address", redisAddr, fastCost, fresh, "--groups", "dev,system:masters"}, 1, `groups[1] "system:masters"`},
		"create: taken":            {"", []string{"create-user", "--redis-address", redisAddr, fastCost, taken}, 1, "already exists"},
		"create: bad cost":         {"", []string{"create-user", "--redis-address", redisAddr, "--bcrypt-cost", "99", "x"}, 2, "--bcrypt-cost 99"},
		"get: no name":             {"", []string{"get-user", "--redis-address", redisAddr}, 2, "get-user needs exactly one user name"},
		"get: unknown":             {"", []string{"get-user", "--redis-address", redisAddr, nobody}, 1, "user not found"},
		"get: bad output":          {"", []string{"get-user", "--redis-address", redisAddr, "--output", "table", taken}, 2, `--output "table"`},
		"list: argument":           {"", []string{"list-users", "--redis-address", redisAddr, "extra"}, 2, "list-users takes no arguments"},
		"list: bad output":         {"", []string{"list-users", "--redis-address", redisAddr, "-output=xml"}, 2, `--output "xml"`},
		"delete: no name":          {"", []string{"delete-user", "--redis-address", redisAddr}, 2, "delete-user needs exactly one user name"},
		"delete: unknown":          {"", []string{"delete-user", "--redis-address", redisAddr, nobody}, 1, "user not found"},
		"set-password: no name":    {"", []string{"set-password", "--redis-address", redisAddr}, 2, "set-password needs exactly one user name"},
		"set-password: unknown":    {"a fine password\n", []string{"set-password", "--redis-address", redisAddr, fastCost, "--password-stdin", nobody}, 1, "user not found"},
		"set-password: short":      {"short\n", []string{"set-password", "--redis-address", redisAddr, fastCost, "--password-stdin", taken}, 1, "at least 8 characters"},
		"set-password: flag":       {"", []string{"set-password", taken, "--password=hunter22"}, 2, "--password-stdin"},
		"set-password: unknown fl": {"", []string{"set-password", taken, "--groups", "a"}, 2, "flag provided but not defined: -groups"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			code, out, errOut := runIO(tc.stdin, tc.args...)
			if code != tc.code || !strings.Contains(errOut, tc.message) {
				t.Errorf("exit %d, stderr %q; want exit %d mentioning %q", code, errOut, tc.code, tc.message)
			}
			if out != "" {
				t.Errorf("a failed command printed %q on stdout", out)
			}
		})
	}
	// Nothing of the refused creates was stored.
	if _, err := userStore().Get(context.Background(), fresh); err == nil {
		t.Error("a refused create-user stored the user")
	}
}

func TestUsageListsUserCommands(t *testing.T) {
	code, _, errOut := run("--help")
	for _, cmd := range []string{"create-user", "get-user", "list-users", "set-user", "set-password", "delete-user"} {
		if code != 0 || !strings.Contains(errOut, cmd) {
			t.Errorf("usage does not mention %s", cmd)
		}
	}
	code, _, errOut = run("create-user", "--help")
	if code != 0 || !strings.Contains(errOut, "Usage: keystore create-user NAME [flags]") || !strings.Contains(errOut, "--password-stdin") || strings.Contains(errOut, "--password ") {
		t.Errorf("create-user --help: exit %d, %s", code, errOut)
	}
}

func TestFlagsAfterArguments(t *testing.T) {
	name := unique("after")
	if code, _, errOut := run("create-key", "--redis-address", redisAddr, "--name", name, "--user", "u"); code != 0 {
		t.Fatalf("create-key: %s", errOut)
	}
	code, out, errOut := run("get-key", name, "--redis-address", redisAddr, "--output", "yaml")
	if code != 0 || !strings.Contains(out, "name: "+name) {
		t.Errorf("get-key NAME --output yaml: exit %d, %s%s", code, out, errOut)
	}
	// After "--" everything is an argument, even what looks like a flag.
	if code, _, errOut := run("get-key", "--redis-address", redisAddr, "--", name, "--output"); code != 2 || !strings.Contains(errOut, "exactly one key name") {
		t.Errorf(`get-key -- NAME --output: exit %d, %s`, code, errOut)
	}
}
