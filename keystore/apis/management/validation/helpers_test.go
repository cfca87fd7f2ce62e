package validation

import (
	"sort"
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
)

// validKey is the smallest key every rule accepts; each case changes one thing of it.
func validKey() *v1.OwnedAccessKey {
	return &v1.OwnedAccessKey{
		ObjectMeta: metav1.ObjectMeta{Name: "ci-deploy"},
		Spec:       v1.OwnedAccessKeySpec{User: "alice"},
	}
}

// wantErr is what a case expects: the error type and the exact field path.
type wantErr struct {
	Type  field.ErrorType
	Field string
}

// checkErrors compares errors as sets of (type, field); messages are checked where they matter.
func checkErrors(t *testing.T, got field.ErrorList, want []wantErr) {
	t.Helper()
	have := []wantErr{}
	for _, e := range got {
		have = append(have, wantErr{e.Type, e.Field})
	}
	if want == nil {
		want = []wantErr{}
	}
	less := func(s []wantErr) func(i, j int) bool {
		return func(i, j int) bool {
			if s[i].Field != s[j].Field {
				return s[i].Field < s[j].Field
			}
			return s[i].Type < s[j].Type
		}
	}
	sort.Slice(have, less(have))
	sort.Slice(want, less(want))
	if diff := cmp.Diff(want, have); diff != "" {
		t.Errorf("errors (-want +got):\n%s\nall errors: %v", diff, got)
	}
}
