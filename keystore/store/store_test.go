package store

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/keygate-dev/keygate/internal/redisserver"
	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
)

var (
	rdb   redis.UniversalClient
	store *Store
	// redisAddr is the one Redis's address (standalone only: isolated).
	redisAddr string
)

// TestMain runs the package against one Redis, or against a Redis Cluster with
// KEYGATE_TEST_REDIS=cluster (every key in the {accesskeys} slot: the scripts run there too).
func TestMain(m *testing.M) {
	redisserver.TestMain(m, "keystore/store", redisserver.Options{}, func(srv *redisserver.Server) {
		rdb = redis.NewUniversalClient(srv.UniversalOptions())
		redisAddr = srv.Addr
		store = New(rdb)
	})
}

func key(name string, spec v1.OwnedAccessKeySpec) *v1.OwnedAccessKey {
	return &v1.OwnedAccessKey{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: spec}
}

var runID = strconv.FormatInt(time.Now().UnixNano()%1e9, 36)

// unique gives a name no other test, nor another run against the same Redis, uses.
func unique(name string) string {
	return fmt.Sprintf("%s-%s-%d", name, runID, uniqueN.Add(1))
}

var uniqueN atomic.Int64

func TestCreateLookupGetDelete(t *testing.T) {
	ctx := context.Background()
	name := unique("crud")
	plain, err := store.Create(ctx, key(name, v1.OwnedAccessKeySpec{User: "alice", Groups: []string{"dev"}, TTL: 60}))
	if err != nil {
		t.Fatal(err)
	}
	got, err := store.Lookup(ctx, plain)
	if err != nil {
		t.Fatalf("Lookup: %v", err)
	}
	if got.Name != name || got.Spec.User != "alice" || got.Spec.TTL != 60 || got.Spec.Key != "" || got.UID == "" || got.CreationTimestamp.IsZero() {
		t.Errorf("Lookup = %+v; want the name, user alice, ttl 60, no key, a uid and a creation time", got)
	}
	if got.Kind != "OwnedAccessKey" || got.APIVersion != "management.loft.sh/v1" {
		t.Errorf("type = %s %s", got.APIVersion, got.Kind)
	}
	byName, err := store.Get(ctx, name)
	if err != nil || byName.UID != got.UID {
		t.Fatalf("Get = %v, %v", byName, err)
	}
	if err := store.Delete(ctx, name); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Lookup(ctx, plain); !errors.Is(err, ErrNotFound) {
		t.Errorf("Lookup after delete: %v, want ErrNotFound", err)
	}
	if _, err := store.Get(ctx, name); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after delete: %v, want ErrNotFound", err)
	}
	if err := store.Delete(ctx, name); !errors.Is(err, ErrNotFound) {
		t.Errorf("second delete: %v, want ErrNotFound", err)
	}
}

func TestCreateKeepsGivenCreationTimestamp(t *testing.T) {
	past := metav1.NewTime(time.Now().Add(-48 * time.Hour).UTC().Truncate(time.Second))
	k := key(unique("backdated"), v1.OwnedAccessKeySpec{User: "bob"})
	k.CreationTimestamp = past
	plain, err := store.Create(context.Background(), k)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := store.Lookup(context.Background(), plain)
	if !got.CreationTimestamp.Equal(&past) {
		t.Errorf("creationTimestamp = %v, want %v", got.CreationTimestamp, past)
	}
}

func TestGeneratedKeys(t *testing.T) {
	format := regexp.MustCompile(`^kgk_[A-Za-z0-9_-]{43}$`)
	seen := map[string]bool{}
	for i := range 50 {
		k, err := GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		if !format.MatchString(k) {
			t.Fatalf("generated key %d has the wrong format", i)
		}
		if seen[k] {
			t.Fatal("generated the same key twice")
		}
		seen[k] = true
	}
}

func TestCreateRefuses(t *testing.T) {
	ctx := context.Background()
	taken, cp := unique("taken"), unique("copy")
	if _, err := store.Create(ctx, key(taken, v1.OwnedAccessKeySpec{User: "u"})); err != nil {
		t.Fatal(err)
	}
	supplied := unique("supplied-key-material-") + strings.Repeat("s", 40)
	if _, err := store.Create(ctx, key(unique("supplied"), v1.OwnedAccessKeySpec{User: "u", Key: supplied})); err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		key     *v1.OwnedAccessKey
		want    error
		message string
	}{
		"short key":         {key("short", v1.OwnedAccessKeySpec{Key: "too-short"}), ErrInvalid, "at least 32 characters"},
		"no name":           {key("", v1.OwnedAccessKeySpec{}), ErrInvalid, "metadata.name is required"},
		"bad name":          {key("Not_A_Name", v1.OwnedAccessKeySpec{}), ErrInvalid, "metadata.name"},
		"taken name":        {key(taken, v1.OwnedAccessKeySpec{}), ErrAlreadyExists, taken},
		"same key material": {key(cp, v1.OwnedAccessKeySpec{Key: supplied}), ErrAlreadyExists, "same key material"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := store.Create(ctx, tc.key)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.message) {
				t.Errorf("Create: %v; want %v mentioning %q", err, tc.want, tc.message)
			}
		})
	}
	// A refused duplicate must not have taken the name.
	if _, err := store.Get(ctx, cp); !errors.Is(err, ErrNotFound) {
		t.Errorf("name of a refused key is taken: %v", err)
	}
}

