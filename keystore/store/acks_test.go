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

// Redis Cluster cannot wait: a keyless WAIT goes to an arbitrary node. The refusal comes before
// any command, so no cluster is needed to show it.
func TestAcksRefuseCluster(t *testing.T) {
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{"127.0.0.1:1"}})
	defer c.Close()
	acks := redisack.Acks{Replicas: 1, Timeout: time.Second}
	if err := acks.Check(c); !errors.Is(err, redisack.ErrCluster) {
		t.Errorf("Check(cluster) = %v; want ErrCluster", err)
	}
	err := acks.Do(context.Background(), c, func(redis.Cmdable) error { t.Error("the write ran on Cluster"); return nil })
	if !errors.Is(err, redisack.ErrCluster) {
		t.Errorf("Do(cluster) = %v; want ErrCluster", err)
	}
}
