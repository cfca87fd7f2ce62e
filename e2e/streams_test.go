package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keygate-dev/keygate/internal/edgepath"
	"github.com/keygate-dev/keygate/internal/kubeserver"
	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
	"github.com/keygate-dev/keygate/localdev"
)

// Issue 19: every streaming verb through the real Envoy with the real kubectl, on a connected
// cluster and on the virtual cluster, down to the kubelet stand-in (internal/kubeletstub) that
// the demo clusters' node points at.

// spdy turns kubectl's WebSockets off for exec, attach and cp.
var spdy = []string{"KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false"}

// streamTargets are the targets the streaming tests run on, with their API servers.
func streamTargets() map[string]struct {
	ref edgepath.Ref
	api *kubeserver.APIServer
} {
	return map[string]struct {
		ref edgepath.Ref
		api *kubeserver.APIServer
	}{
		"cluster":         {demo, platform.Clusters[localdev.ClusterDemo]},
		"virtual cluster": {vc1, platform.VirtualCluster},
	}
}

// stubPod creates a namespace and a Running pod on the stand-in's node of api.
func stubPod(t *testing.T, api *kubeserver.APIServer) (namespace, name string) {
	t.Helper()
	ctx := context.Background()
	namespace, name = unique("streams"), "box"
	if err := api.CreateNamespace(ctx, namespace); err != nil {
		t.Fatal(err)
	}
	if err := platform.CreatePod(ctx, api, namespace, name); err != nil {
		t.Fatal(err)
	}
	return namespace, name
}

// kubectlCmd is the real kubectl against ref with cfg, extra environment and stdin.
func kubectlCmd(ctx context.Context, cfg string, ref edgepath.Ref, env []string, stdin io.Reader, args ...string) *exec.Cmd {
	args = append([]string{"--kubeconfig", cfg, "--context", localdev.ContextName(ref)}, args...)
	cmd := exec.CommandContext(ctx, kubectl, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = stdin
	return cmd
}

// kubectlRun runs kubectl to the end and returns its output and exit code.
func kubectlRun(t *testing.T, cfg string, ref edgepath.Ref, env []string, stdin io.Reader, args ...string) (stdout []byte, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := kubectlCmd(ctx, cfg, ref, env, stdin, args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("kubectl %v: %v", args, err)
	}
	return out.Bytes(), errOut.String(), cmd.ProcessState.ExitCode()
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestStreamsThroughTheEdge(t *testing.T) {
	t.Parallel()
	cfg := kubeconfig(t, platform.AdminKey)
	for name, target := range streamTargets() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ns, pod := stubPod(t, target.api)
			ref := target.ref
			t.Run("exec", func(t *testing.T) { testExec(t, cfg, ref, ns, pod) })
			t.Run("exec -i, 1 MiB", func(t *testing.T) { testExecStdin(t, cfg, ref, ns, pod) })
			t.Run("attach", func(t *testing.T) { testAttach(t, cfg, ref, ns, pod) })
			t.Run("port-forward, 10 MiB", func(t *testing.T) { testPortForward(t, cfg, ref, ns, pod) })
			t.Run("logs -f", func(t *testing.T) { testLogsFollow(t, cfg, ref, ns, pod) })
			t.Run("cp", func(t *testing.T) { testCopy(t, cfg, ref, ns, pod) })
			t.Run("ten sessions at once", func(t *testing.T) { testParallelExec(t, cfg, ref, ns, pod) })
		})
	}
}

// exec over both protocols: output, and the command's exit code as kubectl's.
func testExec(t *testing.T, cfg string, ref edgepath.Ref, ns, pod string) {
	for proto, env := range map[string][]string{"WebSocket": nil, "SPDY": spdy} {
		out, errOut, code := kubectlRun(t, cfg, ref, env, nil, "exec", "-n", ns, pod, "--", "echo", "hello", proto)
		if code != 0 || string(out) != "hello "+proto+"\n" {
			t.Errorf("exec echo over %s: exit %d, stdout %q; want 0 and %q\n%s", proto, code, out, "hello "+proto+"\n", errOut)
		}
		_, errOut, code = kubectlRun(t, cfg, ref, env, nil, "exec", "-n", ns, pod, "--", "sh", "-c", "exit 3")
		if code != 3 {
			t.Errorf("exec exit 3 over %s: kubectl exited %d; want 3\n%s", proto, code, errOut)
		}
	}
}

