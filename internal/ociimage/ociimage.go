// Package ociimage builds a component's container image without a container engine and without
// pulling a base image: an empty image, one layer with what a static Go binary needs from an OS
// (a nonroot user, CA certificates, a writable /tmp) and one layer with the binary, written as
// a tarball that `docker load`, `podman load` and `crane push` take. `make images` runs it (its
// command is cmd/ociimage); the Dockerfiles beside each component build the same thing for
// teams that build with Docker.
package ociimage

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The user every image runs as: distroless's nonroot, which the Helm chart's securityContext
// names too.
const (
	UID      = 65532
	UserName = "nonroot"
	Home     = "/home/nonroot"
)

// Spec is one component's image.
type Spec struct {
	// Name is the component, also the binary's name in /usr/local/bin, e.g. "xds".
	Name string
	// Binary is the path of the component's binary: linux, statically linked (CGO_ENABLED=0).
	Binary string
	// CACertificates is a PEM bundle installed as /etc/ssl/certs/ca-certificates.crt, e.g.
	// Debian's (package ca-certificates).
	CACertificates string
	// Arch is the binary's GOARCH, e.g. "amd64".
	Arch string
	// Labels are the image's OCI labels (org.opencontainers.image.*).
	Labels map[string]string
}

// Build returns the image of s. It refuses a binary that is not a static linux executable for
// s.Arch, which would not start on an image without a libc.
func Build(s Spec) (v1.Image, error) {
	if s.Name == "" || path.Base(s.Name) != s.Name {
		return nil, fmt.Errorf("ociimage: name %q is not a plain file name", s.Name)
	}
	if err := checkStatic(s.Binary, s.Arch); err != nil {
		return nil, err
	}
	certs, err := os.ReadFile(s.CACertificates)
	if err != nil {
		return nil, fmt.Errorf("ociimage: CA certificates: %w (on Debian: apt-get install ca-certificates)", err)
	}
	bin, err := os.ReadFile(s.Binary)
	if err != nil {
		return nil, fmt.Errorf("ociimage: %w", err)
	}
	base, err := layer(baseFiles(certs))
	if err != nil {
		return nil, err
	}
	app, err := layer([]file{
		{name: "usr/", dir: true, mode: 0o755},
		{name: "usr/local/", dir: true, mode: 0o755},
		{name: "usr/local/bin/", dir: true, mode: 0o755},
		{name: "usr/local/bin/" + s.Name, mode: 0o755, data: bin},
	})
	if err != nil {
		return nil, err
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	if img, err = mutate.AppendLayers(img, base, app); err != nil {
		return nil, fmt.Errorf("ociimage: %w", err)
	}
	return configure(img, s)
}

// configure sets the run configuration: the binary as entrypoint, as the nonroot user.
func configure(img v1.Image, s Spec) (v1.Image, error) {
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("ociimage: %w", err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", s.Arch
	cf.Config.Entrypoint = []string{"/usr/local/bin/" + s.Name}
	cf.Config.User = fmt.Sprintf("%d:%d", UID, UID)
	cf.Config.WorkingDir = Home
	cf.Config.Env = []string{"PATH=/usr/local/bin", "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"}
	cf.Config.Labels = s.Labels
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("ociimage: %w", err)
	}
	// A fixed creation time keeps the same inputs the same image (digest).
	return mutate.CreatedAt(img, v1.Time{Time: time.Unix(0, 0).UTC()})
}

// Write writes img as a tarball at path, tagged ref (e.g. ghcr.io/keygate-dev/keygate/xds:0.1.0).
func Write(path, ref string, img v1.Image) error {
	tag, err := parseTag(ref)
	if err != nil {
		return err
	}
	if err := tarball.WriteToFile(path, tag, img); err != nil {
		return fmt.Errorf("ociimage: write %s: %w", path, err)
	}
	return nil
}

// checkStatic refuses what is not a static linux ELF executable for arch.
func checkStatic(binary, arch string) error {
	f, err := elf.Open(binary)
	if err != nil {
		return fmt.Errorf("ociimage: %s is not a linux executable: %w", binary, err)
	}
	defer f.Close()
	want, ok := machines[arch]
	if !ok {
		return fmt.Errorf("ociimage: architecture %q: use one of amd64, arm64", arch)
	}
	if f.Machine != want {
		return fmt.Errorf("ociimage: %s is built for %v, not %s: build it with GOARCH=%s", binary, f.Machine, arch, arch)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("ociimage: %s is dynamically linked and would not start on an image without a libc: build it with CGO_ENABLED=0", binary)
		}
	}
	return nil
}

var machines = map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}

// file is one entry of a layer.
type file struct {
	name string
	dir  bool
	mode int64
	uid  int
	data []byte
}

// baseFiles are what a static binary needs of an OS: a user to run as (a uid without a passwd
// entry confuses tools that look it up), CA certificates, a home and a writable /tmp.
func baseFiles(certs []byte) []file {
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\n%s:x:%d:%d:%s:%s:/sbin/nologin\n", UserName, UID, UID, UserName, Home)
	group := fmt.Sprintf("root:x:0:\n%s:x:%d:\n", UserName, UID)
	return []file{
		{name: "etc/", dir: true, mode: 0o755},
		{name: "etc/passwd", mode: 0o644, data: []byte(passwd)},
		{name: "etc/group", mode: 0o644, data: []byte(group)},
		{name: "etc/ssl/", dir: true, mode: 0o755},
		{name: "etc/ssl/certs/", dir: true, mode: 0o755},
		{name: "etc/ssl/certs/ca-certificates.crt", mode: 0o644, data: certs},
		{name: "home/", dir: true, mode: 0o755},
		{name: "home/nonroot/", dir: true, mode: 0o700, uid: UID},
		{name: "tmp/", dir: true, mode: 0o1777},
	}
}

// layer makes a gzip-compressed OCI layer of files, with fixed times and owners so that the
// same files make the same layer.
func layer(files []file) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{Name: f.name, Mode: f.mode, Uid: f.uid, Gid: f.uid, ModTime: time.Unix(0, 0), Format: tar.FormatPAX}
		if f.dir {
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(f.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("ociimage: %w", err)
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, fmt.Errorf("ociimage: %w", err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("ociimage: %w", err)
	}
	data := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, errors.Join(errors.New("ociimage: layer"), err)
	}
	return l, nil
}

func parseTag(ref string) (name.Tag, error) {
	tag, err := name.NewTag(ref, name.StrictValidation)
	if err != nil {
		return name.Tag{}, fmt.Errorf("ociimage: image reference %q: %w (want registry/repository:tag)", ref, err)
	}
	return tag, nil
}

// Size is what an image weighs: Compressed is what a registry stores and a node pulls (layers
// and config), Uncompressed what it unpacks to.
type Size struct {
	Compressed, Uncompressed int64
}

// SizeOf returns img's size.
func SizeOf(img v1.Image) (Size, error) {
	layers, err := img.Layers()
	if err != nil {
		return Size{}, err
	}
	raw, err := img.RawConfigFile()
	if err != nil {
		return Size{}, err
	}
	s := Size{Compressed: int64(len(raw))}
	for _, l := range layers {
		c, err := l.Size()
		if err != nil {
			return Size{}, err
		}
		rc, err := l.Uncompressed()
		if err != nil {
			return Size{}, err
		}
		u, err := io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil {
			return Size{}, err
		}
		s.Compressed += c
		s.Uncompressed += u
	}
	return s, nil
}
