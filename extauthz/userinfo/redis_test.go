package userinfo

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/crypto/bcrypt"

	"github.com/keygate-dev/keygate/internal/redisserver"
	"github.com/keygate-dev/keygate/keystore/users"
)

var redisOpts *redis.UniversalOptions

// TestMain runs the package against one Redis, or a Redis Cluster with KEYGATE_TEST_REDIS=cluster.
func TestMain(m *testing.M) {
	redisserver.TestMain(m, "extauthz/userinfo", redisserver.Options{}, func(srv *redisserver.Server) {
		redisOpts = srv.UniversalOptions()
	})
}

func newClient() redis.UniversalClient { return redis.NewUniversalClient(redisOpts) }

// Two replicas follow the real user store: every change to a user reaches both, at once, while
// each had the user cached. The figures are logged, not asserted.
func TestChangesReachEveryReplica(t *testing.T) {
	ctx := context.Background()
	people := users.New(newClient(), users.Options{Cost: bcrypt.MinCost})
	a, b := redisReplica(t), redisReplica(t)
	if err := people.Create(ctx, users.User{Name: "dora", Groups: []string{"dev", "ops"}}, "correct horse battery"); err != nil {
		t.Fatal(err)
	}
	changes := []struct {
		what   string
		change func() error
		shows  func(Info) bool
	}{
		{"group removed", func() error {
			_, err := people.Update(ctx, "dora", func(u *users.User) error { u.Groups = []string{"dev"}; return nil })
			return err
		}, func(i Info) bool { return len(i.Groups) == 1 }},
		{"disabled", func() error {
			_, err := people.Update(ctx, "dora", func(u *users.User) error { u.Disabled = true; return nil })
			return err
		}, func(i Info) bool { return i.Disabled }},
		{"deleted", func() error { return people.Delete(ctx, "dora") }, func(i Info) bool { return !i.Known }},
	}
	for _, c := range changes {
		for _, d := range []*Directory{a, b} {
			lookup(t, d, "dora") // cached before the change
		}
		start := time.Now()
		if err := c.change(); err != nil {
			t.Fatal(err)
		}
		for i, d := range []*Directory{a, b} {
			for !c.shows(lookup(t, d, "dora")) {
				if time.Since(start) > 5*time.Second {
					t.Fatalf("%s: replica %d still answers the old user after 5s", c.what, i)
				}
				time.Sleep(100 * time.Microsecond)
			}
			t.Logf("%s: replica %d saw it %s after the write began", c.what, i, time.Since(start))
		}
	}
}

func redisReplica(t *testing.T) *Directory {
	t.Helper()
	rdb := newClient()
	d := New(users.New(rdb, users.Options{}), Options{TTL: time.Hour}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = d.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); rdb.Close(); <-done })
	waitLive(t, d, true)
	return d
}