func TestConcurrentCreatesOfOneName(t *testing.T) {
	var wg sync.WaitGroup
	name := unique("race")
	errs := make([]error, 8)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = store.Create(context.Background(), key(name, v1.OwnedAccessKeySpec{User: "u"}))
		}()
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, ErrAlreadyExists):
			t.Errorf("unexpected error: %v", err)
		}
	}
	if won != 1 {
		t.Errorf("%d creates of one name succeeded, want exactly 1", won)
	}
}

func TestSetDisabled(t *testing.T) {
	ctx := context.Background()
	name := unique("toggle")
	plain, err := store.Create(ctx, key(name, v1.OwnedAccessKeySpec{User: "u"}))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []bool{true, false} {
		if err := store.SetDisabled(ctx, name, want); err != nil {
			t.Fatal(err)
		}
		got, err := store.Lookup(ctx, plain)
		if err != nil || got.Spec.Disabled != want {
			t.Errorf("after SetDisabled(%v): %+v, %v", want, got, err)
		}
	}
	if err := store.SetDisabled(ctx, unique("nope"), true); !errors.Is(err, ErrNotFound) {
		t.Errorf("SetDisabled of a missing key: %v", err)
	}
}

func TestList(t *testing.T) {
	ctx := context.Background()
	prefix := unique("list") + "-"
	for _, n := range []string{"b", "a"} {
		if _, err := store.Create(ctx, key(prefix+n, v1.OwnedAccessKeySpec{User: "u"})); err != nil {
			t.Fatal(err)
		}
	}
	all, err := store.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, k := range all {
		if n, ok := strings.CutPrefix(k.Name, prefix); ok {
			names = append(names, n)
		}
		if k.Spec.Key != "" {
			t.Errorf("List returned the key of %s", k.Name)
		}
	}
	if strings.Join(names, ",") != "a,b" {
		t.Errorf("List names = %v, want a,b in order", names)
	}
}

// Nothing in Redis holds a plain key: not as a key name, not in a value, not in an event.
func TestPlainKeyIsNeverStored(t *testing.T) {
	ctx := context.Background()
	name := unique("secret")
	plain, err := store.Create(ctx, key(name, v1.OwnedAccessKeySpec{User: "u"}))
	if err != nil {
		t.Fatal(err)
	}
	supplied := unique("client-supplied-key") + strings.Repeat("x", 20)
	if _, err := store.Create(ctx, key(unique("secret"), v1.OwnedAccessKeySpec{User: "u", Key: supplied})); err != nil {
		t.Fatal(err)
	}
	if err := store.SetDisabled(ctx, name, true); err != nil { // an event holding the object
		t.Fatal(err)
	}
	if err := store.Delete(ctx, name); err != nil {
		t.Fatal(err)
	}
	var values []string
	all, err := redisserver.Keys(ctx, rdb, "*") // every master's, on a Cluster
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(all, recordsKey) {
		t.Fatalf("SCAN found %v, not the records hash %s", all, recordsKey)
	}
	for _, k := range all {
		values = append(values, k)
		// A new Redis type must extend this check, not slip past it (DUMP would not do: it
		// compresses long values).
		switch typ := rdb.Type(ctx, k).Val(); typ {
		case "string":
			values = append(values, rdb.Get(ctx, k).Val())
		case "hash":
			for f, v := range rdb.HGetAll(ctx, k).Val() {
				values = append(values, f, v)
			}
		case "zset":
			values = append(values, rdb.ZRange(ctx, k, 0, -1).Val()...)
		case "stream":
			for _, m := range rdb.XRange(ctx, k, "-", "+").Val() {
				for f, v := range m.Values {
					values = append(values, f, fmt.Sprint(v))
				}
			}
		default:
			t.Fatalf("Redis key %s is a %s: teach this test to read it", k, typ)
		}
	}
	if len(values) < 20 {
		t.Fatalf("read %d names and values, want at least those of the two keys just created", len(values))
	}
	for _, v := range values {
		for _, secret := range []string{plain, supplied} {
			if strings.Contains(v, secret) {
				t.Fatalf("Redis holds a plain access key: %.80s", v)
			}
		}
	}
}

