package kubestatus

import (
	"encoding/json"
	"net/http"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// client-go turns the body into the error kubectl prints: the reason and message survive.
func TestFailureReadsAsAnAPIError(t *testing.T) {
	body, err := json.Marshal(Failure(http.StatusForbidden, metav1.StatusReasonForbidden, `access key "k" is not allowed to delete pods`))
	if err != nil {
		t.Fatal(err)
	}
	var s metav1.Status
	if err := json.Unmarshal(body, &s); err != nil {
		t.Fatal(err)
	}
	e := &apierrors.StatusError{ErrStatus: s}
	if !apierrors.IsForbidden(e) || e.Error() != `access key "k" is not allowed to delete pods` || s.Kind != "Status" || s.APIVersion != "v1" {
		t.Errorf("got %#v", s)
	}
}
