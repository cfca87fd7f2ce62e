package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/keygate-dev/keygate/internal/flagenv"
)

// The command line was the flag package's before it was cobra's (pflag), and scripts may rely
// on it; this file keeps it: -output works as --output does, every flag has an environment
// variable (internal/flagenv's names), and errors read as the flag package's.

// goStyleArgs rewrites a subcommand's Go-style flags for pflag: "-output=xml" becomes
// "--output=xml" (pflag would read it as the shorthands -o -u -t ...), and "--h" becomes "-h".
// Flag values and whatever follows "--" are left alone. serve parses its own flags.
func goStyleArgs(root *cobra.Command, args []string) []string {
	out := append([]string{}, args...)
	if len(args) == 0 {
		return out
	}
	for _, sub := range root.Commands() {
		if sub.Name() == args[0] && !sub.DisableFlagParsing {
			return append(out[:1], goStyleFlags(sub.Flags(), args[1:])...)
		}
	}
	return out
}

func goStyleFlags(fs *pflag.FlagSet, args []string) []string {
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return append(out, args[i:]...)
		}
		body, isFlag := strings.CutPrefix(a, "-")
		body = strings.TrimPrefix(body, "-")
		if !isFlag || body == "" || body[0] == '-' || body[0] == '=' {
			out = append(out, a) // an argument, "-", or bad syntax that pflag reports
			continue
		}
		name, _, hasValue := strings.Cut(body, "=")
		if len(name) == 1 {
			out = append(out, "-"+body) // -h, the only shorthand
		} else {
			out = append(out, "--"+body)
		}
		// The next argument is this flag's value, even when it starts with a dash.
		if f := fs.Lookup(name); f != nil && !hasValue && f.NoOptDefVal == "" && i+1 < len(args) {
			i++
			out = append(out, args[i])
		}
	}
	return out
}

// flagsFromEnv sets every flag not given on the command line from its environment variable,
// KEYSTORE_REDIS_ADDRESS for --redis-address: the command line wins.
func flagsFromEnv(fs *pflag.FlagSet) error {
	var err error
	fs.VisitAll(func(f *pflag.Flag) {
		if err != nil || f.Changed || f.Name == "help" {
			return
		}
		name := flagenv.EnvName(EnvPrefix, f.Name)
		if v, ok := os.LookupEnv(name); ok {
			if e := f.Value.Set(v); e != nil {
				err = usageError(fmt.Sprintf("environment variable %s (flag --%s): %v", name, f.Name, goValueError(e)))
			}
		}
	})
	return err
}

// passwordFlagHint answers --password: the user commands take none, on purpose.
const passwordFlagHint = "passwords are never taken as flags (they would show in shell history and ps): pipe one in with --password-stdin, or omit it to have one generated"

// keyFlagHint answers --key: create-key takes a chosen key from stdin or a file, on purpose.
const keyFlagHint = "keys are never taken as flags (they would show in shell history and ps): pipe one in with --key-stdin, name a file holding it with --key-file, or omit it to have one generated"

// refuseSecretFlags refuses a secret flag (flagenv.Secret, such as --redis-password) given on
// the command line; its environment variable still sets it (flagsFromEnv). pflag marks only
// what the command line set, so Visit sees those alone.
func refuseSecretFlags(fs *pflag.FlagSet) error {
	var err error
	fs.Visit(func(f *pflag.Flag) {
		if s, ok := f.Value.(*flagenv.Secret); ok && err == nil {
			err = usageError(s.Refused(EnvPrefix, f.Name).Error())
		}
	})
	return err
}

// flagError prints a command-line error as the flag package did: the error, then the usage.
// MainIO then prints it once more after "keystore:" and exits with 2.
func flagError(cmd *cobra.Command, err error) error {
	msg := goFlagMessage(err)
	fmt.Fprintln(cmd.ErrOrStderr(), msg)
	_ = cmd.Usage()
	if cmd.Flags().Lookup("password-stdin") != nil && strings.Contains(msg, "not defined: -password") {
		// One more line after MainIO's "keystore: " + msg.
		msg += "\nkeystore: " + passwordFlagHint
	}
	if cmd.Flags().Lookup("key-stdin") != nil && msg == "flag provided but not defined: -key" {
		msg += "\nkeystore: " + keyFlagHint
	}
	return usageError(msg)
}

// goFlagMessage words pflag's errors as the flag package's.
func goFlagMessage(err error) string {
	var notExist *pflag.NotExistError
	var noValue *pflag.ValueRequiredError
	var invalid *pflag.InvalidValueError
	switch {
	case errors.As(err, &notExist):
		return "flag provided but not defined: -" + notExist.GetSpecifiedName()
	case errors.As(err, &noValue):
		return "flag needs an argument: -" + noValue.GetSpecifiedName()
	case errors.As(err, &invalid):
		f, cause := invalid.GetFlag(), goValueError(errors.Unwrap(invalid))
		if f.Value.Type() == "bool" {
			return fmt.Sprintf("invalid boolean value %q for -%s: %v", invalid.GetValue(), f.Name, cause)
		}
		return fmt.Sprintf("invalid value %q for flag -%s: %v", invalid.GetValue(), f.Name, cause)
	}
	return err.Error()
}

// goValueError words a number's parse error as the flag package's.
func goValueError(err error) error {
	switch {
	case errors.Is(err, strconv.ErrSyntax):
		return errors.New("parse error")
	case errors.Is(err, strconv.ErrRange):
		return errors.New("value out of range")
	}
	return err
}

// writeUsage is the help of every command but serve (which has its own): the synopsis, the
// description, examples, and each flag with its environment variable.
func writeUsage(cmd *cobra.Command) error {
	w := cmd.ErrOrStderr()
	if !cmd.HasParent() {
		writeRootUsage(w, cmd)
		return nil
	}
	fmt.Fprintf(w, "Usage: %s\n\n%s\n", cmd.UseLine(), strings.TrimSpace(cmd.Long))
	if cmd.Example != "" {
		fmt.Fprintf(w, "\nExamples:\n%s\n", strings.TrimRight(cmd.Example, "\n"))
	}
	fmt.Fprintln(w, "\nFlags (each also settable by the environment variable shown):")
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if f.Name == "help" {
			return
		}
		fmt.Fprintf(w, "  --%s (%s)\n    \t%s", f.Name, flagenv.EnvName(EnvPrefix, f.Name), f.Usage)
		if f.DefValue != "" {
			fmt.Fprintf(w, " (default %q)", f.DefValue)
		}
		fmt.Fprintln(w)
	})
	return nil
}

func writeRootUsage(w io.Writer, root *cobra.Command) {
	fmt.Fprintf(w, "Usage: %s\n\n%s\n", root.UseLine(), root.Long)
	for _, g := range root.Groups() {
		fmt.Fprintf(w, "\n%s\n", g.Title)
		for _, c := range root.Commands() {
			if c.GroupID == g.ID && c.IsAvailableCommand() {
				fmt.Fprintf(w, "  %-13s %s\n", c.Name(), c.Short)
			}
		}
	}
	fmt.Fprintln(w, "\nRun 'keystore COMMAND --help' (or 'keystore help COMMAND') for a command's flags.")
}
