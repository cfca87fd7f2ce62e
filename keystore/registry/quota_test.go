package registry

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apiserver/pkg/registry/rest"

	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
)

var quotaN int

// quotaUser is a user name no other test has keys for.
func quotaUser(prefix string) string {
	quotaN++
	return fmt.Sprintf("%s-%d-%d", prefix, time.Now().UnixNano()%1e9, quotaN)
}

// quotaFixture is the registry with quotas, and a user holding one key (which counts).
type quotaFixture struct {
	widenFixture
	user string
	ctx  context.Context // the user's requests
}

func newQuotaFixture(t *testing.T, q Quotas) quotaFixture {
	f := widenFixture{NewAccessKeys(keys, Options{AdminGroup: "admins", Quotas: q})}
	user := quotaUser("quota")
	return quotaFixture{f, user, as(user, f.hold(t, "holder-"+user, v1.OwnedAccessKeySpec{User: user}))}
}

func (f quotaFixture) createKey(ctx context.Context, spec v1.OwnedAccessKeySpec) (*v1.OwnedAccessKey, error) {
	quotaN++
	obj, err := f.a.Create(ctx, &v1.OwnedAccessKey{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-k%d", f.user, quotaN)}, Spec: spec}, nil, &metav1.CreateOptions{})
	if err != nil {
		return nil, err
	}
	return obj.(*v1.OwnedAccessKey), nil
}

// wantQuotaRefusal checks that err is the 403 that names the owner and the bound.
func wantQuotaRefusal(t *testing.T, err error, owner, bound string) {
	t.Helper()
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "quota exceeded: "+owner+" already has "+bound) {
		t.Fatalf("create past the quota: %v; want 403 saying %q", err, owner+" already has "+bound)
	}
}

// The 101st key of a user is refused, whoever creates it; login keys count apart, expired
// keys not at all, and deleting a key frees its slot.
func TestQuotaRefusesThe101stKey(t *testing.T) {
	f := newQuotaFixture(t, Quotas{MaxKeysPerUser: 100, MaxLoginKeysPerUser: 1})
	admin := as("root", f.hold(t, "quota-admin", v1.OwnedAccessKeySpec{User: "root"}), "admins")
	// An expired key is of no use to anyone: it does not count.
	createKey(t, "expired-"+f.user, v1.OwnedAccessKeySpec{User: f.user, TTL: 60}, time.Now().Add(-time.Hour))
	var last *v1.OwnedAccessKey
	for i := 2; i <= 100; i++ { // the holder is the first
		k, err := f.createKey(f.ctx, v1.OwnedAccessKeySpec{})
		if err != nil {
			t.Fatalf("key %d: %v", i, err)
		}
		last = k
	}
	_, err := f.createKey(f.ctx, v1.OwnedAccessKeySpec{})
	wantQuotaRefusal(t, err, f.user, "100 live access keys")
	// An admin creating for the user is bound by the user's quota too.
	_, err = f.createKey(admin, v1.OwnedAccessKeySpec{User: f.user})
	wantQuotaRefusal(t, err, f.user, "100 live access keys")
	// A login key is counted against its own bound, and refused here past it.
	if _, err := f.createKey(f.ctx, v1.OwnedAccessKeySpec{Type: v1.AccessKeyTypeLogin, TTL: 3600}); err != nil {
		t.Fatalf("a login key at 100 other keys: %v", err)
	}
	_, err = f.createKey(f.ctx, v1.OwnedAccessKeySpec{Type: v1.AccessKeyTypeLogin, TTL: 3600})
	wantQuotaRefusal(t, err, f.user, "1 live login keys")

	if _, _, err := f.a.Delete(f.ctx, last.Name, nil, &metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.createKey(f.ctx, v1.OwnedAccessKeySpec{}); err != nil {
		t.Errorf("after a delete: %v", err)
	}
}

// Many creates at once for the last free slot: exactly one gets it.
func TestQuotaConcurrentCreatesAtTheBound(t *testing.T) {
	f := newQuotaFixture(t, Quotas{MaxKeysPerUser: 3})
	if _, err := f.createKey(f.ctx, v1.OwnedAccessKeySpec{}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 10)
	for range 10 {
		quotaN++
		name := fmt.Sprintf("%s-race%d", f.user, quotaN)
		wg.Go(func() {
			_, err := f.a.Create(f.ctx, &v1.OwnedAccessKey{ObjectMeta: metav1.ObjectMeta{Name: name}}, nil, &metav1.CreateOptions{})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	created := 0
	for err := range errs {
		switch {
		case err == nil:
			created++
		case apierrors.IsForbidden(err), apierrors.IsConflict(err):
		default:
			t.Errorf("create: %v", err)
		}
	}
	if created != 1 {
		t.Errorf("%d of 10 parallel creates for the last slot succeeded, want 1", created)
	}
}

func TestTTLCapForNonAdmins(t *testing.T) {
	f := newQuotaFixture(t, Quotas{MaxTTLNonAdmin: time.Hour})
	admin := as("root", f.hold(t, "ttl-admin", v1.OwnedAccessKeySpec{User: "root"}), "admins")
	for _, tc := range []struct {
		name    string
		admin   bool
		ttl     int64
		wantErr string // in the 422 about spec.ttl; "" for success
	}{
		{"non-admin within the cap", false, 3600, ""},
		{"non-admin above the cap", false, 7200, "must be at most 3600 seconds (1h0m0s)"},
		{"non-admin never expiring", false, 0, "0 (never expires) is not allowed"},
		{"admin above the cap", true, 7200, ""},
		{"admin never expiring", true, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := f.ctx
			if tc.admin {
				ctx = admin
			}
			_, err := f.createKey(ctx, v1.OwnedAccessKeySpec{User: f.user, TTL: tc.ttl})
			wantTTLError(t, err, tc.wantErr)
		})
	}
}

// A non-admin cannot lift the cap by editing the ttl afterwards; a key made by an admin
// without one stays editable in other ways.
func TestTTLCapOnUpdate(t *testing.T) {
	f := newQuotaFixture(t, Quotas{MaxTTLNonAdmin: time.Hour})
	admin := as("root", f.hold(t, "ttl-admin", v1.OwnedAccessKeySpec{User: "root"}), "admins")
	capped, err := f.createKey(f.ctx, v1.OwnedAccessKeySpec{TTL: 600})
	if err != nil {
		t.Fatal(err)
	}
	wantTTLError(t, f.updateKey(t, f.ctx, capped.Name, func(k *v1.OwnedAccessKey) { k.Spec.TTL = 0 }), "0 (never expires) is not allowed")
	eternal, err := f.createKey(admin, v1.OwnedAccessKeySpec{User: f.user})
	if err != nil {
		t.Fatal(err)
	}
	wantTTLError(t, f.updateKey(t, f.ctx, eternal.Name, func(k *v1.OwnedAccessKey) { k.Spec.DisplayName = "renamed" }), "")
}

func (f quotaFixture) updateKey(t *testing.T, ctx context.Context, name string, change func(*v1.OwnedAccessKey)) error {
	t.Helper()
	cur, err := keys.Get(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	change(cur)
	_, _, err = f.a.Update(ctx, name, rest.DefaultUpdatedObjectInfo(cur), nil, nil, false, &metav1.UpdateOptions{})
	return err
}

func wantTTLError(t *testing.T, err error, want string) {
	t.Helper()
	if want == "" {
		if err != nil {
			t.Errorf("refused: %v", err)
		}
		return
	}
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "spec.ttl") || !strings.Contains(err.Error(), want) {
		t.Errorf("error %v, want a 422 about spec.ttl saying %q", err, want)
	}
}
