package accesskey

import (
	"errors"
	"testing"
)

func TestBearer(t *testing.T) {
	tests := map[string]struct {
		header string
		want   string
		err    error
	}{
		"bearer":                 {"Bearer kgk_abc", "kgk_abc", nil},
		"lower-case scheme":      {"bearer kgk_abc", "kgk_abc", nil},
		"upper-case scheme":      {"BEARER kgk_abc", "kgk_abc", nil},
		"trailing space":         {"Bearer kgk_abc ", "kgk_abc", nil},
		"missing":                {"", "", ErrMissing},
		"basic":                  {"Basic YWRtaW46YWRtaW4=", "", ErrNotBearer},
		"scheme only":            {"Bearer", "", ErrNotBearer},
		"empty token":            {"Bearer ", "", ErrEmpty},
		"two headers joined":     {"Bearer a,Bearer b", "", ErrMalformed},
		"two tokens":             {"Bearer a b", "", ErrMalformed},
		"token without a scheme": {"kgk_abc", "", ErrNotBearer},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := Bearer(tc.header)
			if got != tc.want || !errors.Is(err, tc.err) {
				t.Errorf("Bearer(%q) = %q, %v; want %q, %v", tc.header, got, err, tc.want, tc.err)
			}
		})
	}
}
