package sizes

import (
	"slices"
	"testing"
)

func TestParse(t *testing.T) {
	tests := map[string]struct {
		list  string
		least int
		want  []int
		err   string
	}{
		"defaults":        {"100,1000,10000", 2, []int{100, 1000, 10000}, ""},
		"spaces":          {" 5 , 7", 1, []int{5, 7}, ""},
		"too small":       {"100,1", 2, nil, `"1" is not a number of at least 2`},
		"not a number":    {"100,1k", 1, nil, `"1k" is not a number of at least 1`},
		"empty list item": {"100,", 1, nil, `"" is not a number of at least 1`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := Parse(tc.list, tc.least)
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("Parse(%q) error %v, want %q", tc.list, err, tc.err)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Fatalf("Parse(%q) = %v, %v; want %v", tc.list, got, err, tc.want)
			}
		})
	}
}
