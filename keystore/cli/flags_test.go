package cli

import (
	"slices"
	"testing"

	"github.com/spf13/pflag"
)

func TestGoStyleFlags(t *testing.T) {
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	fs.String("output", "json", "")
	fs.Bool("password-stdin", false, "")
	for _, tc := range []struct{ args, want []string }{
		{[]string{"-output=xml", "NAME"}, []string{"--output=xml", "NAME"}},
		{[]string{"-output", "-x", "NAME"}, []string{"--output", "-x", "NAME"}},
		{[]string{"-password-stdin", "NAME"}, []string{"--password-stdin", "NAME"}},
		{[]string{"--h"}, []string{"-h"}},
		{[]string{"-help"}, []string{"--help"}},
		{[]string{"-", "---x", "--=x"}, []string{"-", "---x", "--=x"}},
		{[]string{"NAME", "--", "-output"}, []string{"NAME", "--", "-output"}},
	} {
		if got := goStyleFlags(fs, tc.args); !slices.Equal(got, tc.want) {
			t.Errorf("goStyleFlags(%q) = %q, want %q", tc.args, got, tc.want)
		}
	}
}
