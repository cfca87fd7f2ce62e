package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
)

// `kubectl get ownedaccesskeys -w` started before a change sees it: the keys that exist, then a
// key created and deleted while it runs, and nothing of another user's keys.
func TestKubectlGetWatch(t *testing.T) {
	t.Parallel()
	user := unique("watcher")
	userName, userKey := newKey(t, v1.OwnedAccessKeySpec{User: user})
	cfg := kubeconfig(t, userKey)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, kubectl, "--kubeconfig", cfg, "--context", "loft-management",
		"get", "ownedaccesskeys.management.loft.sh", "-w", "--output-watch-events")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	// next returns the next watch line as (event, name), skipping the header.
	next := func(what string) (string, string) {
		t.Helper()
		for {
			select {
			case line, ok := <-lines:
				if !ok {
					t.Fatalf("the watch ended while waiting for %s; kubectl: %s", what, stderr.String())
				}
				f := strings.Fields(line)
				if len(f) < 2 || f[0] == "EVENT" {
					continue
				}
				return f[0], f[1]
			case <-ctx.Done():
				t.Fatalf("no watch line for %s; kubectl: %s", what, stderr.String())
			}
		}
	}

	// The user's only key is listed first; once it shows, the watch is established.
	if ev, name := next("the existing key"); ev != "ADDED" || name != userName {
		t.Fatalf("first watch line: %s %s, want ADDED %s", ev, name, userName)
	}
	created := createOverHTTP(t, userKey, accessKeyObject(unique("watched"), v1.OwnedAccessKeySpec{User: user}))
	// Another user's key, made between the two: the watch must not show it. Events come in
	// order, so had it been sent it would arrive before the changes that follow.
	otherName, _ := newKey(t, v1.OwnedAccessKeySpec{User: unique("someone-else")})
	if resp, body := send(t, userKey, http.MethodPatch, accessKeysPath+"/"+created.Name, contentMergePatch, `{"spec":{"displayName":"changed"}}`); resp.StatusCode != http.StatusOK {
		t.Fatalf("patch: HTTP %d: %s", resp.StatusCode, body)
	}
	mustKubectl(t, cfg, "delete", "ownedaccesskeys.management.loft.sh", created.Name)

	for _, want := range []string{"ADDED", "MODIFIED", "DELETED"} {
		ev, name := next(want + " " + created.Name)
		if name == otherName {
			t.Fatalf("the watch shows another user's key %s (%s)", otherName, ev)
		}
		if ev != want || name != created.Name {
			t.Fatalf("watch line %s %s, want %s %s", ev, name, want, created.Name)
		}
	}
}

// watchEvent is one event of a watch stream as the API sends it.
type watchEvent struct {
	Type   string          `json:"type"`
	Object json.RawMessage `json:"object"`
}

// watchHTTP opens GET ...?watch=1&resourceVersion=rv through the edge, as curl would, and
// returns a channel of its events (closed when the stream ends) and a stop function.
func watchHTTP(t *testing.T, key, rv string) (<-chan watchEvent, func()) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, platform.EdgeURL+accessKeysPath+"?watch=1&resourceVersion="+rv, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := client.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("watch from %s: %v", rv, err)
	}
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		t.Fatalf("watch from %s: HTTP %d: %s", rv, resp.StatusCode, body)
	}
	events := make(chan watchEvent, 100)
	go func() {
		defer close(events)
		defer resp.Body.Close()
		dec := json.NewDecoder(resp.Body)
		for {
			var ev watchEvent
			if err := dec.Decode(&ev); err != nil {
				return
			}
			events <- ev
		}
	}()
	return events, cancel
}

// nextEvent waits up to 20 s for the next event; ok is false if the stream ended or nothing came.
func nextEvent(events <-chan watchEvent) (ev watchEvent, ok bool) {
	select {
	case ev, ok = <-events:
		return ev, ok
	case <-time.After(20 * time.Second):
		return watchEvent{}, false
	}
}

// listVersion is the resourceVersion of a list of the caller's keys.
func listVersion(t *testing.T, key string) string {
	t.Helper()
	resp, body := get(t, key, accessKeysPath, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("list: HTTP %d: %s", resp.StatusCode, body)
	}
	var list v1.OwnedAccessKeyList
	if err := json.Unmarshal(body, &list); err != nil || list.ResourceVersion == "" {
		t.Fatalf("list without a resourceVersion (%v): %s", err, body)
	}
	return list.ResourceVersion
}

