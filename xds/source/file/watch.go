package file

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/keygate-dev/keygate/xds/model"
)

// DefaultDebounce is how long a Watcher waits after the last change before it reloads: long
// enough to see an editor's write-and-rename as one change, short enough to feel immediate.
const DefaultDebounce = 200 * time.Millisecond

// Watcher reloads a targets file whenever it, or a PEM file it names, changes. It watches the
// directories rather than the files, because editors and `kubectl`-mounted ConfigMaps replace a
// file (write a new one, rename it over the old) and a watch on the old file would go quiet.
type Watcher struct {
	path     string
	log      *slog.Logger
	debounce time.Duration
	fsw      *fsnotify.Watcher

	mu    sync.Mutex
	dirs  map[string]bool // directories under watch
	files map[string]bool // files whose change triggers a reload
}

// Watch loads the targets file at path and starts watching it. A file that does not load is an
// error: nothing is watched. The watch starts before the first load, so no change is missed
// between the two. Call Run to receive later versions, and stop it to release the watch.
func Watch(path string, log *slog.Logger, debounce time.Duration) (*Watcher, model.Model, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, model.Model{}, fmt.Errorf("watch targets %s: %w", path, err)
	}
	fsw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, model.Model{}, fmt.Errorf("watch targets %s: %w", path, err)
	}
	if debounce <= 0 {
		debounce = DefaultDebounce
	}
	w := &Watcher{path: abs, log: log, debounce: debounce, fsw: fsw, dirs: map[string]bool{}, files: map[string]bool{}}
	if err := w.watch([]string{abs}); err != nil {
		fsw.Close()
		return nil, model.Model{}, err
	}
	m, files, err := load(abs)
	if err != nil {
		fsw.Close()
		return nil, model.Model{}, err
	}
	if err := w.watch(files); err != nil {
		fsw.Close()
		return nil, model.Model{}, err
	}
	return w, m, nil
}

// watch adds files to the set that triggers a reload, and their directories to the watch.
func (w *Watcher) watch(files []string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, f := range files {
		w.files[f] = true
		dir := filepath.Dir(f)
		if w.dirs[dir] {
			continue
		}
		if err := w.fsw.Add(dir); err != nil {
			return fmt.Errorf("watch directory %s: %w", dir, err)
		}
		w.dirs[dir] = true
	}
	return nil
}

// Close releases the watch of a Watcher that will not Run. Run releases it itself.
func (w *Watcher) Close() error { return w.fsw.Close() }

// relevant reports whether an event may change the model: it names a watched file, or it is a
// ConfigMap volume's atomic swap of its `..data` link (names starting with "..").
func (w *Watcher) relevant(ev fsnotify.Event) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.files[filepath.Clean(ev.Name)] || strings.HasPrefix(filepath.Base(ev.Name), "..")
}

// Run waits for changes until ctx ends, then releases the watch. After each change (debounced)
// it loads the file again and passes a good model to update. A file that does not load is
// logged, reported to invalid, and changes nothing: the last good model stays in force. The
// same holds when update refuses a model.
func (w *Watcher) Run(ctx context.Context, update func(context.Context, model.Model) error, invalid func(error)) error {
	defer w.fsw.Close()
	timer := time.NewTimer(0)
	if !timer.Stop() {
		<-timer.C
	}
	for {
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case ev, ok := <-w.fsw.Events:
			if !ok {
				return fmt.Errorf("watch targets %s: the file watcher stopped", w.path)
			}
			if w.relevant(ev) {
				w.log.Debug("targets file changed", "event", ev.String())
				timer.Reset(w.debounce)
			}
		case err, ok := <-w.fsw.Errors:
			if !ok {
				return fmt.Errorf("watch targets %s: the file watcher stopped", w.path)
			}
			// An overflowed event queue loses changes: reload to be sure.
			w.log.Warn("watching the targets file", "path", w.path, "error", err)
			timer.Reset(w.debounce)
		case <-timer.C:
			w.reload(ctx, update, invalid)
		}
	}
}

func (w *Watcher) reload(ctx context.Context, update func(context.Context, model.Model) error, invalid func(error)) {
	m, files, err := load(w.path)
	if err != nil {
		// Watch the files named so far, so that fixing a missing PEM file triggers a reload.
		if werr := w.watch(files); werr != nil {
			w.log.Warn("watching the targets file", "path", w.path, "error", werr)
		}
		w.log.Error("targets file refused; the last good targets stay in force", "path", w.path, "error", err)
		invalid(err)
		return
	}
	if err := w.watch(files); err != nil {
		w.log.Warn("watching the targets file", "path", w.path, "error", err)
	}
	if err := update(ctx, m); err != nil {
		w.log.Error("targets refused; the last good targets stay in force", "path", w.path, "error", err)
	}
}