func TestUpdate(t *testing.T) {
	ctx := context.Background()
	name := unique("update")
	plain, created, err := store.CreateObject(ctx, key(name, v1.OwnedAccessKeySpec{User: "u", DisplayName: "before"}))
	if err != nil {
		t.Fatal(err)
	}
	if created.ResourceVersion == "" || created.UID == "" {
		t.Fatalf("created object has no resourceVersion or uid: %+v", created.ObjectMeta)
	}
	edit := created.DeepCopy()
	edit.Spec.DisplayName = "after"
	edit.UID = "forged"
	edit.CreationTimestamp = metav1.Now()
	updated, err := store.Update(ctx, edit)
	if err != nil {
		t.Fatal(err)
	}
	if updated.Spec.DisplayName != "after" || updated.UID != created.UID || !updated.CreationTimestamp.Equal(&created.CreationTimestamp) {
		t.Errorf("updated = %+v; want the new display name, and uid and creation time kept", updated)
	}
	if rvNum(t, updated.ResourceVersion) <= rvNum(t, created.ResourceVersion) {
		t.Errorf("resourceVersion %s after update, was %s: want it to grow", updated.ResourceVersion, created.ResourceVersion)
	}
	if got, err := store.Lookup(ctx, plain); err != nil || got.Spec.DisplayName != "after" || got.ResourceVersion != updated.ResourceVersion {
		t.Errorf("Lookup after update = %+v, %v", got, err)
	}

	tests := map[string]struct {
		mutate func(*v1.OwnedAccessKey)
		want   error
	}{
		"stale resourceVersion": {func(k *v1.OwnedAccessKey) { k.ResourceVersion = created.ResourceVersion }, ErrConflict},
		"no resourceVersion":    {func(k *v1.OwnedAccessKey) { k.ResourceVersion = "" }, ErrInvalid},
		"new key material":      {func(k *v1.OwnedAccessKey) { k.Spec.Key = strings.Repeat("k", 40) }, ErrInvalid},
		"missing key":           {func(k *v1.OwnedAccessKey) { k.Name = unique("missing") }, ErrNotFound},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			k := updated.DeepCopy()
			tc.mutate(k)
			if _, err := store.Update(ctx, k); !errors.Is(err, tc.want) {
				t.Errorf("Update: %v, want %v", err, tc.want)
			}
		})
	}
	if got, _ := store.Get(ctx, name); got.ResourceVersion != updated.ResourceVersion {
		t.Errorf("a refused update changed the key: resourceVersion %s, want %s", got.ResourceVersion, updated.ResourceVersion)
	}
}

// Concurrent read-modify-writes through Modify all land: none overwrites another.
func TestModifyRetriesConflicts(t *testing.T) {
	ctx := context.Background()
	name := unique("modify")
	if _, err := store.Create(ctx, key(name, v1.OwnedAccessKeySpec{User: "u"})); err != nil {
		t.Fatal(err)
	}
	const writers = 10
	var wg sync.WaitGroup
	for i := range writers {
		wg.Go(func() {
			_, err := store.Modify(ctx, name, func(k *v1.OwnedAccessKey) error {
				k.Spec.Groups = append(k.Spec.Groups, fmt.Sprintf("g%d", i))
				return nil
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	got, err := store.Get(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Spec.Groups) != writers {
		t.Errorf("groups = %v, want all %d writers' groups", got.Spec.Groups, writers)
	}
}

func TestDeleteObject(t *testing.T) {
	ctx := context.Background()
	name := unique("delete")
	_, created, err := store.CreateObject(ctx, key(name, v1.OwnedAccessKeySpec{User: "u"}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.DeleteObject(ctx, name, "1"); !errors.Is(err, ErrConflict) {
		t.Errorf("delete at a stale resourceVersion: %v, want ErrConflict", err)
	}
	gone, err := store.DeleteObject(ctx, name, created.ResourceVersion)
	if err != nil {
		t.Fatal(err)
	}
	if gone.Name != name || gone.UID != created.UID || rvNum(t, gone.ResourceVersion) <= rvNum(t, created.ResourceVersion) {
		t.Errorf("deleted object = %+v; want the key with the deletion's resourceVersion", gone.ObjectMeta)
	}
}

func rvNum(t *testing.T, rv string) uint64 {
	t.Helper()
	n, err := strconv.ParseUint(rv, 10, 64)
	if err != nil {
		t.Fatalf("resourceVersion %q is not a number", rv)
	}
	return n
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
