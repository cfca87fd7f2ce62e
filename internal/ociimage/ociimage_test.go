package ociimage_test

import (
	"archive/tar"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/keygate-dev/keygate/internal/ociimage"
)

// staticBinary builds a small static Go program, as `make images` builds the components.
func staticBinary(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "main.go")
	if err := os.WriteFile(src, []byte("package main\n\nfunc main() { println(\"hello\") }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "hello")
	cmd := exec.Command("go", "build", "-o", bin, src)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH, "GO111MODULE=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func caBundle(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(p, []byte("-----BEGIN CERTIFICATE-----\nMA==\n-----END CERTIFICATE-----\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestImageRunsTheBinaryAsNonroot reads back the tarball a user would `docker load`: the
// binary, the nonroot user, CA certificates, and a configuration that runs the binary as that
// user.
func TestImageRunsTheBinaryAsNonroot(t *testing.T) {
	spec := ociimage.Spec{Name: "hello", Binary: staticBinary(t), CACertificates: caBundle(t), Arch: runtime.GOARCH,
		Labels: map[string]string{"org.opencontainers.image.source": "https://example.com/keygate"}}
	img, err := ociimage.Build(spec)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "hello.tar")
	if err := ociimage.Write(path, "registry.example.com/keygate/hello:1.0", img); err != nil {
		t.Fatal(err)
	}
	loaded, err := tarball.ImageFromPath(path, nil)
	if err != nil {
		t.Fatalf("the tarball does not load: %v", err)
	}
	cf, err := loaded.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(cf.Config.Entrypoint, " "); got != "/usr/local/bin/hello" {
		t.Errorf("entrypoint %q, want /usr/local/bin/hello", got)
	}
	if cf.Config.User != "65532:65532" || cf.OS != "linux" || cf.Architecture != runtime.GOARCH {
		t.Errorf("user %q, platform %s/%s; want 65532:65532, linux/%s", cf.Config.User, cf.OS, cf.Architecture, runtime.GOARCH)
	}
	if cf.Config.Labels["org.opencontainers.image.source"] != "https://example.com/keygate" {
		t.Errorf("labels %v", cf.Config.Labels)
	}
	files := filesOf(t, loaded)
	for name, want := range map[string]string{
		"etc/passwd":                        "nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin",
		"etc/ssl/certs/ca-certificates.crt": "BEGIN CERTIFICATE",
		"usr/local/bin/hello":               "\x7fELF",
	} {
		if !strings.Contains(files[name].data, want) {
			t.Errorf("%s does not hold %q", name, want)
		}
	}
	if m := files["usr/local/bin/hello"].mode; m != 0o755 {
		t.Errorf("binary mode %o, want 755", m)
	}
	if m := files["tmp"].mode; m != 0o1777 {
		t.Errorf("/tmp mode %o, want 1777", m)
	}
}

// TestSameInputsSameDigest: fixed times and owners make builds reproducible.
func TestSameInputsSameDigest(t *testing.T) {
	spec := ociimage.Spec{Name: "hello", Binary: staticBinary(t), CACertificates: caBundle(t), Arch: runtime.GOARCH}
	var digests []string
	for range 2 {
		img, err := ociimage.Build(spec)
		if err != nil {
			t.Fatal(err)
		}
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		digests = append(digests, d.String())
	}
	if digests[0] != digests[1] {
		t.Errorf("two builds of the same inputs: %s and %s", digests[0], digests[1])
	}
}

func TestRefusesWhatWouldNotStart(t *testing.T) {
	dynamic := "/bin/true"
	if _, err := os.Stat(dynamic); err != nil {
		t.Fatalf("this test needs %s (a dynamically linked program): %v", dynamic, err)
	}
	certs := caBundle(t)
	for name, tc := range map[string]struct {
		spec ociimage.Spec
		want string
	}{
		"dynamic binary": {ociimage.Spec{Name: "x", Binary: dynamic, CACertificates: certs, Arch: runtime.GOARCH}, "CGO_ENABLED=0"},
		"not a binary":   {ociimage.Spec{Name: "x", Binary: certs, CACertificates: certs, Arch: runtime.GOARCH}, "not a linux executable"},
		"other arch":     {ociimage.Spec{Name: "x", Binary: dynamic, CACertificates: certs, Arch: otherArch()}, "GOARCH=" + otherArch()},
		"no CA bundle":   {ociimage.Spec{Name: "x", Binary: staticBinary(t), CACertificates: "/nonexistent.pem", Arch: runtime.GOARCH}, "ca-certificates"},
		"path as name":   {ociimage.Spec{Name: "../x", Binary: dynamic, CACertificates: certs, Arch: runtime.GOARCH}, "not a plain file name"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ociimage.Build(tc.spec)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one saying %q", err, tc.want)
			}
		})
	}
}

func otherArch() string {
	if runtime.GOARCH == "arm64" {
		return "amd64"
	}
	return "arm64"
}

type entry struct {
	data string
	mode int64
}

// filesOf flattens the image's layers, as a container runtime unpacks them.
func filesOf(t *testing.T, img v1.Image) map[string]entry {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	files := map[string]entry{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[strings.TrimSuffix(h.Name, "/")] = entry{data: string(data), mode: h.Mode}
	}
}
