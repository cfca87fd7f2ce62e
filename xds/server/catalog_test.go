package server

import (
	"context"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/keygate-dev/keygate/internal/catalog"
	"github.com/keygate-dev/keygate/internal/grpctls"
)

// TestCatalogAnswersThePublishedTargets: keystore's lists come from here, so they must be what
// Envoy routes: nothing before the first publication, the last good model after a refused one.
func TestCatalogAnswersThePublishedTargets(t *testing.T) {
	f := newFixture(t)
	e := serve(t, f)
	cfg, err := grpctls.ClientConfig(e.cp.CAFile, e.cp.EnvoyCertFile, e.cp.EnvoyKeyFile, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(e.addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx := context.Background()
	if _, err := catalog.Get(ctx, conn); status.Code(err) != codes.Unknown || err == nil {
		t.Fatalf("before any publication: %v, want an error", err)
	}
	if err := f.srv.Update(ctx, clusters("demo", "staging")); err != nil {
		t.Fatal(err)
	}
	_ = f.srv.Update(ctx, broken())
	refs, err := catalog.Get(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range refs {
		names = append(names, r.String())
	}
	if len(refs) != 2 || refs[0].Cluster != "demo" || refs[1].Cluster != "staging" {
		t.Fatalf("catalog: %v, want clusters demo and staging", names)
	}
}
