package config

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"sync/atomic"
	"time"
)

// DefaultPollInterval is how often a Watcher reads its file. Polling, rather than inotify,
// follows a Kubernetes Secret or ConfigMap volume, whose files change by a symlink swap.
const DefaultPollInterval = 2 * time.Second

// Watcher holds the current configuration and reloads it when its file changes. A changed
// file that does not load leaves the last good configuration in force.
type Watcher struct {
	path     string
	interval time.Duration
	log      *slog.Logger
	cur      atomic.Pointer[Config]
	last     []byte
	// OnReload, when set before Run, is called after every attempt to load a changed file,
	// with its error (nil: loaded and now in force). For metrics.
	OnReload func(err error)
	subs     []func(*Config)
}

// NewWatcher loads path (which must load) and returns a Watcher of it.
func NewWatcher(path string, interval time.Duration, log *slog.Logger) (*Watcher, error) {
	if interval <= 0 {
		interval = DefaultPollInterval
	}
	w := &Watcher{path: path, interval: interval, log: log}
	var data []byte
	if path != "" {
		var err error
		if data, err = os.ReadFile(path); err != nil {
			return nil, err
		}
	}
	c, err := Load(path)
	if err != nil {
		return nil, err
	}
	w.cur.Store(c)
	w.last = data
	return w, nil
}

// Current is the configuration in force. Callers must not modify it.
func (w *Watcher) Current() *Config { return w.cur.Load() }

// Subscribe calls f with every configuration that comes into force after Run starts. Call it
// before Run.
func (w *Watcher) Subscribe(f func(*Config)) { w.subs = append(w.subs, f) }

// Run polls the file until ctx ends.
func (w *Watcher) Run(ctx context.Context) {
	if w.path == "" {
		return
	}
	t := time.NewTicker(w.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			w.poll()
		}
	}
}

func (w *Watcher) poll() {
	data, err := os.ReadFile(w.path)
	if err == nil && bytes.Equal(data, w.last) {
		return
	}
	var c *Config
	if err == nil {
		w.last = data
		c, err = Parse(data)
	}
	if w.OnReload != nil {
		w.OnReload(err)
	}
	if err != nil {
		w.log.Error("configuration not reloaded; the last good one stays in force", "file", w.path, "error", err)
		return
	}
	w.cur.Store(c)
	w.log.Info("configuration reloaded", "file", w.path, "oidcClients", len(c.OIDC.Clients), "connectors", len(c.Auth.Connectors))
	for _, f := range w.subs {
		f(c)
	}
}
