package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
	"github.com/keygate-dev/keygate/localdev"
)

// clusterPath is a request every authenticated user may make on the demo cluster.
var clusterPath = demo.Prefix() + "version"

// warmKey uses key a few times, so that extauthz has it in its cache, and fails unless it works.
func warmKey(t *testing.T, key string) {
	t.Helper()
	for range 3 {
		if resp, body := get(t, key, clusterPath, nil); resp.StatusCode != http.StatusOK {
			t.Fatalf("key before revocation: %d %s", resp.StatusCode, body)
		}
	}
}

// refusedWithin polls until key gets a 401 and returns how long that took after since.
func refusedWithin(t *testing.T, key string, since time.Time) time.Duration {
	t.Helper()
	var took time.Duration
	eventually(t, 5*time.Second, "the revoked key is refused at the edge", func() error {
		resp, body := get(t, key, clusterPath, nil)
		if resp.StatusCode != http.StatusUnauthorized {
			return fmt.Errorf("HTTP %d: %s", resp.StatusCode, body)
		}
		took = time.Since(since)
		return nil
	})
	return took
}

// A key deleted with kubectl is refused at the edge at once, though extauthz had it cached.
func TestDeletedKeyIsRefused(t *testing.T) {
	_, admin := newKey(t, v1.OwnedAccessKeySpec{User: "revoker", Groups: []string{localdev.AdminGroup}})
	name, key := newKey(t, v1.OwnedAccessKeySpec{User: "revoked"})
	warmKey(t, key)
	out, errOut, err := kubectlIn(t, kubeconfig(t, admin), nil, "delete", "ownedaccesskeys.management.loft.sh", name)
	if err != nil {
		t.Fatalf("kubectl delete: %v\n%s%s", err, out, errOut)
	}
	took := refusedWithin(t, key, time.Now())
	t.Logf("deleted key refused %s after kubectl delete returned", took)
	resp, body := get(t, key, clusterPath, nil)
	if s := status(t, resp, body); !strings.Contains(s.Message, "invalid access key") {
		t.Errorf("message for a deleted key: %q", s.Message)
	}
}

// A disabled key is refused at once too, and works again when enabled.
func TestDisabledKeyIsRefused(t *testing.T) {
	name, key := newKey(t, v1.OwnedAccessKeySpec{User: "disabled"})
	warmKey(t, key)
	start := time.Now()
	if err := keys.SetDisabled(context.Background(), name, true); err != nil {
		t.Fatal(err)
	}
	t.Logf("disabled key refused %s after the store acknowledged", refusedWithin(t, key, start))
	if err := keys.SetDisabled(context.Background(), name, false); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the enabled key works again", func() error {
		if resp, body := get(t, key, clusterPath, nil); resp.StatusCode != http.StatusOK {
			return fmt.Errorf("HTTP %d: %s", resp.StatusCode, body)
		}
		return nil
	})
}
