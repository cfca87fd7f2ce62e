// Package informer holds what the Kubernetes source's informers and those of virtual-cluster
// discovery share: lists and watches that report an API server's health (Health), and a
// transform that drops what the sources never read from cached objects (Slim).
package informer

import (
	"context"
	"log/slog"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
)

// Messages are what Health logs about one API server.
type Messages struct {
	// Lost is logged at WARN when a list or watch fails after the last one succeeded.
	Lost string
	// Hint, if set, returns what to add to Lost for err (e.g. the permission to grant).
	Hint func(err error) string
	// Retrying is logged at DEBUG for each further failure.
	Retrying string
	// Found is logged at INFO when a list or watch succeeds again.
	Found string
}

// Health follows the lists and watches of one API server's informers. While the server cannot
// be reached, the informers retry with backoff (quietly: client-go logs refused connections
// only at debug level) and their caches, and so the targets, stay as they were; Health counts
// each failure and logs when the server is lost and when it is back, not every retry.
type Health struct {
	log    *slog.Logger
	msgs   Messages
	failed func(resource string)
	// failing is, by resource, whether the last list or watch failed.
	failing map[string]*atomic.Bool
}

// NewHealth follows the lists and watches of resources; failed counts a failure (a metric).
func NewHealth(log *slog.Logger, msgs Messages, failed func(resource string), resources ...string) *Health {
	h := &Health{log: log, msgs: msgs, failed: failed, failing: make(map[string]*atomic.Bool, len(resources))}
	for _, r := range resources {
		h.failing[r] = &atomic.Bool{}
	}
	return h
}

// ListWatch wraps the list and watch calls of resource (one that NewHealth was given) to
// report their outcome.
func (h *Health) ListWatch(resource string, list cache.ListWithContextFunc, watchFn cache.WatchFuncWithContext) *cache.ListWatch {
	return &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			obj, err := list(ctx, o)
			h.report(ctx, resource, err)
			return obj, err
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			w, err := watchFn(ctx, o)
			h.report(ctx, resource, err)
			return w, err
		},
	}
}

func (h *Health) report(ctx context.Context, resource string, err error) {
	if ctx.Err() != nil {
		return // stopping
	}
	failing := h.failing[resource]
	if err == nil {
		if failing.Swap(false) {
			h.log.Info(h.msgs.Found, "resource", resource)
		}
		return
	}
	h.failed(resource)
	if !failing.Swap(true) {
		msg := h.msgs.Lost
		if h.msgs.Hint != nil {
			msg += h.msgs.Hint(err)
		}
		h.log.Warn(msg, "resource", resource, "error", err)
		return
	}
	h.log.Debug(h.msgs.Retrying, "resource", resource, "error", err)
}

// Slim drops what the sources never read from cached objects: managed fields, and kubectl's
// last-applied annotation, which would keep a second copy of every applied Secret's data.
func Slim(obj any) (any, error) {
	if m, err := meta.Accessor(obj); err == nil {
		m.SetManagedFields(nil)
		if a := m.GetAnnotations(); a[corev1.LastAppliedConfigAnnotation] != "" {
			delete(a, corev1.LastAppliedConfigAnnotation)
			m.SetAnnotations(a)
		}
	}
	return obj, nil
}

// OnChange calls f with the object of every add, update and delete (or its tombstone).
func OnChange(f func(obj any)) cache.ResourceEventHandlerFuncs {
	return cache.ResourceEventHandlerFuncs{AddFunc: f, UpdateFunc: func(_, obj any) { f(obj) }, DeleteFunc: f}
}
