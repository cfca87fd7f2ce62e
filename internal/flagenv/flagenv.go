// Package flagenv gives every command-line flag an environment-variable equivalent:
// --redis-address is also EXTAUTHZ_REDIS_ADDRESS for prefix EXTAUTHZ. A flag given on the
// command line wins over the environment, except a Secret, which only the environment sets.
package flagenv

import (
	"flag"
	"fmt"
	"os"
	"strings"
)

// EnvName is the environment variable for a flag: PREFIX_FLAG_NAME.
func EnvName(prefix, flagName string) string {
	return prefix + "_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// Parse parses args into fs, then fills every flag not given on the command line from its
// environment variable. A malformed value names both the variable and the flag.
func Parse(fs *flag.FlagSet, prefix string, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	given := map[string]bool{}
	var err error
	fs.Visit(func(f *flag.Flag) {
		given[f.Name] = true
		if s, ok := f.Value.(*Secret); ok && err == nil {
			err = s.Refused(prefix, f.Name)
		}
	})
	if err != nil {
		return err
	}
	fs.VisitAll(func(f *flag.Flag) {
		if err != nil || given[f.Name] {
			return
		}
		name := EnvName(prefix, f.Name)
		if v, ok := os.LookupEnv(name); ok {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("environment variable %s (flag --%s): %w", name, f.Name, e)
			}
		}
	})
	return err
}

// Usage returns a usage function that lists each flag with its environment variable.
func Usage(fs *flag.FlagSet, prefix, summary string) func() {
	return func() {
		out := fs.Output()
		fmt.Fprintf(out, "%s\n\nFlags (each also settable by the environment variable shown):\n", summary)
		fs.VisitAll(func(f *flag.Flag) {
			fmt.Fprintf(out, "  --%s (%s)\n    \t%s", f.Name, EnvName(prefix, f.Name), f.Usage)
			if f.DefValue != "" {
				fmt.Fprintf(out, " (default %q)", f.DefValue)
			}
			fmt.Fprintln(out)
		})
	}
}

// Secret is the value of a flag that holds a secret (a password): its environment variable sets
// it, the command line may not, because ps and shell history show every argument. Parse and
// keystore's cobra commands refuse it on the command line with Refused. String never shows the
// secret, so neither usage nor an error can print it.
type Secret struct {
	Value string
	// Hint says where else the secret may come from, besides the environment variable, which
	// Refused names itself: "put it in a file named by --redis-password-file".
	Hint string
}

// String is empty: flag prints it as the default in usage.
func (s *Secret) String() string { return "" }

// Set keeps v.
func (s *Secret) Set(v string) error { s.Value = v; return nil }

// Type makes a Secret a pflag.Value too, so that cobra, adopting a Go flag set, keeps the Secret
// itself (and keystore's commands can tell it from other flags).
func (s *Secret) Type() string { return "string" }

// Refused is the error for the secret flag name given on the command line; it never repeats
// the value.
func (s *Secret) Refused(prefix, name string) error {
	return fmt.Errorf("--%s is never taken on the command line (it would show in shell history and ps): %s, or set the environment variable %s",
		name, s.Hint, EnvName(prefix, name))
}
