package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/keygate-dev/keygate/internal/redisack"
	"github.com/keygate-dev/keygate/internal/redisserver"
	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
	"github.com/keygate-dev/keygate/keystore/store"
	"github.com/keygate-dev/keygate/keystore/teams"
	"github.com/keygate-dev/keygate/keystore/users"
)

// replicated starts a real master and its replica and returns clients of both.
func replicated(t *testing.T) (master, replica *redis.Client, replicaSrv *redisserver.Server) {
	t.Helper()
	ctx := context.Background()
	m, err := redisserver.Start(ctx, redisserver.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatalf("this test needs a real redis-server (`make tools` installs one): %v", err)
	}
	t.Cleanup(m.Stop)
	r, err := redisserver.Start(ctx, redisserver.Options{Dir: t.TempDir(), ReplicaOf: m.Addr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Stop)
	master, replica = redis.NewClient(&redis.Options{Addr: m.Addr}), redis.NewClient(&redis.Options{Addr: r.Addr})
	t.Cleanup(func() { master.Close(); replica.Close() })
	return master, replica, r
}

// With --redis-min-replica-acks 1, a write returns only once the replica has it: each change
// is read from the replica right after it returns, with no wait of the test's own.
func TestWritesWaitForTheReplica(t *testing.T) {
	ctx := context.Background()
	master, replica, _ := replicated(t)
	acks := redisack.Acks{Replicas: 1, Timeout: time.Minute} // a bound on a hung run
	keys, onReplica := store.NewWithOptions(master, store.Options{Acks: acks}), store.New(replica)

	obj := &v1.OwnedAccessKey{ObjectMeta: metav1.ObjectMeta{Name: "waited"}, Spec: v1.OwnedAccessKeySpec{User: "alice"}}
	if _, err := keys.Create(ctx, obj); err != nil {
		t.Fatal(err)
	}
	if _, err := onReplica.Get(ctx, "waited"); err != nil {
		t.Fatalf("the replica, right after the create returned: %v", err)
	}
	if err := keys.SetDisabled(ctx, "waited", true); err != nil {
		t.Fatal(err)
	}
	if k, err := onReplica.Get(ctx, "waited"); err != nil || !k.Spec.Disabled {
		t.Fatalf("the replica, right after the disable returned: %+v, %v; want it disabled", k, err)
	}
	if err := keys.Delete(ctx, "waited"); err != nil {
		t.Fatal(err)
	}
	if _, err := onReplica.Get(ctx, "waited"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the replica, right after the delete returned: %v; want not found", err)
	}

	people := users.New(master, users.Options{Cost: 4, Acks: acks})
	if err := people.Create(ctx, users.User{Name: "bob"}, "a-long-password"); err != nil {
		t.Fatal(err)
	}
	if _, err := users.New(replica, users.Options{}).Get(ctx, "bob"); err != nil {
		t.Fatalf("the replica, right after the user create returned: %v", err)
	}
	if err := people.Delete(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := users.New(replica, users.Options{}).Get(ctx, "bob"); !errors.Is(err, users.ErrNotFound) {
		t.Fatalf("the replica, right after the user delete returned: %v; want not found", err)
	}

	if _, err := teams.NewWithAcks(master, acks).Create(ctx, teams.Team{Name: "ops"}); err != nil {
		t.Fatal(err)
	}
	if _, err := teams.New(replica).Get(ctx, "ops"); err != nil {
		t.Fatalf("the replica, right after the team create returned: %v", err)
	}
}

// With the replica down, a delete fails with the error that says the master has it but no
// replica does, once the timeout has passed; the delete did happen on the master.
func TestWriteWithoutTheReplicaFails(t *testing.T) {
	ctx := context.Background()
	master, _, replicaSrv := replicated(t)
	// The create waits for the replica's first sync (a minute bounds a hung run); the delete
	// with the replica down waits 200ms.
	synced := store.NewWithOptions(master, store.Options{Acks: redisack.Acks{Replicas: 1, Timeout: time.Minute}})
	keys := store.NewWithOptions(master, store.Options{Acks: redisack.Acks{Replicas: 1, Timeout: 200 * time.Millisecond}})
	if _, err := synced.Create(ctx, &v1.OwnedAccessKey{ObjectMeta: metav1.ObjectMeta{Name: "lonely"}, Spec: v1.OwnedAccessKeySpec{User: "alice"}}); err != nil {
		t.Fatal(err)
	}
	replicaSrv.Stop()

	err := keys.Delete(ctx, "lonely")
	var nr *redisack.NotReplicatedError
	if !errors.As(err, &nr) || nr.Want != 1 || nr.Got != 0 || !errors.Is(err, redisack.ErrNotReplicated) {
		t.Fatalf("delete with the replica down: %v; want a NotReplicatedError, 0 of 1", err)
	}
	t.Logf("the error: %v", err)
	if _, err := store.New(master).Get(ctx, "lonely"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the master after the failed delete: %v; want the key gone (the error says the master has the write)", err)
	}
}

// With Redis Cluster, a write waits for the replica of the master of its slot: each change is
// read from that replica right after it returns. The users' writes touch two slots (the user's
// record and the change stream), which may live on different masters: each is waited for on
// its own.
func TestClusterWritesWaitForTheSlotsReplica(t *testing.T) {
	ctx := context.Background()
	c, err := redisserver.StartCluster(ctx, redisserver.ClusterOptions{Dir: t.TempDir(), Masters: 3, ReplicasPerMaster: 1})
	if err != nil {
		t.Fatalf("this test needs a real redis-server and redis-cli (`make tools` installs them): %v", err)
	}
	t.Cleanup(c.Stop)
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs()})
	t.Cleanup(func() { cc.Close() })
	acks := redisack.Acks{Replicas: 1, Timeout: time.Minute} // a bound on a hung run
	if err := acks.Check(cc); err != nil {
		t.Fatal(err)
	}
	onReplica := func(key string) *redis.Client {
		t.Helper()
		_, replicas, err := c.MasterOf(ctx, key)
		if err != nil || len(replicas) != 1 {
			t.Fatalf("the replica of %s: %v, %v", key, replicas, err)
		}
		r := redis.NewClient(&redis.Options{Addr: replicas[0].Addr, OnConnect: func(ctx context.Context, cn *redis.Conn) error {
			return cn.ReadOnly(ctx).Err()
		}})
		t.Cleanup(func() { r.Close() })
		return r
	}

	keys, replica := store.NewWithOptions(cc, store.Options{Acks: acks}), store.New(onReplica("{accesskeys}"))
	obj := &v1.OwnedAccessKey{ObjectMeta: metav1.ObjectMeta{Name: "waited"}, Spec: v1.OwnedAccessKeySpec{User: "alice"}}
	if _, err := keys.Create(ctx, obj); err != nil {
		t.Fatal(err)
	}
	if _, err := replica.Get(ctx, "waited"); err != nil {
		t.Fatalf("the slot's replica, right after the create returned: %v", err)
	}
	if err := keys.SetDisabled(ctx, "waited", true); err != nil {
		t.Fatal(err)
	}
	if k, err := replica.Get(ctx, "waited"); err != nil || !k.Spec.Disabled {
		t.Fatalf("the slot's replica, right after the disable returned: %+v, %v; want it disabled", k, err)
	}
	if err := keys.Delete(ctx, "waited"); err != nil {
		t.Fatal(err)
	}
	if _, err := replica.Get(ctx, "waited"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the slot's replica, right after the delete returned: %v; want not found", err)
	}

	people := users.New(cc, users.Options{Cost: 4, Acks: acks})
	for _, name := range []string{"bob", "carol", "dave"} { // users' slots differ
		if err := people.Create(ctx, users.User{Name: name}, "a-long-password"); err != nil {
			t.Fatal(err)
		}
		if _, err := users.New(onReplica("keygate:user:{"+name+"}"), users.Options{}).Get(ctx, name); err != nil {
			t.Fatalf("the replica of %s's slot, right after the create returned: %v", name, err)
		}
		if _, err := people.Update(ctx, name, func(u *users.User) error { u.Groups = []string{"ops"}; return nil }); err != nil {
			t.Fatalf("update %s: %v", name, err)
		}
		if err := people.Delete(ctx, name); err != nil {
			t.Fatal(err)
		}
		if _, err := users.New(onReplica("keygate:user:{"+name+"}"), users.Options{}).Get(ctx, name); !errors.Is(err, users.ErrNotFound) {
			t.Fatalf("the replica of %s's slot, right after the delete returned: %v; want not found", name, err)
		}
	}
	if v, err := users.New(onReplica("keygate:{users}:rv"), users.Options{}).CurrentVersion(ctx); err != nil || v != "9" {
		t.Errorf("the change stream's version on its slot's replica: %q, %v; want 9 (3 users, 3 changes each)", v, err)
	}

	if _, err := teams.NewWithAcks(cc, acks).Create(ctx, teams.Team{Name: "ops"}); err != nil {
		t.Fatal(err)
	}
	if _, err := teams.New(onReplica("keygate:{teams}:records")).Get(ctx, "ops"); err != nil {
		t.Fatalf("the replica of the teams' slot, right after the team create returned: %v", err)
	}
}
