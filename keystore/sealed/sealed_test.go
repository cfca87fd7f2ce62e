package sealed

import (
	"errors"
	"strings"
	"testing"
)

func TestSealOpen(t *testing.T) {
	oldKey, newKey := Generate(), Generate()
	old, err := Parse(oldKey)
	if err != nil {
		t.Fatal(err)
	}
	rotated, err := Parse("# rotated\n" + newKey + "\n\n" + oldKey + "\n")
	if err != nil {
		t.Fatal(err)
	}
	sealedOld := old.Seal([]byte("secret"), "place/a")
	if strings.Contains(sealedOld, "secret") {
		t.Fatalf("sealed value shows the plaintext: %s", sealedOld)
	}
	tests := []struct {
		name  string
		box   *Box
		value string
		place string
		want  string // "" means ErrOpen
	}{
		{"same key, same place", old, sealedOld, "place/a", "secret"},
		{"rotated file opens the old key's value", rotated, sealedOld, "place/a", "secret"},
		{"another place is refused", old, sealedOld, "place/b", ""},
		{"a file without the key is refused", mustParse(t, newKey), sealedOld, "place/a", ""},
		{"tampered", old, sealedOld[:len(sealedOld)-2] + "AA", "place/a", ""},
		{"not sealed", old, "secret", "place/a", ""},
		{"malformed", old, prefix + "nodot", "place/a", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.box.Open(tc.value, tc.place)
			if tc.want == "" {
				if !errors.Is(err, ErrOpen) {
					t.Fatalf("Open = %q, %v; want ErrOpen", got, err)
				}
				return
			}
			if err != nil || string(got) != tc.want {
				t.Fatalf("Open = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
	if rotated.Current(sealedOld) || !old.Current(sealedOld) {
		t.Error("Current: want false for the rotated box, true for the sealing one")
	}
	if v := rotated.Seal([]byte("x"), "p"); !rotated.Current(v) {
		t.Error("a value the rotated box seals is not Current")
	}
}

func TestParseErrors(t *testing.T) {
	for name, data := range map[string]string{
		"empty":      "\n# nothing\n",
		"not base64": "!!!",
		"short key":  "c2hvcnQ=",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Parse(data)
			if err == nil {
				t.Fatal("Parse succeeded")
			}
			if strings.Contains(err.Error(), data) && data != "" {
				t.Errorf("error repeats the secret line: %v", err)
			}
		})
	}
}

func mustParse(t *testing.T, data string) *Box {
	t.Helper()
	b, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
