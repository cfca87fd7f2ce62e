// Package cli is the keystore command: access-key and user administration against Redis, for
// bootstrapping a platform and for scripts.
package cli

import (
	"bufio"
	"context"
	crand "crypto/rand"
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
	"github.com/keygate-dev/keygate/internal/redisflags"
	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
	"github.com/keygate-dev/keygate/keystore/app"
	"github.com/keygate-dev/keygate/keystore/store"
	"github.com/keygate-dev/keygate/keystore/users"
)

// EnvPrefix prefixes the environment variable of every flag: KEYSTORE_REDIS_ADDRESS.
const EnvPrefix = "KEYSTORE"

const usage = `Usage: keystore COMMAND [flags]

Commands:
  serve         serve the management API (management.loft.sh/v1) and the login endpoints

  create-key    create an access key and print the plain key (only) on stdout
  get-key       print a key as JSON or YAML (never the plain key)
  list-keys     print every key as JSON or YAML
  disable-key   disable a key: requests with it get 401
  enable-key    enable a disabled key
  delete-key    delete a key

  create-user   create a user who can log in with a password: read from stdin with
                --password-stdin, else generated and printed (only) on stdout, once
  get-user      print a user as JSON or YAML (never the password nor its hash)
  list-users    print every user as JSON or YAML
  set-password  replace a user's password (--password-stdin, else generated and printed once)
  delete-user   delete a user

Run 'keystore COMMAND --help' for a command's flags.`

// Exit codes.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

// Main runs the command with the process's standard input and returns its exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	return MainIO(args, os.Stdin, stdout, stderr)
}

