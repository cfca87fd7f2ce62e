package registry

import (
	"context"
	"errors"
	"strconv"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metainternalversion "k8s.io/apimachinery/pkg/apis/meta/internalversion"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"

	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
	"github.com/keygate-dev/keygate/keystore/users"
)

// Watch streams changes to the users c may read, from the user store's change stream
// (keystore/changelog). An event names a user; the user is read again, so every event carries
// the user as it is now. The watch's resourceVersion is the stream's version (what a list
// returns); an object's resourceVersion is its record's revision.
func (s *Users) Watch(ctx context.Context, options *metainternalversion.ListOptions) (watch.Interface, error) {
	c, err := s.id.caller(ctx)
	if err != nil {
		return nil, err
	}
	match, err := metaMatcher(options)
	if err != nil {
		return nil, err
	}
	visible := func(m *metav1.ObjectMeta) bool { return c.MayReadUser(m.Name) && match(m) }
	return startWatch(ctx, options, func(ctx context.Context) ([]runtime.Object, string, error) {
		all, rv, err := s.store.ListWithVersion(ctx)
		objs := make([]runtime.Object, 0, len(all))
		for _, u := range all {
			if o := userObject(u); visible(&o.ObjectMeta) {
				objs = append(objs, o)
			}
		}
		return objs, rv, err
	}, func(ctx context.Context, rv string, send func(watch.Event) bool) error {
		return s.store.Watch(ctx, rv, func(ev users.Event) error {
			out, ok := s.userEvent(ctx, ev)
			if !ok || !visible(&out.Object.(*v1.User).ObjectMeta) {
				return nil
			}
			if !send(out) {
				return ctx.Err()
			}
			return nil
		})
	}, func() runtime.Object { return &v1.User{} })
}

// userEvent is the watch event of a change: the user as stored now, or only their name when
// deleted. A user gone by the time it is read is left out: its deletion's event follows.
func (s *Users) userEvent(ctx context.Context, ev users.Event) (watch.Event, bool) {
	if ev.Type == users.EventDeleted {
		gone := &v1.User{ObjectMeta: metav1.ObjectMeta{Name: ev.Name, ResourceVersion: strconv.FormatUint(ev.Version, 10)}}
		return watch.Event{Type: watch.Deleted, Object: gone}, true
	}
	u, err := s.store.Get(ctx, ev.Name)
	if err != nil {
		return watch.Event{}, false
	}
	typ := watch.Modified
	if ev.Type == users.EventAdded {
		typ = watch.Added
	}
	return watch.Event{Type: typ, Object: userObject(u)}, true
}

// startWatch runs a watch the way kube-apiserver does: without a resourceVersion (or "0"), or
// with sendInitialEvents, it starts with an ADDED event per current object (from list), the
// latter ending with the initial-events-end bookmark; then follow sends every later change. A
// stale or unknown version reaches the client as an ERROR event with its Status.
func startWatch(ctx context.Context, options *metainternalversion.ListOptions,
	list func(context.Context) ([]runtime.Object, string, error),
	follow func(ctx context.Context, rv string, send func(watch.Event) bool) error,
	newObj func() runtime.Object) (watch.Interface, error) {
	rv, initial := "", false
	if options != nil {
		rv = options.ResourceVersion
		initial = options.SendInitialEvents != nil && *options.SendInitialEvents
	}
	var current []runtime.Object
	if rv == "" || rv == "0" || initial {
		var err error
		if current, rv, err = list(ctx); err != nil {
			return nil, storeError(err)
		}
	}
	wctx, cancel := context.WithCancel(ctx)
	s := &keyStream{ctx: wctx, ch: make(chan watch.Event, 100)}
	w := watch.NewProxyWatcher(s.ch)
	go func() {
		defer close(s.ch)
		defer cancel()
		go func() {
			select {
			case <-w.StopChan():
				cancel()
			case <-wctx.Done():
			}
		}()
		for _, o := range current {
			if !s.send(watch.Event{Type: watch.Added, Object: o}) {
				return
			}
		}
		if initial && !s.send(bookmark(newObj(), rv)) {
			return
		}
		err := follow(wctx, rv, s.send)
		if err != nil && wctx.Err() == nil {
			s.send(watch.Event{Type: watch.Error, Object: &identityWatchStatus(err, rv).ErrStatus})
		}
	}()
	return w, nil
}

// bookmark is the initial-events-end bookmark at rv.
func bookmark(obj runtime.Object, rv string) watch.Event {
	m := obj.(metav1.Object)
	m.SetResourceVersion(rv)
	m.SetAnnotations(map[string]string{metav1.InitialEventsAnnotationKey: "true"})
	return watch.Event{Type: watch.Bookmark, Object: obj}
}

func identityWatchStatus(err error, rv string) *apierrors.StatusError {
	switch {
	case errors.Is(err, users.ErrExpired):
		return apierrors.NewResourceExpired("too old resource version: " + rv)
	case errors.Is(err, users.ErrTooNew):
		return apierrors.NewTimeoutError("Too large resource version: "+rv, 1)
	}
	return storeError(err)
}
