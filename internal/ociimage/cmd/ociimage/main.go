// Command ociimage writes one image tarball per component from binaries built for linux with
// CGO_ENABLED=0 (`make images`): no container engine, no base image pulled. It prints each
// image's size.
//
//	ociimage -bin bin/linux_amd64 -out bin/images -arch amd64 \
//	  -repository ghcr.io/keygate-dev/keygate -tag 0.1.0 xds extauthz keystore
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/keygate-dev/keygate/internal/ociimage"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "ociimage:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("ociimage", flag.ContinueOnError)
	bin := fs.String("bin", "bin/linux_amd64", "folder of the components' static linux binaries")
	out := fs.String("out", "bin/images", "folder the image tarballs are written to (<component>.tar)")
	arch := fs.String("arch", "amd64", "GOARCH of the binaries")
	repo := fs.String("repository", "ghcr.io/keygate-dev/keygate", "image repository; each component's image is <repository>/<component>")
	tag := fs.String("tag", "dev", "image tag")
	certs := fs.String("ca-certificates", "/etc/ssl/certs/ca-certificates.crt", "PEM bundle installed as the images' CA certificates")
	source := fs.String("source", "https://github.com/keygate-dev/keygate", "org.opencontainers.image.source label")
	revision := fs.String("revision", "", "org.opencontainers.image.revision label (a commit)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return errors.New("name the components to package, e.g. xds extauthz keystore")
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	fmt.Printf("%-10s %-12s %-14s %s\n", "image", "compressed", "uncompressed", "tarball")
	for _, name := range fs.Args() {
		labels := map[string]string{
			"org.opencontainers.image.title":   "keygate " + name,
			"org.opencontainers.image.source":  *source,
			"org.opencontainers.image.version": *tag,
		}
		if *revision != "" {
			labels["org.opencontainers.image.revision"] = *revision
		}
		img, err := ociimage.Build(ociimage.Spec{Name: name, Binary: filepath.Join(*bin, name), CACertificates: *certs, Arch: *arch, Labels: labels})
		if err != nil {
			return err
		}
		path := filepath.Join(*out, name+".tar")
		if err := ociimage.Write(path, fmt.Sprintf("%s/%s:%s", *repo, name, *tag), img); err != nil {
			return err
		}
		size, err := ociimage.SizeOf(img)
		if err != nil {
			return err
		}
		fmt.Printf("%-10s %-12s %-14s %s\n", name, mib(size.Compressed), mib(size.Uncompressed), path)
	}
	return nil
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
