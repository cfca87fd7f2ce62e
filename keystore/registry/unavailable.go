package registry

import (
	"errors"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/keygate-dev/keygate/internal/redisack"
)

// storeError is the API error of a store failure. A write that reached the Redis master but
// not the replicas --redis-min-replica-acks asks for is a 503, not a 500:
// nothing is wrong with the request, and a retry once the replicas answer succeeds.
func storeError(err error) *apierrors.StatusError {
	if errors.Is(err, redisack.ErrNotReplicated) {
		return apierrors.NewServiceUnavailable(err.Error())
	}
	return apierrors.NewInternalError(err)
}
