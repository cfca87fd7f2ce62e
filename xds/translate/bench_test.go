package translate

import (
	"fmt"
	"net/url"
	"testing"

	"github.com/keygate-dev/keygate/internal/edgepath"
	"github.com/keygate-dev/keygate/xds/model"
)

// benchModel is n connected clusters over TLS (one CA and client certificate for all), with
// target moved on a second port (-1: none).
func benchModel(b *testing.B, n, moved int) model.Model {
	ca, cert, key := pemFile(b, "ca.crt"), pemFile(b, "edge.crt"), pemFile(b, "edge.key")
	ts := make([]model.Target, n)
	for i := range ts {
		port := 6443
		if i == moved {
			port = 6444
		}
		ts[i] = model.Target{
			Ref: edgepath.Ref{Kind: edgepath.KindCluster, Cluster: fmt.Sprintf("t%05d", i)},
			Upstream: model.Upstream{URL: &url.URL{Scheme: "https", Host: fmt.Sprintf("127.0.0.1:%d", port)},
				CA: ca, ClientCert: cert, ClientKey: key, ServerName: fmt.Sprintf("t%05d.bench.keygate.test", i)},
		}
	}
	return model.New(ts...)
}

// BenchmarkTranslate translates a one-target change (one upstream moved, back and forth) at n
// targets, side by side: from scratch (Translate) and with a Translator that keeps what did not
// change.
func BenchmarkTranslate(b *testing.B) {
	opts := goldenOptions(b)
	for _, n := range []int{100, 1000, 10000} {
		models := []model.Model{benchModel(b, n, -1), benchModel(b, n, n/2)}
		b.Run(fmt.Sprintf("targets=%d/from-scratch", n), func(b *testing.B) {
			for i := range b.N {
				if _, err := Translate(models[i%2], opts); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("targets=%d/translator", n), func(b *testing.B) {
			tr, err := NewTranslator(opts)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := tr.Translate(models[0]); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := range b.N {
				if _, err := tr.Translate(models[(i+1)%2]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
