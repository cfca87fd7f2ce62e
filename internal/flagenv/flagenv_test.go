package flagenv

import (
	"flag"
	"io"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := map[string]struct {
		args    []string
		env     map[string]string
		want    string
		wantErr string
	}{
		"default":              {want: "def"},
		"from env":             {env: map[string]string{"T_REDIS_ADDRESS": "env"}, want: "env"},
		"flag wins over env":   {args: []string{"--redis-address=flag"}, env: map[string]string{"T_REDIS_ADDRESS": "env"}, want: "flag"},
		"bad env value errors": {env: map[string]string{"T_COUNT": "x"}, want: "def", wantErr: "T_COUNT (flag --count)"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			fs := flag.NewFlagSet("t", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			addr := fs.String("redis-address", "def", "")
			fs.Int("count", 1, "")
			err := Parse(fs, "T", tc.args)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want it to mention %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if *addr != tc.want {
				t.Errorf("redis-address = %q, want %q", *addr, tc.want)
			}
		})
	}
}

// A Secret comes from its environment variable; on the command line it is refused with a
// message that says where to put it and does not repeat it.
func TestSecret(t *testing.T) {
	parse := func(args ...string) (*Secret, string, error) {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		var usage strings.Builder
		fs.SetOutput(&usage)
		s := &Secret{Hint: "put it in a file named by --password-file"}
		fs.Var(s, "password", "the password")
		err := Parse(fs, "T", args)
		Usage(fs, "T", "Usage: t")()
		return s, usage.String(), err
	}
	t.Setenv("T_PASSWORD", "from-env")
	s, usage, err := parse()
	if err != nil || s.Value != "from-env" {
		t.Errorf("from the environment: value %q, err %v; want from-env", s.Value, err)
	}
	if strings.Contains(usage, "from-env") {
		t.Errorf("usage shows the secret: %s", usage)
	}
	_, _, err = parse("--password", "hunter22")
	want := "--password is never taken on the command line (it would show in shell history and ps): put it in a file named by --password-file, or set the environment variable T_PASSWORD"
	if err == nil || err.Error() != want {
		t.Errorf("on the command line: err = %v, want %q", err, want)
	}
	if err != nil && strings.Contains(err.Error(), "hunter22") {
		t.Error("the refusal repeats the secret")
	}
}
