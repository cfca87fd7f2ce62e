package cli

import (
	"bufio"
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/keygate-dev/keygate/keystore/users"
)

func newCreateUserCommand(s streams) *cobra.Command {
	var u users.User
	var groups, teams string
	var p passwordFlags
	cmd := &cobra.Command{
		Use:     "create-user NAME [flags]",
		GroupID: groupUsers,
		Short:   "create a user who can log in with a password (from stdin, or generated and printed once)",
		Long: `Create the user NAME, who can log in with a password: the first line of stdin with
--password-stdin, else one generated and printed (only) on stdout, once.`,
		Example: `  printf '%s\n' "$PASSWORD" | keystore create-user alice --password-stdin --groups dev --teams platform
  PASSWORD=$(keystore create-user ci-admin)`,
		Args: exactlyOne("user name"),
	}
	f := cmd.Flags()
	f.StringVar(&groups, "groups", "", "comma-separated groups the user's requests carry")
	f.StringVar(&teams, "teams", "", "comma-separated teams the user belongs to")
	f.StringVar(&u.DisplayName, "display-name", "", "display name")
	f.StringVar(&u.Email, "email", "", "email address")
	p.register(f)
	return withRedis(cmd, func(ctx context.Context, rdb redisConn, args []string) error {
		password, generated, err := p.password(s.stdin)
		if err != nil {
			return err
		}
		u.Name, u.Groups, u.Teams = args[0], splitList(groups), splitList(teams)
		if err := p.users(rdb).Create(ctx, u, password); err != nil {
			return err
		}
		fmt.Fprintf(s.stderr, "created user %q", u.Name)
		printPassword(s, password, generated)
		return nil
	})
}

// setUserFlags are the flags of set-user; only those given change the user.
type setUserFlags struct {
	groups, teams, displayName, email string
	disabled                          bool
}

func newSetUserCommand(s streams) *cobra.Command {
	var o setUserFlags
	cmd := &cobra.Command{
		Use:     "set-user NAME [flags]",
		GroupID: groupUsers,
		Short:   "change a user's groups, teams, display name, email or disabled state",
		Long: `Change user NAME: only what a flag is given for, the rest is kept. --groups and --teams
replace the lists ("" empties them). The edge reads the user at each request, so every access
key of the user (login keys included) follows at once: a disabled user's keys are refused, and
a group taken away leaves every key. Team membership decides who manages the team's keys.`,
		Example: `  keystore set-user alice --groups dev,ops --teams platform
  keystore set-user alice --disabled=true
  keystore set-user alice --groups ""`,
		Args: exactlyOne("user name"),
	}
	f := cmd.Flags()
	f.StringVar(&o.groups, "groups", "", "comma-separated groups, replacing the user's")
	f.StringVar(&o.teams, "teams", "", "comma-separated teams, replacing the user's")
	f.StringVar(&o.displayName, "display-name", "", "display name")
	f.StringVar(&o.email, "email", "", "email address")
	f.BoolVar(&o.disabled, "disabled", false, "disable (true) or enable (false) the user")
	return withRedis(cmd, func(ctx context.Context, rdb redisConn, args []string) error {
		if !slices.ContainsFunc([]string{"groups", "teams", "display-name", "email", "disabled"}, f.Changed) {
			return usageError("set-user changes nothing: give --groups, --teams, --display-name, --email or --disabled")
		}
		_, err := rdb.users(users.Options{}).Update(ctx, args[0], func(u *users.User) error {
			o.apply(f.Changed, u)
			return nil
		})
		if err != nil {
			return err
		}
		fmt.Fprintf(s.stderr, "updated user %q\n", args[0])
		return nil
	})
}

// apply sets on u what the flags given (changed) say.
func (o *setUserFlags) apply(changed func(string) bool, u *users.User) {
	if changed("groups") {
		u.Groups = splitList(o.groups)
	}
	if changed("teams") {
		u.Teams = splitList(o.teams)
	}
	if changed("display-name") {
		u.DisplayName = o.displayName
	}
	if changed("email") {
		u.Email = o.email
	}
	if changed("disabled") {
		u.Disabled = o.disabled
	}
}