// A watch resumed from a list's resourceVersion gets exactly the changes made after it, in
// order, each with its own increasing resourceVersion and never a plain key; then it goes on
// with live changes. This is how client-go's informers (and so controllers) resume.
func TestWatchResumesFromResourceVersion(t *testing.T) {
	t.Parallel()
	user := unique("resume")
	_, userKey := newKey(t, v1.OwnedAccessKeySpec{User: user})
	a := createOverHTTP(t, userKey, accessKeyObject(unique("resume-a"), v1.OwnedAccessKeySpec{User: user}))
	rv := listVersion(t, userKey)

	// Changes after rv, each acknowledged before the watch starts.
	b := createOverHTTP(t, userKey, accessKeyObject(unique("resume-b"), v1.OwnedAccessKeySpec{User: user}))
	if resp, body := send(t, userKey, http.MethodPatch, accessKeysPath+"/"+a.Name, contentMergePatch, `{"spec":{"description":"after rv"}}`); resp.StatusCode != http.StatusOK {
		t.Fatalf("patch %s: HTTP %d: %s", a.Name, resp.StatusCode, body)
	}
	if resp, body := send(t, userKey, http.MethodDelete, accessKeysPath+"/"+b.Name, "", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("delete %s: HTTP %d: %s", b.Name, resp.StatusCode, body)
	}

	events, stop := watchHTTP(t, userKey, rv)
	defer stop()
	last, _ := strconv.ParseUint(rv, 10, 64)
	expect := func(typ, name string, check func(*v1.OwnedAccessKey) error) {
		t.Helper()
		ev, ok := nextEvent(events)
		if !ok {
			t.Fatalf("no event (want %s %s)", typ, name)
		}
		var k v1.OwnedAccessKey
		if err := json.Unmarshal(ev.Object, &k); err != nil {
			t.Fatalf("%s event object: %v: %s", ev.Type, err, ev.Object)
		}
		if ev.Type != typ || k.Name != name {
			t.Fatalf("event %s %s, want %s %s: %s", ev.Type, k.Name, typ, name, ev.Object)
		}
		if k.Spec.Key != "" || strings.Contains(string(ev.Object), b.Spec.Key) || strings.Contains(string(ev.Object), a.Spec.Key) {
			t.Errorf("%s %s event shows a plain key: %s", typ, name, ev.Object)
		}
		v, err := strconv.ParseUint(k.ResourceVersion, 10, 64)
		if err != nil || v <= last {
			t.Errorf("%s %s has resourceVersion %q, want one after %d", typ, name, k.ResourceVersion, last)
		}
		last = v
		if check != nil {
			if err := check(&k); err != nil {
				t.Errorf("%s %s: %v", typ, name, err)
			}
		}
	}
	expect("ADDED", b.Name, nil)
	expect("MODIFIED", a.Name, func(k *v1.OwnedAccessKey) error {
		if k.Spec.Description != "after rv" {
			return fmt.Errorf("description %q, want the patched one", k.Spec.Description)
		}
		return nil
	})
	expect("DELETED", b.Name, nil)

	// And the stream stays open for what happens next.
	if resp, body := send(t, userKey, http.MethodDelete, accessKeysPath+"/"+a.Name, "", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("delete %s: HTTP %d: %s", a.Name, resp.StatusCode, body)
	}
	expect("DELETED", a.Name, nil)
}

// watchError reads the first event of a watch and requires it to be an ERROR carrying a Status.
func watchError(t *testing.T, key, rv string) metav1.Status {
	t.Helper()
	events, stop := watchHTTP(t, key, rv)
	defer stop()
	ev, ok := nextEvent(events)
	if !ok || ev.Type != "ERROR" {
		t.Fatalf("watch from %s: first event %q (ok %v), want ERROR: %s", rv, ev.Type, ok, ev.Object)
	}
	var s metav1.Status
	if err := json.Unmarshal(ev.Object, &s); err != nil || s.Kind != "Status" || s.Status != metav1.StatusFailure {
		t.Fatalf("watch from %s: ERROR object is not a failure Status (%v): %s", rv, err, ev.Object)
	}
	// A watch that failed ends: the client lists again rather than waiting on a dead stream.
	if ev, ok := nextEvent(events); ok {
		t.Errorf("watch from %s went on after its ERROR: %s %s", rv, ev.Type, ev.Object)
	}
	return s
}

