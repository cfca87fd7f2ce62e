package app

import (
	"context"
	"errors"
	"flag"
	"net"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/keygate-dev/keygate/internal/catalog"
	"github.com/keygate-dev/keygate/internal/edgepath"
	"github.com/keygate-dev/keygate/internal/grpctls"
	"github.com/keygate-dev/keygate/keystore/registry"
)

// XDSCatalog is where keystore reads the edge's targets for clusters and
// virtualclusterinstances: xds's gRPC port, with a client certificate of the control plane's
// CA (as Envoy's), so that the lists are what Envoy routes (internal/catalog).
type XDSCatalog struct {
	Address, CAFile, CertFile, KeyFile, ServerName string
}

func (x *XDSCatalog) register(fs *flag.FlagSet) {
	fs.StringVar(&x.Address, "xds-address", "", "host:port of xds's gRPC port, where clusters and virtualclusterinstances are read from; empty: neither is served")
	fs.StringVar(&x.CAFile, "xds-ca-file", "", "CA (PEM) of xds's serving certificate (the control plane's CA)")
	fs.StringVar(&x.CertFile, "xds-client-cert-file", "", "client certificate (PEM) of the control plane's CA that xds accepts")
	fs.StringVar(&x.KeyFile, "xds-client-key-file", "", "key of --xds-client-cert-file")
	fs.StringVar(&x.ServerName, "xds-server-name", "", "name in xds's serving certificate; empty: the host of --xds-address")
}

func (x XDSCatalog) check() error {
	if x.Address == "" {
		return nil
	}
	if _, _, err := net.SplitHostPort(x.Address); err != nil {
		return errors.New("--xds-address: want host:port")
	}
	if x.CAFile == "" || x.CertFile == "" || x.KeyFile == "" {
		return errors.New("--xds-address needs --xds-ca-file, --xds-client-cert-file and --xds-client-key-file: xds serves only mutual TLS")
	}
	return nil
}

// source returns the targets function of the registry (nil without --xds-address) and a close.
func (x XDSCatalog) source() (registry.TargetsFunc, func(), error) {
	if x.Address == "" {
		return nil, func() {}, nil
	}
	name := x.ServerName
	if name == "" {
		name, _, _ = net.SplitHostPort(x.Address)
	}
	cfg, err := grpctls.ClientConfig(x.CAFile, x.CertFile, x.KeyFile, name)
	if err != nil {
		return nil, nil, err
	}
	conn, err := grpc.NewClient(x.Address, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		return nil, nil, err
	}
	// Asked at every list: the answer is small, xds is near, and nothing is cached that could
	// go stale.
	get := func(ctx context.Context) ([]edgepath.Ref, error) {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		return catalog.Get(ctx, conn)
	}
	return get, func() { conn.Close() }, nil
}
