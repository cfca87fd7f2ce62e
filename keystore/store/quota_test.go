package store

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
)

// ownedBy counts the keys of user.
func ownedBy(user string) func(*v1.OwnedAccessKey) bool {
	return func(k *v1.OwnedAccessKey) bool { return k.Spec.User == user }
}

func TestCreateWithinQuota(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name      string
		evict     bool
		wantErr   error
		wantGone  int // how many of the first keys are deleted
		wantCount int
	}{
		{"at the bound: refused", false, ErrQuota, 0, 3},
		{"at the bound with eviction: the oldest goes", true, nil, 1, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			user := unique("quota")
			q := Quota{Max: 3, Counts: ownedBy(user), EvictOldest: tc.evict}
			var first []string
			for i := range 3 {
				k := key(unique("q"), v1.OwnedAccessKeySpec{User: user})
				k.CreationTimestamp = metav1.NewTime(time.Unix(1_000_000+int64(i), 0))
				if _, _, _, err := store.CreateWithinQuota(ctx, k, q); err != nil {
					t.Fatal(err)
				}
				first = append(first, k.Name)
			}
			_, _, evicted, err := store.CreateWithinQuota(ctx, key(unique("q"), v1.OwnedAccessKeySpec{User: user}), q)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("fourth create: %v, want %v", err, tc.wantErr)
			}
			if !slices.Equal(evicted, first[:tc.wantGone]) {
				t.Errorf("evicted %v, want %v", evicted, first[:tc.wantGone])
			}
			for i, name := range first {
				if _, err := store.Get(ctx, name); errors.Is(err, ErrNotFound) != (i < tc.wantGone) {
					t.Errorf("key %d: %v", i, err)
				}
			}
			if n := countOwned(t, user); n != tc.wantCount {
				t.Errorf("%d keys, want %d", n, tc.wantCount)
			}
		})
	}
}

func countOwned(t *testing.T, user string) int {
	t.Helper()
	all, err := store.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, k := range all {
		if k.Spec.User == user {
			n++
		}
	}
	return n
}

// Many creates at once, from one free slot: exactly one is stored.
func TestCreateWithinQuotaIsExactUnderConcurrency(t *testing.T) {
	ctx := context.Background()
	user := unique("race")
	q := Quota{Max: 5, Counts: ownedBy(user)}
	for range 4 {
		if _, _, _, err := store.CreateWithinQuota(ctx, key(unique("r"), v1.OwnedAccessKeySpec{User: user}), q); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			_, _, _, err := store.CreateWithinQuota(ctx, key(unique("r"), v1.OwnedAccessKeySpec{User: user}), q)
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	ok := 0
	for err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, ErrQuota) && !errors.Is(err, ErrConflict):
			t.Errorf("create: %v", err)
		}
	}
	if n := countOwned(t, user); ok != 1 || n != 5 {
		t.Errorf("%d creates succeeded and %d keys exist; want 1 and 5", ok, n)
	}
}