// A watch from a version whose events the store no longer keeps gets 410 Gone (reason
// Expired), so that client-go lists again instead of missing changes; a version the store has
// not reached yet, or one that is no number, gets an error too rather than a silent stream.
//
// The store keeps about 10,000 events; rather than make that many changes, the test trims the
// stream as Redis's MAXLEN trimming would, keeping the newest event, so that a watcher that is
// up to date (extauthz's key cache) reads on undisturbed; one that is behind gets the same 410
// and starts over, as it must. It runs alone (no t.Parallel): no other test changes keys
// meanwhile.
func TestWatchFromTrimmedVersionIsGone(t *testing.T) {
	ctx := context.Background()
	user := unique("expired")
	_, userKey := newKey(t, v1.OwnedAccessKeySpec{User: user})
	a := createOverHTTP(t, userKey, accessKeyObject(unique("old"), v1.OwnedAccessKeySpec{User: user}))
	old := listVersion(t, userKey)
	for _, d := range []string{"one", "two"} {
		if resp, body := send(t, userKey, http.MethodPatch, accessKeysPath+"/"+a.Name, contentMergePatch, `{"spec":{"description":"`+d+`"}}`); resp.StatusCode != http.StatusOK {
			t.Fatalf("patch: HTTP %d: %s", resp.StatusCode, body)
		}
	}

	// Before trimming, the old version still resumes (so the 410 below is due to the trim).
	events, stop := watchHTTP(t, userKey, old)
	if ev, ok := nextEvent(events); !ok || ev.Type != "MODIFIED" {
		t.Fatalf("watch from %s before trimming: %q (ok %v), want MODIFIED: %s", old, ev.Type, ok, ev.Object)
	}
	stop()

	rdb := redisClient(t)
	defer rdb.Close()
	// The stream and counter of keystore/README.md's Redis layout.
	const stream, counter = "keygate:{accesskeys}:events", "keygate:{accesskeys}:rv"
	current, err := rdb.Get(ctx, counter).Result()
	if err != nil {
		t.Fatal(err)
	}
	if n, err := rdb.XTrimMinID(ctx, stream, current+"-0").Result(); err != nil || n == 0 {
		t.Fatalf("trim the event stream below %s: %d trimmed, %v", current, n, err)
	}

	s := watchError(t, userKey, old)
	if s.Code != http.StatusGone || s.Reason != metav1.StatusReasonExpired || !strings.Contains(s.Message, old) {
		t.Errorf("watch from trimmed version %s: %+v, want 410 Expired naming %s", old, s, old)
	}
	// The newest event is kept: a watch from just before it gets it (the second patch).
	cur, _ := strconv.ParseUint(current, 10, 64)
	events, stop = watchHTTP(t, userKey, strconv.FormatUint(cur-1, 10))
	defer stop()
	if ev, ok := nextEvent(events); !ok || ev.Type != "MODIFIED" || !strings.Contains(string(ev.Object), `"description":"two"`) {
		t.Errorf("watch from %d (its next event %s is kept): %q (ok %v), want MODIFIED with description two: %s", cur-1, current, ev.Type, ok, ev.Object)
	}

	tooNew := strconv.FormatUint(cur+1_000_000, 10)
	if s := watchError(t, userKey, tooNew); s.Code != http.StatusGatewayTimeout || !strings.Contains(s.Message, "Too large resource version") {
		t.Errorf("watch from future version %s: %+v, want 504 Too large resource version", tooNew, s)
	}
	if s := watchError(t, userKey, "not-a-number"); s.Code != http.StatusBadRequest {
		t.Errorf("watch from resourceVersion not-a-number: %+v, want 400", s)
	}

	// kubectl, which lists and then watches from the list's version, is unaffected.
	if _, errOut, err := kubectlIn(t, kubeconfig(t, userKey), nil, "get", "ownedaccesskeys", a.Name); err != nil {
		t.Errorf("kubectl get after the trim: %v %s", err, errOut)
	}
}
