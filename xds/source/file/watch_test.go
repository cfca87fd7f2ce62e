package file

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keygate-dev/keygate/internal/logbuf"

	"github.com/keygate-dev/keygate/internal/edgepath"
	"github.com/keygate-dev/keygate/xds/model"
)

// watched runs a Watcher on path and collects what it reports.
type watched struct {
	models  chan model.Model
	invalid chan error
	log     *logbuf.Buffer
}

func startWatch(t *testing.T, path string) (*watched, model.Model) {
	t.Helper()
	w := &watched{models: make(chan model.Model, 100), invalid: make(chan error, 100), log: &logbuf.Buffer{}}
	log := slog.New(slog.NewTextHandler(w.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	watcher, first, err := Watch(path, log, 20*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- watcher.Run(ctx,
			func(_ context.Context, m model.Model) error { w.models <- m; return nil },
			func(err error) { w.invalid <- err })
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return w, first
}

// waitModel waits until the watcher reports a model with exactly the clusters named.
func (w *watched) waitModel(t *testing.T, clusters ...string) {
	t.Helper()
	want := strings.Join(clusters, ",")
	deadline := time.After(10 * time.Second)
	var last string
	for {
		select {
		case m := <-w.models:
			if last = clusterNames(m); last == want {
				return
			}
		case <-deadline:
			t.Fatalf("no model with clusters [%s] within 10s; last seen [%s]\nlog:\n%s", want, last, w.log)
		}
	}
}

func clusterNames(m model.Model) string {
	var names []string
	for _, t := range m.Targets {
		if t.Ref.Kind == edgepath.KindCluster {
			names = append(names, t.Ref.Cluster)
		}
	}
	return strings.Join(names, ",")
}

func targetsYAML(clusters ...string) []byte {
	var b strings.Builder
	b.WriteString("clusters:\n")
	for i, c := range clusters {
		fmt.Fprintf(&b, "  - {name: %s, url: \"https://127.0.0.1:%d\", caFile: ca.crt}\n", c, 6443+i)
	}
	return []byte(b.String())
}

func atomicWrite(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func TestWatchReloads(t *testing.T) {
	tests := map[string]func(t *testing.T, path string, data []byte){
		"atomic rename": atomicWrite,
		"write in place": func(t *testing.T, path string, data []byte) {
			if err := os.WriteFile(path, data, 0o644); err != nil {
				t.Fatal(err)
			}
		},
		"editor keeps a backup and writes a new file": func(t *testing.T, path string, data []byte) {
			if err := os.Rename(path, path+"~"); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, data, 0o644); err != nil {
				t.Fatal(err)
			}
		},
		"remove and create": func(t *testing.T, path string, data []byte) {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, data, 0o644); err != nil {
				t.Fatal(err)
			}
		},
	}
	for name, write := range tests {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t)
			path := f.write(t, "targets.yaml", targetsYAML("demo"))
			w, first := startWatch(t, path)
			if got := clusterNames(first); got != "demo" {
				t.Fatalf("first model has clusters [%s], want [demo]", got)
			}
			write(t, path, targetsYAML("demo", "staging"))
			w.waitModel(t, "demo", "staging")
			write(t, path, targetsYAML("staging"))
			w.waitModel(t, "staging")
		})
	}
}

func TestWatchKeepsLastGoodOnBadFile(t *testing.T) {
	f := newFixture(t)
	path := f.write(t, "targets.yaml", targetsYAML("demo"))
	w, _ := startWatch(t, path)

	atomicWrite(t, path, []byte("clusters:\n  - {name: demo, url: \"https://127.0.0.1:6443\", caFile: missing-ca.crt}\n"))
	select {
	case err := <-w.invalid:
		if !strings.Contains(err.Error(), "clusters[0] (demo): caFile: open ") {
			t.Errorf("invalid reported %q, want the caFile error", err)
		}
	case m := <-w.models:
		t.Fatalf("a bad file produced a model: %+v", m)
	case <-time.After(10 * time.Second):
		t.Fatal("a bad file was not reported within 10s")
	}
	if log := w.log.String(); !strings.Contains(log, "targets file refused; the last good targets stay in force") || !strings.Contains(log, "missing-ca.crt: no such file or directory") {
		t.Errorf("log does not explain the refusal:\n%s", log)
	}

	// Creating the missing file fixes the targets file without touching it.
	f.write(t, "missing-ca.crt", f.ca)
	w.waitModel(t, "demo")
}

func TestWatchReloadsOnPEMChange(t *testing.T) {
	f := newFixture(t)
	f.write(t, "pki/ca.crt", f.ca)
	path := f.write(t, "targets.yaml", []byte("clusters:\n  - {name: demo, url: \"https://127.0.0.1:6443\", caFile: pki/ca.crt}\n"))
	w, _ := startWatch(t, path)

	// A rotated CA (here: a bundle of two) reaches the model without an edit of the targets file.
	bundle := append(append([]byte{}, f.ca...), f.cert...)
	atomicWrite(t, filepath.Join(f.dir, "pki", "ca.crt"), bundle)
	deadline := time.After(10 * time.Second)
	for {
		select {
		case m := <-w.models:
			if len(m.Targets) == 1 && bytes.Equal(m.Targets[0].Upstream.CA, bundle) {
				return
			}
		case <-deadline:
			t.Fatalf("the new CA did not reach the model within 10s\nlog:\n%s", w.log)
		}
	}
}

// A Kubernetes ConfigMap volume swaps a `..data` symlink; the file itself is a link through it.
func TestWatchConfigMapSwap(t *testing.T) {
	f := newFixture(t)
	mount := filepath.Join(f.dir, "mount")
	f.write(t, "mount/..v1/targets.yaml", targetsYAML("demo"))
	f.write(t, "mount/..v1/ca.crt", f.ca)
	if err := os.Symlink("..v1", filepath.Join(mount, "..data")); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"targets.yaml", "ca.crt"} {
		if err := os.Symlink(filepath.Join("..data", name), filepath.Join(mount, name)); err != nil {
			t.Fatal(err)
		}
	}
	w, _ := startWatch(t, filepath.Join(mount, "targets.yaml"))

	f.write(t, "mount/..v2/targets.yaml", targetsYAML("demo", "staging"))
	f.write(t, "mount/..v2/ca.crt", f.ca)
	if err := os.Symlink("..v2", filepath.Join(mount, "..data_tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(mount, "..data_tmp"), filepath.Join(mount, "..data")); err != nil {
		t.Fatal(err)
	}
	w.waitModel(t, "demo", "staging")
}

func TestWatchBadFileAtStart(t *testing.T) {
	f := newFixture(t)
	path := f.write(t, "targets.yaml", []byte("clusters: [{name: demo}]\n"))
	if _, _, err := Watch(path, slog.New(slog.DiscardHandler), 0); err == nil || !strings.Contains(err.Error(), "clusters[0] (demo): url: is required") {
		t.Fatalf("Watch of a bad file = %v, want the load error", err)
	}
}
