// Package cli is the keystore command: access-key administration against Redis, for
// bootstrapping a platform and for scripts.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/keygate-dev/keygate/internal/flagenv"
	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
	"github.com/keygate-dev/keygate/keystore/store"
)

// EnvPrefix prefixes the environment variable of every flag: KEYSTORE_REDIS_ADDRESS.
const EnvPrefix = "KEYSTORE"

const usage = `Usage: keystore COMMAND [flags]

Commands:
  create-key   create an access key and print the plain key (only) on stdout
  get-key      print a key as JSON or YAML (never the plain key)
  list-keys    print every key as JSON or YAML
  disable-key  disable a key: requests with it get 401
  enable-key   enable a disabled key
  delete-key   delete a key

Run 'keystore COMMAND --help' for a command's flags.`

// Exit codes.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

// Main runs the command and returns its exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(stderr, usage)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	cmd, args := args[0], args[1:]
	fs := flag.NewFlagSet("keystore "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	redisAddr := fs.String("redis-address", "127.0.0.1:6379", "Redis address; a comma-separated list for Redis Cluster or Sentinel")
	redisPassword := fs.String("redis-password", "", "Redis password")
	redisDB := fs.Int("redis-db", 0, "Redis database number (standalone only)")
	redisMaster := fs.String("redis-master-name", "", "Sentinel master name (Sentinel only)")

	var run func(ctx context.Context, s *store.Store) error
	switch cmd {
	case "create-key":
		name := fs.String("name", "", "key name (default: generated from the user or team)")
		user := fs.String("user", "", "user the key acts as")
		team := fs.String("team", "", "team the key acts as (when --user is empty)")
		groups := fs.String("groups", "", "comma-separated extra groups")
		ttl := fs.String("ttl", "0", "lifetime: seconds or a Go duration such as 24h; 0 means never expires")
		display := fs.String("display-name", "", "display name")
		typ := fs.String("type", string(v1.AccessKeyTypeUser), "key type: User, Login, Other, ...")
		key := fs.String("key", "", "use this key instead of generating one (at least 32 characters)")
		scopeFile := fs.String("scope-file", "", "YAML or JSON file holding the key's spec.scope (docs/scopes.md); default unscoped")
		run = func(ctx context.Context, s *store.Store) error {
			if *user == "" && *team == "" {
				return usageError("create-key needs --user or --team")
			}
			seconds, err := parseTTL(*ttl)
			if err != nil {
				return usageError(err.Error())
			}
			if *name == "" {
				owner := *user
				if owner == "" {
					owner = *team
				}
				*name = defaultName(owner)
			}
			var scope *v1.AccessKeyScope
			if *scopeFile != "" {
				if scope, err = readScope(*scopeFile); err != nil {
					return usageError(err.Error())
				}
			}
			k := &v1.OwnedAccessKey{
				ObjectMeta: metav1.ObjectMeta{Name: *name},
				Spec: v1.OwnedAccessKeySpec{
					DisplayName: *display, User: *user, Team: *team, Groups: splitList(*groups),
					TTL: seconds, Type: v1.AccessKeyType(*typ), Key: *key, Scope: scope,
				},
			}
			plain, err := s.Create(ctx, k)
			if err != nil {
				return err
			}
			fmt.Fprintf(stderr, "created access key %q for %s (shown once, store it now)\n", k.Name, owner(k))
			fmt.Fprintln(stdout, plain)
			return nil
		}
	case "get-key", "disable-key", "enable-key", "delete-key":
		var output *string
		if cmd == "get-key" {
			output = outputFlag(fs)
		}
		run = func(ctx context.Context, s *store.Store) error {
			if fs.NArg() != 1 {
				return usageError(cmd + " needs exactly one key name")
			}
			if output != nil {
				if err := checkOutput(*output); err != nil {
					return err
				}
			}
			name := fs.Arg(0)
			switch cmd {
			case "get-key":
				k, err := s.Get(ctx, name)
				if err != nil {
					return err
				}
				return printObject(stdout, *output, k)
			case "delete-key":
				if err := s.Delete(ctx, name); err != nil {
					return err
				}
				fmt.Fprintf(stderr, "deleted access key %q\n", name)
				return nil
			}
			disable := cmd == "disable-key"
			if err := s.SetDisabled(ctx, name, disable); err != nil {
				return err
			}
			fmt.Fprintf(stderr, "access key %q %s\n", name, map[bool]string{true: "disabled", false: "enabled"}[disable])
			return nil
		}
	case "list-keys":
		output := outputFlag(fs)
		run = func(ctx context.Context, s *store.Store) error {
			if err := checkOutput(*output); err != nil {
				return err
			}
			keys, err := s.List(ctx)
			if err != nil {
				return err
			}
			return printObject(stdout, *output, map[string]any{"apiVersion": "v1", "kind": "List", "items": keys})
		}
	default:
		fmt.Fprintf(stderr, "keystore: unknown command %q\n\n%s\n", cmd, usage)
		return exitUsage
	}
	fs.Usage = flagenv.Usage(fs, EnvPrefix, "Usage: keystore "+cmd+" [flags]")
	if err := flagenv.Parse(fs, EnvPrefix, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		fmt.Fprintln(stderr, "keystore:", err)
		return exitUsage
	}

	rdb := redis.NewUniversalClient(&redis.UniversalOptions{
		Addrs: splitList(*redisAddr), Password: *redisPassword, DB: *redisDB, MasterName: *redisMaster,
	})
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := run(ctx, store.New(rdb)); err != nil {
		fmt.Fprintln(stderr, "keystore:", err)
		var u usageError
		if errors.As(err, &u) {
			return exitUsage
		}
		return exitError
	}
	return exitOK
}