func newSetPasswordCommand(s streams) *cobra.Command {
	var p passwordFlags
	cmd := &cobra.Command{
		Use:     "set-password NAME [flags]",
		GroupID: groupUsers,
		Short:   "replace a user's password (--password-stdin, else generated and printed once)",
		Long: `Replace the password of user NAME with the first line of stdin (--password-stdin), else with
one generated and printed (only) on stdout, once.`,
		Example: `  printf '%s\n' "$NEW" | keystore set-password alice --password-stdin`,
		Args:    exactlyOne("user name"),
	}
	p.register(cmd.Flags())
	return withRedis(cmd, func(ctx context.Context, rdb redisConn, args []string) error {
		password, generated, err := p.password(s.stdin)
		if err != nil {
			return err
		}
		if err := p.users(rdb).SetPassword(ctx, args[0], password); err != nil {
			return err
		}
		fmt.Fprintf(s.stderr, "set the password of user %q", args[0])
		printPassword(s, password, generated)
		return nil
	})
}

func newGetUserCommand(s streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "get-user NAME [flags]",
		GroupID: groupUsers,
		Short:   "print a user as JSON or YAML (never the password nor its hash)",
		Long:    "Print the user NAME as JSON or YAML: never the password nor its hash.",
		Example: "  keystore get-user alice --output yaml",
		Args:    exactlyOne("user name"),
	}
	return printing(cmd, s, func(ctx context.Context, rdb redisConn, args []string) (any, error) {
		u, err := rdb.users(users.Options{}).Get(ctx, args[0])
		if err != nil {
			return nil, err
		}
		// A User has no password field at all, so nothing printed here can hold one.
		return u, nil
	})
}

func newListUsersCommand(s streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "list-users [flags]",
		GroupID: groupUsers,
		Short:   "print every user as JSON or YAML",
		Long:    `Print every user as JSON or YAML, {"items": [...]}: never a password nor its hash.`,
		Example: "  keystore list-users --output yaml",
		Args:    noArgs,
	}
	return printing(cmd, s, func(ctx context.Context, rdb redisConn, _ []string) (any, error) {
		list, err := rdb.users(users.Options{}).List(ctx)
		if err != nil {
			return nil, err
		}
		return map[string]any{"items": list}, nil
	})
}

func newDeleteUserCommand(s streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "delete-user NAME [flags]",
		GroupID: groupUsers,
		Short:   "delete a user",
		Long: `Delete the user NAME: they can no longer log in with a password, and the edge refuses
every access key made for them at once, also after a user of the same name is created again.
The keys themselves are kept until deleted (see list-keys and delete-key).`,
		Example: "  keystore delete-user alice",
		Args:    exactlyOne("user name"),
	}
	return withRedis(cmd, func(ctx context.Context, rdb redisConn, args []string) error {
		if err := rdb.users(users.Options{}).Delete(ctx, args[0]); err != nil {
			return err
		}
		fmt.Fprintf(s.stderr, "deleted user %q\n", args[0])
		return nil
	})
}

// passwordFlags are the flags of the commands that set a password. There is deliberately no
// --password: a password in the arguments would be seen in shell history and by anyone running
// ps.
type passwordFlags struct {
	fromStdin bool
	cost      int
}

func (p *passwordFlags) register(f *pflag.FlagSet) {
	f.BoolVar(&p.fromStdin, "password-stdin", false, "read the password from the first line of stdin; without it a password is generated and printed once")
	f.IntVar(&p.cost, "bcrypt-cost", users.DefaultCost, "bcrypt cost of the password hash (4 to 31)")
}

// password checks --bcrypt-cost, then reads the password from stdin or generates one.
func (p *passwordFlags) password(stdin io.Reader) (password string, generated bool, err error) {
	if p.cost < 4 || p.cost > 31 {
		return "", false, usageError(fmt.Sprintf("--bcrypt-cost %d: want 4 to 31", p.cost))
	}
	if p.fromStdin {
		password, err = readPassword(stdin)
		return password, false, err
	}
	// 26 characters of base32: 130 bits from crypto/rand.
	return crand.Text(), true, nil
}

// users is the user store hashing with --bcrypt-cost.
func (p *passwordFlags) users(rdb redisConn) *users.Store {
	return rdb.users(users.Options{Cost: p.cost})
}

// printPassword ends the note begun on stderr and prints a generated password on stdout.
func printPassword(s streams, password string, generated bool) {
	if !generated {
		fmt.Fprintln(s.stderr)
		return
	}
	// Only the password on stdout, so that scripts can capture it.
	fmt.Fprintln(s.stderr, "; its generated password is on stdout (shown once, store it now)")
	fmt.Fprintln(s.stdout, password)
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
