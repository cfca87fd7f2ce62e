package registry

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/keygate-dev/keygate/internal/redisack"
)

// A write the replicas did not acknowledge is a 503 that says the master has it; anything else
// from the store stays a 500.
func TestStoreErrorNotReplicatedIs503(t *testing.T) {
	err := storeError(fmt.Errorf("delete access key k: %w", &redisack.NotReplicatedError{Want: 1, Timeout: time.Second}))
	if err.Status().Code != http.StatusServiceUnavailable || !strings.Contains(err.Error(), "reached the Redis master") {
		t.Errorf("storeError(not replicated) = %d %v; want 503 saying the write reached the master", err.Status().Code, err)
	}
	if err := storeError(errors.New("boom")); err.Status().Code != http.StatusInternalServerError {
		t.Errorf("storeError(other) = %d; want 500", err.Status().Code)
	}
}