// exec -i carries 1 MiB of stdin to cat and back, byte for byte, over both protocols.
func testExecStdin(t *testing.T, cfg string, ref edgepath.Ref, ns, pod string) {
	in := randomBytes(t, 1<<20)
	for proto, env := range map[string][]string{"WebSocket": nil, "SPDY": spdy} {
		out, errOut, code := kubectlRun(t, cfg, ref, env, bytes.NewReader(in), "exec", "-i", "-n", ns, pod, "--", "cat")
		if code != 0 || sha256.Sum256(out) != sha256.Sum256(in) {
			t.Errorf("exec -i cat of 1 MiB over %s: exit %d, %d bytes back, digest equal %v\n%s", proto, code, len(out), sha256.Sum256(out) == sha256.Sum256(in), errOut)
		}
	}
}

// attach -i reaches the container's shell: what is typed runs.
func testAttach(t *testing.T, cfg string, ref edgepath.Ref, ns, pod string) {
	for proto, env := range map[string][]string{"WebSocket": nil, "SPDY": spdy} {
		out, errOut, code := kubectlRun(t, cfg, ref, env, strings.NewReader("echo attached "+proto+"\n"), "attach", "-i", "-n", ns, pod)
		if code != 0 || !strings.Contains(string(out), "attached "+proto+"\n") {
			t.Errorf("attach -i over %s: exit %d, stdout %q\n%s", proto, code, out, errOut)
		}
	}
}

var forwarding = regexp.MustCompile(`Forwarding from 127\.0\.0\.1:(\d+) ->`)

// startPortForward runs kubectl port-forward to the pod's port 7 and returns the local address.
func startPortForward(t *testing.T, ctx context.Context, cfg string, ref edgepath.Ref, ns, pod string) string {
	t.Helper()
	cmd := kubectlCmd(ctx, cfg, ref, nil, nil, "port-forward", "-n", ns, "pod/"+pod, ":7")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var errOut syncBuffer
	cmd.Stderr = &errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if m := forwarding.FindStringSubmatch(sc.Text()); m != nil {
			go func() { _, _ = io.Copy(io.Discard, stdout) }()
			return "127.0.0.1:" + m[1]
		}
	}
	t.Fatalf("kubectl port-forward printed no local port; stderr:\n%s", errOut.String())
	return ""
}

// port-forward moves 10 MiB to the pod's echo server and the same 10 MiB back, intact.
func testPortForward(t *testing.T, cfg string, ref edgepath.Ref, ns, pod string) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	local := startPortForward(t, ctx, cfg, ref, ns, pod)
	got, err := echoThrough(local, randomBytes(t, 10<<20))
	if err != nil {
		t.Fatal(err)
	}
	if !got {
		t.Error("port-forward: the 10 MiB that came back differ from what was sent")
	}
}

// echoThrough sends data to addr while reading its echo, and reports whether the echo is equal.
func echoThrough(addr string, data []byte) (bool, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return false, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(50 * time.Second))
	werr := make(chan error, 1)
	go func() { _, err := c.Write(data); werr <- err }()
	back := make([]byte, len(data))
	if _, err := io.ReadFull(c, back); err != nil {
		return false, fmt.Errorf("read the echo: %w", err)
	}
	if err := <-werr; err != nil {
		return false, err
	}
	return bytes.Equal(back, data), nil
}

// logs -f follows: lines written after it started arrive.
func testLogsFollow(t *testing.T, cfg string, ref edgepath.Ref, ns, pod string) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := kubectlCmd(ctx, cfg, ref, nil, nil, "logs", "-f", "-n", ns, pod)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	sc := bufio.NewScanner(stdout)
	want := "log line 6 of " + ns + "/" + pod + "/" + localdev.DemoContainer
	for sc.Scan() {
		if sc.Text() == want {
			return
		}
	}
	t.Errorf("kubectl logs -f ended before %q: %v", want, sc.Err())
}

