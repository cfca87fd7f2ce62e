// Package cli is the keystore command: access-key and user administration against Redis, for
// bootstrapping a platform and for scripts, and `keystore serve`.
//
// Each subcommand is a cobra.Command built by its own constructor (keys.go, users.go,
// serve.go); flags.go keeps the command line as it was before cobra: Go-style flags (-output
// as well as --output), every flag also an environment variable, and the flag package's
// messages.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"

	"github.com/keygate-dev/keygate/internal/redisack"
	"github.com/keygate-dev/keygate/internal/redisflags"
	"github.com/keygate-dev/keygate/keystore/store"
	"github.com/keygate-dev/keygate/keystore/users"
)

// EnvPrefix prefixes the environment variable of every flag: KEYSTORE_REDIS_ADDRESS.
const EnvPrefix = "KEYSTORE"

// Exit codes.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

// Command groups of the root help, in the order they are listed.
const (
	groupServe = "serve"
	groupKeys  = "keys"
	groupUsers = "users"
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
	root := newRootCommand(streams{stdin: stdin, stdout: stdout, stderr: stderr})
	// Never nil: cobra reads os.Args for a nil slice.
	root.SetArgs(goStyleArgs(root, args))
	return exitCodeOf(root.Execute(), stderr)
}

// streams are the command's standard input and outputs. stdout carries only what scripts
// capture (a key, a password, objects); notes, help and errors go to stderr.
type streams struct {
	stdin          io.Reader
	stdout, stderr io.Writer
}

// usageError is a mistake in the command line: exit code 2.
type usageError string

func (e usageError) Error() string { return string(e) }

// exitCode ends the command with that code and no further message: the message, if any, is
// already printed.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit code %d", int(e)) }

// exitCodeOf prints a command's error and returns the exit code it means.
func exitCodeOf(err error, stderr io.Writer) int {
	var code exitCode
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &code):
		return int(code)
	}
	fmt.Fprintln(stderr, "keystore:", err)
	var u usageError
	if errors.As(err, &u) {
		return exitUsage
	}
	return exitError
}

func newRootCommand(s streams) *cobra.Command {
	root := &cobra.Command{
		Use:   "keystore COMMAND [flags]",
		Short: "keygate's access keys and password users in Redis, and the management API",
		Long: "keystore administers keygate's access keys and the users who log in with a password,\n" +
			"in Redis, and serves the management API and the login endpoints (serve).",
		// Errors, usage and exit codes are MainIO's: see exitCodeOf and flagError.
		SilenceErrors:     true,
		SilenceUsage:      true,
		CompletionOptions: cobra.CompletionOptions{DisableDefaultCmd: true},
		Args:              cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				fmt.Fprintf(s.stderr, "keystore: unknown command %q\n\n", args[0])
			}
			_ = cmd.Usage()
			return exitCode(exitUsage)
		},
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if cmd.DisableFlagParsing {
				return nil // serve reads its own environment
			}
			if err := refuseSecretFlags(cmd.Flags()); err != nil {
				return err
			}
			return flagsFromEnv(cmd.Flags())
		},
	}
	// Help goes to stderr, as it always has, so that stdout holds only what scripts capture.
	root.SetOut(s.stderr)
	root.SetErr(s.stderr)
	root.SetIn(s.stdin)
	root.SetFlagErrorFunc(flagError)
	root.SetUsageFunc(writeUsage)
	root.SetHelpFunc(func(cmd *cobra.Command, _ []string) { _ = writeUsage(cmd) })
	root.AddGroup(
		&cobra.Group{ID: groupServe, Title: "Server:"},
		&cobra.Group{ID: groupKeys, Title: "Access keys:"},
		&cobra.Group{ID: groupUsers, Title: "Users who log in with a password:"},
		&cobra.Group{ID: groupOIDC, Title: "The OIDC provider:"},
	)
	root.AddCommand(
		newServeCommand(),
		newCreateKeyCommand(s), newGetKeyCommand(s), newListKeysCommand(s),
		newDisableKeyCommand(s, true), newDisableKeyCommand(s, false), newDeleteKeyCommand(s),
		newCreateUserCommand(s), newGetUserCommand(s), newListUsersCommand(s),
		newSetUserCommand(s), newSetPasswordCommand(s), newDeleteUserCommand(s),
		newHashSecretCommand(s),
	)
	return root
}

// redisCommandTimeout bounds every command that talks to Redis, so that a script never hangs
// on an unreachable server.
const redisCommandTimeout = 30 * time.Second

// redisConn is the client of the --redis-* flags and the replica acknowledgements every write
// waits for.
type redisConn struct {
	redis.UniversalClient
	acks redisack.Acks
}

func (r redisConn) keys() *store.Store {
	return store.NewWithOptions(r.UniversalClient, store.Options{Acks: r.acks})
}

func (r redisConn) users(opts users.Options) *users.Store {
	opts.Acks = r.acks
	return users.New(r.UniversalClient, opts)
}

// withRedis gives cmd the --redis-* flags and makes it run run with a client they describe.
func withRedis(cmd *cobra.Command, run func(ctx context.Context, rdb redisConn, args []string) error) *cobra.Command {
	var rc redisflags.Config
	// redisflags registers on a flag.FlagSet, shared with extauthz and serve; pflag adopts them.
	goFlags := flag.NewFlagSet(cmd.Name(), flag.ContinueOnError)
	rc.Register(goFlags)
	rc.RegisterAcks(goFlags)
	cmd.Flags().AddGoFlagSet(goFlags)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := rc.Parse(); err != nil {
			return usageError(err.Error())
		}
		rdb := redisConn{redisflags.NewClient(rc.Options()), rc.Acks}
		defer rdb.Close()
		ctx, cancel := context.WithTimeout(cmd.Context(), redisCommandTimeout)
		defer cancel()
		return run(ctx, rdb, args)
	}
	return cmd
}

// exactlyOne accepts one argument, the NAME of the command's synopsis.
func exactlyOne(what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != 1 {
			return usageError(cmd.Name() + " needs exactly one " + what)
		}
		return nil
	}
}

// noArgs refuses arguments.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) != 0 {
		return usageError(cmd.Name() + " takes no arguments")
	}
	return nil
}