type usageError string

func (e usageError) Error() string { return string(e) }

func owner(k *v1.OwnedAccessKey) string {
	if k.Spec.User != "" {
		return "user " + k.Spec.User
	}
	return "team " + k.Spec.Team
}

// readScope reads an AccessKeyScope from YAML or JSON, refusing unknown fields so that a typo
// cannot silently widen a key.
func readScope(path string) (*v1.AccessKeyScope, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--scope-file: %w", err)
	}
	bad := func(err error) error {
		return fmt.Errorf("--scope-file %s: not a valid scope (docs/scopes.md): %w", path, err)
	}
	jsonData, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return nil, bad(err)
	}
	var s v1.AccessKeyScope
	// Case-sensitive and strict, as the API server decodes: "Verbs" or "verb" is an error.
	strictErrs, err := sigsjson.UnmarshalStrict(jsonData, &s)
	if err != nil {
		return nil, bad(err)
	}
	if len(strictErrs) > 0 {
		return nil, bad(errors.Join(strictErrs...))
	}
	return &s, nil
}

// parseTTL reads seconds ("3600") or a Go duration ("24h").
func parseTTL(s string) (int64, error) {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n < 0 {
			return 0, fmt.Errorf("--ttl %s: must not be negative", s)
		}
		return n, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("--ttl %q: want seconds or a duration such as 24h", s)
	}
	return int64(d / time.Second), nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// outputFlag adds --output to a command that prints objects.
func outputFlag(fs *flag.FlagSet) *string {
	return fs.String("output", "json", "output format: json or yaml")
}

// printObject writes v as JSON or YAML. The objects come from the store, which never returns a
// plain key, so nothing printed here can hold one.
func printObject(w io.Writer, format string, v any) error {
	switch format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	case "yaml":
		data, err := yaml.Marshal(v)
		if err != nil {
			return err
		}
		_, err = w.Write(data)
		return err
	}
	return checkOutput(format)
}

func checkOutput(format string) error {
	if format != "json" && format != "yaml" {
		return usageError(fmt.Sprintf("--output %q: want json or yaml", format))
	}
	return nil
}

// defaultName makes a key name from its owner: alice@example.com becomes alice-example-com-x7k2p.
// The owner may hold characters a name may not (an email address, a team "Platform Team"), so
// they become dashes; the random suffix keeps names of one owner apart.
func defaultName(owner string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(owner) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else if b.Len() > 0 && !strings.HasSuffix(b.String(), "-") {
			b.WriteByte('-')
		}
	}
	base := strings.TrimSuffix(b.String(), "-")
	if len(base) > 40 {
		base = strings.TrimSuffix(base[:40], "-")
	}
	if base == "" {
		base = "key"
	}
	return base + "-" + rand.String(5)
}