// cp copies a file into the pod and back out (tar over exec), over both protocols.
func testCopy(t *testing.T, cfg string, ref edgepath.Ref, ns, pod string) {
	dir := t.TempDir()
	data := randomBytes(t, 256<<10)
	src := filepath.Join(dir, "src")
	if err := os.WriteFile(src, data, 0o600); err != nil {
		t.Fatal(err)
	}
	for proto, env := range map[string][]string{"WebSocket": nil, "SPDY": spdy} {
		remote := ns + "/" + pod + ":/tmp/" + unique("cp")
		if _, errOut, code := kubectlRun(t, cfg, ref, env, nil, "cp", src, remote); code != 0 {
			t.Fatalf("kubectl cp into the pod over %s: exit %d\n%s", proto, code, errOut)
		}
		back := filepath.Join(dir, "back-"+proto)
		if _, errOut, code := kubectlRun(t, cfg, ref, env, nil, "cp", remote, back); code != 0 {
			t.Fatalf("kubectl cp out of the pod over %s: exit %d\n%s", proto, code, errOut)
		}
		if got, err := os.ReadFile(back); err != nil || !bytes.Equal(got, data) {
			t.Errorf("kubectl cp over %s: the file that came back differs (%v)", proto, err)
		}
	}
}

// Ten exec sessions at once, each its own stdin echoed back.
func testParallelExec(t *testing.T, cfg string, ref edgepath.Ref, ns, pod string) {
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Go(func() {
			in := randomBytes(t, 64<<10)
			out, errOut, code := kubectlRun(t, cfg, ref, nil, bytes.NewReader(in), "exec", "-i", "-n", ns, pod, "--", "cat")
			if code != 0 || !bytes.Equal(out, in) {
				t.Errorf("session %d: exit %d, %d of %d bytes back intact=%v\n%s", i, code, len(out), len(in), bytes.Equal(out, in), errOut)
			}
		})
	}
	wg.Wait()
}

// syncBuffer is a bytes.Buffer safe for a process to write while a test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// The stand-in never sees a refused stream: a scoped key without create pods/exec is refused by
// the edge, and an unscoped key of a user the cluster does not authorise is refused by the API
// server, which judges the impersonated key owner, not the edge.
func TestRefusedStreamsNeverReachTheKubelet(t *testing.T) {
	t.Parallel()
	ns, pod := stubPod(t, platform.Clusters[localdev.ClusterDemo])
	_, readOnly := newKey(t, v1.OwnedAccessKeySpec{User: localdev.AdminUser, Scope: ptr(documentedScope(t, "A read-only key"))})
	user := unique("stranger")
	_, stranger := newKey(t, v1.OwnedAccessKeySpec{User: user})
	for what, c := range map[string]struct{ key, refusal string }{
		"read-only key":     {readOnly, "is not allowed to create pods/exec"},
		"key of a stranger": {stranger, `User "` + user + `" cannot`},
	} {
		for proto, env := range map[string][]string{"WebSocket": nil, "SPDY": spdy} {
			_, errOut, code := kubectlRun(t, kubeconfig(t, c.key), demo, env, nil, "exec", "-n", ns, pod, "--", "echo", "hi")
			if code == 0 || !strings.Contains(errOut, c.refusal) {
				t.Errorf("exec with the %s over %s: exit %d; want the refusal %q in:\n%s", what, proto, code, c.refusal, errOut)
			}
		}
	}
	if n := platform.Kubelet.Sessions(ns, pod); n != 0 {
		t.Errorf("the kubelet stand-in saw %d sessions of refused requests; want none", n)
	}
	if _, errOut, code := kubectlRun(t, kubeconfig(t, platform.AdminKey), demo, nil, nil, "exec", "-n", ns, pod, "--", "true"); code != 0 {
		t.Fatalf("exec with the admin key: exit %d\n%s", code, errOut)
	}
	if n := platform.Kubelet.Sessions(ns, pod); n != 1 {
		t.Errorf("after the admin's exec the stand-in saw %d sessions; want 1 (the count works)", n)
	}
}
