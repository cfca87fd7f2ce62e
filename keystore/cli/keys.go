package cli

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/keygate-dev/keygate/keystore/accesskey"
	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
	"github.com/keygate-dev/keygate/keystore/users"
)

// createKeyFlags are the flags of create-key. There is deliberately no --key: a chosen key comes
// from stdin or a file, since a key in the arguments would be seen in shell history and by
// anyone running ps.
type createKeyFlags struct {
	name, user, team, groups, ttl string
	displayName, typ              string
	keyStdin                      bool
	keyFile, scopeFile            string
}

func newCreateKeyCommand(s streams) *cobra.Command {
	var o createKeyFlags
	cmd := &cobra.Command{
		Use:     "create-key [flags]",
		GroupID: groupKeys,
		Short:   "create an access key and print the plain key (only) on stdout",
		Long: `Create an access key acting as a user (--user) or a team (--team), and print the plain key
on stdout: only there, only now (the store keeps only its digest). A note goes to stderr, so
that scripts can capture the key.`,
		Example: `  KEY=$(keystore create-key --user alice --groups dev,qa --ttl 24h)
  keystore create-key --team platform --name platform-ci --scope-file ci-scope.yaml
  printf '%s\n' "$CHOSEN_KEY" | keystore create-key --user ci-bot --key-stdin`,
		// Arguments were never read, nor refused; they still are not.
		Args: cobra.ArbitraryArgs,
	}
	f := cmd.Flags()
	f.StringVar(&o.name, "name", "", "key name (default: generated from the user or team)")
	f.StringVar(&o.user, "user", "", "user the key acts as")
	f.StringVar(&o.team, "team", "", "team the key acts as (when --user is empty)")
	f.StringVar(&o.groups, "groups", "", "comma-separated extra groups")
	f.StringVar(&o.ttl, "ttl", "0", "lifetime: seconds or a Go duration such as 24h; 0 means never expires")
	f.StringVar(&o.displayName, "display-name", "", "display name")
	f.StringVar(&o.typ, "type", string(v1.AccessKeyTypeUser), "key type: User, Login, Other, ...")
	f.BoolVar(&o.keyStdin, "key-stdin", false, "read the key to use (at least 32 characters) from the first line of stdin instead of generating one")
	f.StringVar(&o.keyFile, "key-file", "", "read the key to use (at least 32 characters) from the first line of this file instead of generating one")
	f.StringVar(&o.scopeFile, "scope-file", "", "YAML or JSON file holding the key's spec.scope (docs/scopes.md); default unscoped")
	return withRedis(cmd, func(ctx context.Context, rdb redisConn, _ []string) error {
		k, err := o.accessKey(s.stdin)
		if err != nil {
			return err
		}
		if err := recordOwner(ctx, rdb, k); err != nil {
			return err
		}
		plain, err := rdb.keys().Create(ctx, k)
		if err != nil {
			return err
		}
		fmt.Fprintf(s.stderr, "created access key %q for %s (shown once, store it now)\n", k.Name, owner(k))
		fmt.Fprintln(s.stdout, plain)
		return nil
	})
}

// recordOwner records on k the UID of its user when the user store has them, as the management
// API does: the edge refuses the key once the store's user of that name is another (or none).
func recordOwner(ctx context.Context, rdb redisConn, k *v1.OwnedAccessKey) error {
	if k.Spec.User == "" {
		return nil
	}
	u, err := rdb.users(users.Options{}).Get(ctx, k.Spec.User)
	switch {
	case errors.Is(err, users.ErrNotFound):
		return nil // an external identity's key
	case err != nil:
		return err
	}
	accesskey.SetOwnerUID(k, u.UID)
	return nil
}

// accessKey is the key the flags describe, with the plain key of --key-stdin or --key-file if
// one is chosen; their mistakes are usage errors.
func (o *createKeyFlags) accessKey(stdin io.Reader) (*v1.OwnedAccessKey, error) {
	if o.user == "" && o.team == "" {
		return nil, usageError("create-key needs --user or --team")
	}
	seconds, err := parseTTL(o.ttl)
	if err != nil {
		return nil, usageError(err.Error())
	}
	plain, err := o.chosenKey(stdin)
	if err != nil {
		return nil, err
	}
	name := o.name
	if name == "" {
		name = defaultName(cmp.Or(o.user, o.team))
	}
	var scope *v1.AccessKeyScope
	if o.scopeFile != "" {
		if scope, err = readScope(o.scopeFile); err != nil {
			return nil, usageError(err.Error())
		}
	}
	return &v1.OwnedAccessKey{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1.OwnedAccessKeySpec{
			DisplayName: o.displayName, User: o.user, Team: o.team, Groups: splitList(o.groups),
			TTL: seconds, Type: v1.AccessKeyType(o.typ), Key: plain, Scope: scope,
		},
	}, nil
}

