package teams

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/keygate-dev/keygate/internal/redisserver"
)

var teams *Store

func TestMain(m *testing.M) {
	redisserver.TestMain(m, "keystore/teams", redisserver.Options{}, func(srv *redisserver.Server) {
		teams = New(redis.NewUniversalClient(srv.UniversalOptions())) // or a Cluster: KEYGATE_TEST_REDIS=cluster
	})
}

func unique(prefix string) string { return fmt.Sprintf("%s-%d", prefix, time.Now().UnixNano()) }

// Writes check versions (one create of a name wins, a stale update or delete is a conflict),
// and a watch from a list's version sees every later change in order.
func TestWritesAndWatch(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, rv, err := teams.ListWithVersion(ctx)
	if err != nil {
		t.Fatal(err)
	}
	events := make(chan Event, 10)
	go teams.Watch(ctx, rv, func(ev Event) error { events <- ev; return nil })

	name := unique("platform")
	created, err := teams.Create(ctx, Team{Name: name, DisplayName: "Platform"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := teams.Create(ctx, Team{Name: name}); !errors.Is(err, ErrAlreadyExists) {
		t.Errorf("second create: %v, want ErrAlreadyExists", err)
	}
	updated, err := teams.Update(ctx, Team{Name: name, Groups: []string{"ops"}}, created.Version)
	if err != nil || updated.UID != created.UID {
		t.Fatalf("update: %+v, %v; want the same UID", updated, err)
	}
	if _, err := teams.Update(ctx, Team{Name: name}, created.Version); !errors.Is(err, ErrConflict) {
		t.Errorf("stale update: %v, want ErrConflict", err)
	}
	if _, err := teams.Delete(ctx, name, created.Version); !errors.Is(err, ErrConflict) {
		t.Errorf("stale delete: %v, want ErrConflict", err)
	}
	gone, err := teams.Delete(ctx, name, updated.Version)
	if err != nil || gone.Groups[0] != "ops" {
		t.Fatalf("delete: %+v, %v", gone, err)
	}
	for _, want := range []string{EventAdded, EventModified, EventDeleted} {
		if ev := <-events; ev.Type != want || ev.Name != name {
			t.Errorf("event %+v, want %s of %s", ev, want, name)
		}
	}
}
