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
