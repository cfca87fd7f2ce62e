package registry

import (
	"context"
	"strconv"

	metainternalversion "k8s.io/apimachinery/pkg/apis/meta/internalversion"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"

	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
	"github.com/keygate-dev/keygate/keystore/teams"
)

// Watch streams changes to the teams c may read, from the team store's change stream. Each
// event carries the team as it is now, with its members as the users' records have them; a
// membership change made with `keystore set-user --teams` writes no team, so it shows in the
// next get or list, not as an event here.
func (s *Teams) Watch(ctx context.Context, options *metainternalversion.ListOptions) (watch.Interface, error) {
	c, err := s.id.caller(ctx)
	if err != nil {
		return nil, err
	}
	match, err := metaMatcher(options)
	if err != nil {
		return nil, err
	}
	return startWatch(ctx, options, func(ctx context.Context) ([]runtime.Object, string, error) {
		return s.visibleTeams(ctx, c, options)
	}, func(ctx context.Context, rv string, send func(watch.Event) bool) error {
		return s.store.Watch(ctx, rv, func(ev teams.Event) error {
			out, ok := s.teamEvent(ctx, c, ev)
			if !ok || !match(&out.Object.(*v1.Team).ObjectMeta) {
				return nil
			}
			if !send(out) {
				return ctx.Err()
			}
			return nil
		})
	}, func() runtime.Object { return &v1.Team{} })
}

// teamEvent is the watch event of a change, if c may read the team: the team as stored now, or
// only its name when deleted. A team gone by the time it is read is left out: its deletion's
// event follows.
func (s *Teams) teamEvent(ctx context.Context, c Caller, ev teams.Event) (watch.Event, bool) {
	if !c.MayReadTeam(ev.Name) {
		return watch.Event{}, false
	}
	if ev.Type == teams.EventDeleted {
		gone := &v1.Team{ObjectMeta: metav1.ObjectMeta{Name: ev.Name, ResourceVersion: strconv.FormatUint(ev.Version, 10)}}
		return watch.Event{Type: watch.Deleted, Object: gone}, true
	}
	t, err := s.get(ctx, c, ev.Name)
	if err != nil {
		return watch.Event{}, false
	}
	typ := watch.Modified
	if ev.Type == teams.EventAdded {
		typ = watch.Added
	}
	return watch.Event{Type: typ, Object: t}, true
}