// maxKeyLine bounds what a chosen key is read from: far above any key, so that a stream that
// is not one is refused rather than read whole.
const maxKeyLine = 4096

// chosenKey is the plain key on the first line of stdin (--key-stdin) or of --key-file, or ""
// to have one generated.
func (o *createKeyFlags) chosenKey(stdin io.Reader) (string, error) {
	var r io.Reader
	var from, empty string
	switch {
	case o.keyStdin && o.keyFile != "":
		return "", usageError("--key-stdin and --key-file: give one")
	case o.keyStdin:
		r, from = stdin, "--key-stdin: read stdin"
		empty = "--key-stdin: no key on stdin; pipe one in, e.g. `printf '%s\\n' \"$KEY\" | keystore create-key --key-stdin ...`"
	case o.keyFile != "":
		f, err := os.Open(o.keyFile)
		if err != nil {
			return "", usageError("--key-file: " + err.Error())
		}
		defer f.Close()
		r, from = f, "--key-file: read "+o.keyFile
		empty = "--key-file " + o.keyFile + ": no key in it"
	default:
		return "", nil
	}
	line, err := bufio.NewReader(io.LimitReader(r, maxKeyLine)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("%s: %w", from, err)
	}
	if line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r"); line == "" {
		return "", usageError(empty)
	}
	return line, nil
}

func newGetKeyCommand(s streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "get-key NAME [flags]",
		GroupID: groupKeys,
		Short:   "print a key as JSON or YAML (never the plain key)",
		Long:    "Print the access key NAME as JSON or YAML. The store keeps no plain key, so none is printed.",
		Example: "  keystore get-key alice-x7k2p --output yaml",
		Args:    exactlyOne("key name"),
	}
	return printing(cmd, s, func(ctx context.Context, rdb redisConn, args []string) (any, error) {
		k, err := rdb.keys().Get(ctx, args[0])
		if err != nil {
			return nil, err
		}
		// connectorData is a credential for an identity provider, sealed or not: nobody's to print.
		return accesskey.RedactConnectorData(k), nil
	})
}

func newListKeysCommand(s streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "list-keys [flags]",
		GroupID: groupKeys,
		Short:   "print every key as JSON or YAML",
		Long:    "Print every access key as a JSON or YAML List (never a plain key).",
		Example: "  keystore list-keys --output yaml",
		// Arguments were never read, nor refused; they still are not.
		Args: cobra.ArbitraryArgs,
	}
	return printing(cmd, s, func(ctx context.Context, rdb redisConn, _ []string) (any, error) {
		keys, err := rdb.keys().List(ctx)
		if err != nil {
			return nil, err
		}
		for _, k := range keys {
			accesskey.RedactConnectorData(k)
		}
		return map[string]any{"apiVersion": "v1", "kind": "List", "items": keys}, nil
	})
}

// newDisableKeyCommand is disable-key, or enable-key when disable is false.
func newDisableKeyCommand(s streams, disable bool) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "disable-key NAME [flags]",
		GroupID: groupKeys,
		Short:   "disable a key: requests with it get 401",
		Long: `Disable the access key NAME: requests with it get 401 until enable-key. The key is kept,
unlike with delete-key.`,
		Example: "  keystore disable-key alice-x7k2p",
		Args:    exactlyOne("key name"),
	}
	done := "disabled"
	if !disable {
		cmd.Use, cmd.Short, done = "enable-key NAME [flags]", "enable a disabled key", "enabled"
		cmd.Long = "Enable the disabled access key NAME again."
		cmd.Example = "  keystore enable-key alice-x7k2p"
	}
	return withRedis(cmd, func(ctx context.Context, rdb redisConn, args []string) error {
		if err := rdb.keys().SetDisabled(ctx, args[0], disable); err != nil {
			return err
		}
		fmt.Fprintf(s.stderr, "access key %q %s\n", args[0], done)
		return nil
	})
}

func newDeleteKeyCommand(s streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "delete-key NAME [flags]",
		GroupID: groupKeys,
		Short:   "delete a key",
		Long:    "Delete the access key NAME: requests with it get 401, and it cannot be enabled again.",
		Example: "  keystore delete-key alice-x7k2p",
		Args:    exactlyOne("key name"),
	}
	return withRedis(cmd, func(ctx context.Context, rdb redisConn, args []string) error {
		if err := rdb.keys().Delete(ctx, args[0]); err != nil {
			return err
		}
		fmt.Fprintf(s.stderr, "deleted access key %q\n", args[0])
		return nil
	})
}

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
