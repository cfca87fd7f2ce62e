package server

import (
	"context"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"testing"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/google/go-cmp/cmp"

	"github.com/keygate-dev/keygate/internal/edgepath"
	"github.com/keygate-dev/keygate/internal/pki"
	"github.com/keygate-dev/keygate/xds/model"
)

// tlsCluster is a model of a connected cluster "demo" over TLS with a client certificate, and,
// with a token, a second one "tokened" that authenticates with the token.
func tlsCluster(ca *pki.CA, client pki.Pair, token string) model.Model {
	ts := []model.Target{{
		Ref: edgepath.Ref{Kind: edgepath.KindCluster, Cluster: "demo"},
		Upstream: model.Upstream{URL: &url.URL{Scheme: "https", Host: "127.0.0.1:6443"},
			CA: ca.CertPEM, ClientCert: client.CertPEM, ClientKey: client.KeyPEM},
	}}
	if token != "" {
		ts = append(ts, model.Target{
			Ref:      edgepath.Ref{Kind: edgepath.KindCluster, Cluster: "tokened"},
			Upstream: model.Upstream{URL: &url.URL{Scheme: "https", Host: "127.0.0.1:7443"}, CA: ca.CertPEM, Token: token},
		})
	}
	return model.New(ts...)
}

// issue returns a CA and two client certificates it signed.
func issue(t *testing.T) (*pki.CA, pki.Pair, pki.Pair) {
	t.Helper()
	ca, err := pki.NewCA("upstream CA")
	if err != nil {
		t.Fatal(err)
	}
	var pairs [2]pki.Pair
	for i := range pairs {
		if pairs[i], err = ca.Client(fmt.Sprintf("edge-%d", i+1)); err != nil {
			t.Fatal(err)
		}
	}
	return ca, pairs[0], pairs[1]
}

// TestRotationIsPublished: a model that differs only in a credential's bytes is a new
// configuration (the content hash covers the secrets), and its snapshot is consistent.
func TestRotationIsPublished(t *testing.T) {
	ca, edge1, edge2 := issue(t)
	f := newFixture(t)
	ctx := context.Background()
	if err := f.srv.Update(ctx, tlsCluster(ca, edge1, "token-1")); err != nil {
		t.Fatal(err)
	}
	first := f.srv.Version()
	if err := f.srv.Update(ctx, tlsCluster(ca, edge2, "token-1")); err != nil {
		t.Fatal(err)
	}
	if f.srv.Version() == first {
		t.Error("a new client certificate did not change the version: it would never reach Envoy")
	}
	second := f.srv.Version()
	if err := f.srv.Update(ctx, tlsCluster(ca, edge2, "token-2")); err != nil {
		t.Fatal(err)
	}
	if f.srv.Version() == second {
		t.Error("a new token did not change the version")
	}
	snap, err := f.srv.cache.GetSnapshot(nodeGroup)
	if err != nil {
		t.Fatal(err)
	}
	got := slices.Sorted(maps.Keys(snap.GetResources(resource.SecretType)))
	want := []string{"ca_cluster_demo", "ca_cluster_tokened", "client_cluster_demo", "serving", "token_cluster_tokened"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("secrets in the snapshot (-want +got):\n%s", diff)
	}
}

// TestDeltaRotationSendsTheSecretBeforeItsCluster drives delta ADS as Envoy does: clusters
// first, then the secrets they name. A rotated client certificate then sends that one secret,
// and after it (never before) its cluster, whose credentials digest changed; a rotated token
// sends its secret only.
func TestDeltaRotationSendsTheSecretBeforeItsCluster(t *testing.T) {
	ca, edge1, edge2 := issue(t)
	f := newFixture(t)
	ctx := context.Background()
	if err := f.srv.Update(ctx, tlsCluster(ca, edge1, "token-1")); err != nil {
		t.Fatal(err)
	}
	c := dialADS(t, serve(t, f))
	c.send(&discoveryv3.DeltaDiscoveryRequest{Node: nodeOf("envoy-1"), TypeUrl: resource.ClusterType})
	resp := c.recv()
	if diff := cmp.Diff([]string{"cluster_demo", "cluster_tokened"}, names(resp)); diff != "" {
		t.Fatalf("clusters (-want +got):\n%s", diff)
	}
	c.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resource.ClusterType, ResponseNonce: resp.Nonce})
	// Envoy subscribes to each secret by name, once a cluster names it.
	secrets := []string{"ca_cluster_demo", "ca_cluster_tokened", "client_cluster_demo", "token_cluster_tokened"}
	c.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resource.SecretType, ResourceNamesSubscribe: secrets})
	resp = c.recv()
	if resp.TypeUrl != resource.SecretType {
		t.Fatalf("got %s, want secrets", resp.TypeUrl)
	}
	if diff := cmp.Diff(secrets, names(resp)); diff != "" {
		t.Fatalf("secrets (-want +got):\n%s", diff)
	}
	c.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resource.SecretType, ResponseNonce: resp.Nonce})

	if err := f.srv.Update(ctx, tlsCluster(ca, edge2, "token-1")); err != nil {
		t.Fatal(err)
	}
	resp = c.recv()
	if resp.TypeUrl != resource.SecretType {
		t.Fatalf("a rotation sent %s %v first; want the secret", resp.TypeUrl, names(resp))
	}
	if diff := cmp.Diff([]string{"client_cluster_demo"}, names(resp)); diff != "" || len(resp.RemovedResources) != 0 {
		t.Errorf("a rotation sent secrets %v, removed %v (-want +got):\n%s", names(resp), resp.RemovedResources, diff)
	}
	c.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resource.SecretType, ResponseNonce: resp.Nonce})
	resp = c.recv()
	if resp.TypeUrl != resource.ClusterType || !cmp.Equal([]string{"cluster_demo"}, names(resp)) {
		t.Fatalf("after the secret: %s %v, want cluster_demo (its credentials digest changed)", resp.TypeUrl, names(resp))
	}
	c.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resource.ClusterType, ResponseNonce: resp.Nonce})

	// A new token: its secret, and nothing else (the token is added per request).
	if err := f.srv.Update(ctx, tlsCluster(ca, edge2, "token-2")); err != nil {
		t.Fatal(err)
	}
	resp = c.recv()
	if resp.TypeUrl != resource.SecretType || !cmp.Equal([]string{"token_cluster_tokened"}, names(resp)) {
		t.Fatalf("a new token sent %s %v, want secret token_cluster_tokened", resp.TypeUrl, names(resp))
	}
	c.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resource.SecretType, ResponseNonce: resp.Nonce})
	if err := f.srv.Update(ctx, tlsCluster(ca, edge1, "token-2")); err != nil {
		t.Fatal(err)
	}
	// The next response is the next rotation's secret: the token's rotation sent no cluster.
	if resp = c.recv(); resp.TypeUrl != resource.SecretType || !cmp.Equal([]string{"client_cluster_demo"}, names(resp)) {
		t.Errorf("after the token's rotation, the next response is %s %v; want secret client_cluster_demo", resp.TypeUrl, names(resp))
	}
}
