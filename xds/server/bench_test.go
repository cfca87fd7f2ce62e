package server

import (
	"context"
	"fmt"
	"net/url"
	"testing"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/keygate-dev/keygate/internal/edgepath"
	"github.com/keygate-dev/keygate/internal/pki"
	"github.com/keygate-dev/keygate/xds/model"
)

// benchPKI is a CA and a client certificate for tlsClusters.
type benchPKI struct{ ca, cert, key []byte }

func newBenchPKI(b *testing.B) benchPKI {
	b.Helper()
	ca, err := pki.NewCA("bench CA")
	if err != nil {
		b.Fatal(err)
	}
	client, err := ca.Client("keygate-edge")
	if err != nil {
		b.Fatal(err)
	}
	return benchPKI{ca.CertPEM, client.CertPEM, client.KeyPEM}
}

// tlsClusters is a model of n connected clusters over TLS with a CA and a client certificate
// each (the same ones: the content does not matter here), as bench/xdsscale declares them;
// moved names the one whose upstream is on the second port.
func tlsClusters(p benchPKI, n, moved int) model.Model {
	ts := make([]model.Target, n)
	for i := range ts {
		port := 6443
		if i == moved {
			port = 6444
		}
		ts[i] = model.Target{
			Ref: edgepath.Ref{Kind: edgepath.KindCluster, Cluster: fmt.Sprintf("t%05d", i)},
			Upstream: model.Upstream{URL: &url.URL{Scheme: "https", Host: fmt.Sprintf("127.0.0.1:%d", port)},
				CA: p.ca, ClientCert: p.cert, ClientKey: p.key,
				ServerName: fmt.Sprintf("t%05d.bench.keygate.test", i)},
		}
	}
	return model.New(ts...)
}

// BenchmarkUpdate is what xds spends on a one-target change (one upstream moved, back and forth)
// at n targets, with one Envoy subscribed over delta ADS: translating, hashing and publishing the
// whole snapshot, and the cache working out and sending what changed (the moved target's
// cluster), until the Envoy has it.
func BenchmarkUpdate(b *testing.B) {
	for _, n := range []int{100, 1000, 10000} {
		b.Run(fmt.Sprintf("targets=%d", n), func(b *testing.B) {
			f := newFixture(b)
			p := newBenchPKI(b)
			models := []model.Model{tlsClusters(p, n, -1), tlsClusters(p, n, n/2)}
			ctx := context.Background()
			if err := f.srv.Update(ctx, models[0]); err != nil {
				b.Fatal(err)
			}
			c := dialADS(b, serve(b, f))
			responses := responsesOf(c)
			// One response, then ACK it: the cache answers the next change only on an ACKed
			// subscription.
			next := func() {
				select {
				case resp := <-responses:
					if resp == nil {
						b.Fatal("the ADS stream ended")
					}
					c.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resp.TypeUrl, ResponseNonce: resp.Nonce})
				case <-time.After(time.Minute):
					b.Fatal("no ADS response within a minute")
				}
			}
			c.send(&discoveryv3.DeltaDiscoveryRequest{Node: nodeOf("bench"), TypeUrl: resource.ClusterType})
			next()
			b.ResetTimer()
			for i := range b.N {
				if err := f.srv.Update(ctx, models[(i+1)%2]); err != nil {
					b.Fatal(err)
				}
				next()
			}
		})
	}
}