// MainIO is Main with standard input given: create-user and set-password read a password from
// it with --password-stdin. A nil stdin reads as empty.
func MainIO(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(stderr, usage)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	cmd, args := args[0], args[1:]
	if cmd == "serve" {
		return app.Main(args)
	}
	fs := flag.NewFlagSet("keystore "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var rc redisflags.Config
	rc.Register(fs)

	synopsis := "[flags]"
	var run func(ctx context.Context, rdb redis.UniversalClient) error
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
		run = func(ctx context.Context, rdb redis.UniversalClient) error {
			s := store.New(rdb)
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
		synopsis = "NAME [flags]"
		run = func(ctx context.Context, rdb redis.UniversalClient) error {
			s := store.New(rdb)
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
		run = func(ctx context.Context, rdb redis.UniversalClient) error {
			if err := checkOutput(*output); err != nil {
				return err
			}
			keys, err := store.New(rdb).List(ctx)
			if err != nil {
				return err
			}
			return printObject(stdout, *output, map[string]any{"apiVersion": "v1", "kind": "List", "items": keys})
		}
	case "create-user", "set-password":
		synopsis = "NAME [flags]"
		var u users.User
		var groups, teams *string
		if cmd == "create-user" {
			groups = fs.String("groups", "", "comma-separated groups the user's requests carry")
			teams = fs.String("teams", "", "comma-separated teams the user belongs to")
			fs.StringVar(&u.DisplayName, "display-name", "", "display name")
			fs.StringVar(&u.Email, "email", "", "email address")
		}
		// There is deliberately no --password: a password in the arguments would be seen in
		// shell history and by anyone running ps.
		fromStdin := fs.Bool("password-stdin", false, "read the password from the first line of stdin; without it a password is generated and printed once")
		cost := fs.Int("bcrypt-cost", users.DefaultCost, "bcrypt cost of the password hash (4 to 31)")
		run = func(ctx context.Context, rdb redis.UniversalClient) error {
			if fs.NArg() != 1 {
				return usageError(cmd + " needs exactly one user name")
			}
			if *cost < 4 || *cost > 31 {
				return usageError(fmt.Sprintf("--bcrypt-cost %d: want 4 to 31", *cost))
			}
			name := fs.Arg(0)
			password, generated := "", !*fromStdin
			var err error
			if generated {
				// 26 characters of base32: 130 bits from crypto/rand.
				password = crand.Text()
			} else if password, err = readPassword(stdin); err != nil {
				return err
			}
			s := users.New(rdb, users.Options{Cost: *cost})
			if cmd == "create-user" {
				u.Name, u.Groups, u.Teams = name, splitList(*groups), splitList(*teams)
				if err := s.Create(ctx, u, password); err != nil {
					return err
				}
				fmt.Fprintf(stderr, "created user %q", name)
			} else {
				if err := s.SetPassword(ctx, name, password); err != nil {
					return err
				}
				fmt.Fprintf(stderr, "set the password of user %q", name)
			}
			if generated {
				// Only the password on stdout, so that scripts can capture it.
				fmt.Fprintln(stderr, "; its generated password is on stdout (shown once, store it now)")
				fmt.Fprintln(stdout, password)
			} else {
				fmt.Fprintln(stderr)
			}
			return nil
		}
	case "get-user", "delete-user":
		synopsis = "NAME [flags]"
		var output *string
		if cmd == "get-user" {
			output = outputFlag(fs)
		}
		run = func(ctx context.Context, rdb redis.UniversalClient) error {
			if fs.NArg() != 1 {
				return usageError(cmd + " needs exactly one user name")
			}
			s, name := users.New(rdb, users.Options{}), fs.Arg(0)
			if cmd == "delete-user" {
				if err := s.Delete(ctx, name); err != nil {
					return err
				}
				fmt.Fprintf(stderr, "deleted user %q\n", name)
				return nil
			}
			if err := checkOutput(*output); err != nil {
				return err
			}
			u, err := s.Get(ctx, name)
			if err != nil {
				return err
			}
			// A User has no password field at all, so nothing printed here can hold one.
			return printObject(stdout, *output, u)
		}
	case "list-users":
		output := outputFlag(fs)
		run = func(ctx context.Context, rdb redis.UniversalClient) error {
			if fs.NArg() != 0 {
				return usageError("list-users takes no arguments")
			}
			if err := checkOutput(*output); err != nil {
				return err
			}
			list, err := users.New(rdb, users.Options{}).List(ctx)
			if err != nil {
				return err
			}
			return printObject(stdout, *output, map[string]any{"items": list})
		}
	default:
		fmt.Fprintf(stderr, "keystore: unknown command %q\n\n%s\n", cmd, usage)
		return exitUsage
	}
	fs.Usage = flagenv.Usage(fs, EnvPrefix, "Usage: keystore "+cmd+" "+synopsis)
	if err := parseInterspersed(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		fmt.Fprintln(stderr, "keystore:", err)
		if fs.Lookup("password-stdin") != nil && strings.Contains(err.Error(), "not defined: -password") {
			fmt.Fprintln(stderr, "keystore: passwords are never taken as flags (they would show in shell history and ps): pipe one in with --password-stdin, or omit it to have one generated")
		}
		return exitUsage
	}

	if err := rc.Parse(); err != nil {
		fmt.Fprintln(stderr, "keystore:", err)
		return exitUsage
	}
	rdb := redis.NewUniversalClient(rc.Options())
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := run(ctx, rdb); err != nil {
		fmt.Fprintln(stderr, "keystore:", err)
		var u usageError
		if errors.As(err, &u) {
			return exitUsage
		}
		return exitError
	}
	return exitOK
}

// parseInterspersed parses flags wherever they stand among the arguments, so that the
// documented `create-user NAME --groups a,b` works as well as `create-user --groups a,b NAME`
// (the flag package alone stops at the first non-flag). "--" ends the flags. Flags not given
// are then read from the environment.
func parseInterspersed(fs *flag.FlagSet, args []string) error {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			positional = append(positional, rest...)
			break
		}
		positional, args = append(positional, rest[0]), rest[1:]
	}
	// The leading "--" makes this parse take no flags: it only sets fs.Args and the environment.
	return flagenv.Parse(fs, EnvPrefix, append([]string{"--"}, positional...))
}

// maxPasswordLine bounds what readPassword reads: far above bcrypt's 72 bytes, so that a longer
// password is refused with a clear message rather than truncated.
const maxPasswordLine = 4096

// readPassword returns the first line of r without its line ending.
func readPassword(r io.Reader) (string, error) {
	line, err := bufio.NewReader(io.LimitReader(r, maxPasswordLine)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("--password-stdin: read stdin: %w", err)
	}
	line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
	if line == "" {
		return "", usageError("--password-stdin: no password on stdin; pipe one in, e.g. `printf '%s\\n' \"$PASSWORD\" | keystore ...`")
	}
	return line, nil
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
