package server

import (
	"context"
	"io"
	"log/slog"
	"syscall"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/keygate-dev/keygate/internal/edgepath"
	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
	"github.com/keygate-dev/keygate/keystore/store"
)

// memKeys is a key store in memory: the benchmark measures the check, not Redis or the cache.
type memKeys map[string]*v1.OwnedAccessKey

func (m memKeys) LookupDigest(_ context.Context, digest string) (*v1.OwnedAccessKey, error) {
	if k, ok := m[digest]; ok {
		return k, nil
	}
	return nil, store.ErrNotFound
}

// BenchmarkCheckAllowed is one allowed check of an unscoped key to a Kubernetes route as the
// gRPC server runs it, transport aside: decode the CheckRequest Envoy sends (checkCodec), Check,
// encode the answer; and each step alone, with the generic proto codec's decoding and encoding
// beside checkCodec's. bench/README.md ("where the time goes") quotes it:
//
//	go test -run '^$' -bench CheckAllowed -benchmem ./extauthz/server
func BenchmarkCheckAllowed(b *testing.B) {
	const plain = "kgk_StH8BQLnSdufLB-5rnfCOyDaDw6OPDpAjTb5SEIsRrI"
	key := &v1.OwnedAccessKey{Spec: v1.OwnedAccessKeySpec{User: "bench"}}
	key.Name = "bench-allowed"
	s := New(memKeys{store.Digest(plain): key}, Options{}, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
	ref := edgepath.Ref{Kind: edgepath.KindCluster, Cluster: "bench"}
	envoy := envoyCheck()
	envoy.Attributes.Request.Http.Headers = map[string]string{"authorization": "Bearer " + plain}
	envoy.Attributes.ContextExtensions = ref.ContextExtensions()
	wire, err := proto.Marshal(envoy)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	check := func(b *testing.B, req *authv3.CheckRequest) *authv3.CheckResponse {
		resp, _ := s.Check(ctx, req)
		if resp.GetOkResponse() == nil {
			b.Fatal("denied")
		}
		return resp
	}
	decoded := &authv3.CheckRequest{}
	if err := decodeCheckRequest(wire, decoded); err != nil {
		b.Fatal(err)
	}
	answer := check(b, decoded)
	steps := []struct {
		name string
		run  func(b *testing.B)
	}{
		{"all", func(b *testing.B) {
			req := &authv3.CheckRequest{}
			if err := decodeCheckRequest(wire, req); err != nil {
				b.Fatal(err)
			}
			if _, ok := encodeOK(check(b, req)); !ok {
				b.Fatal("encodeOK left the answer to the proto codec")
			}
		}},
		{"decode", func(b *testing.B) { _ = decodeCheckRequest(wire, &authv3.CheckRequest{}) }},
		{"decode with proto.Unmarshal", func(b *testing.B) { _ = proto.Unmarshal(wire, &authv3.CheckRequest{}) }},
		{"Check", func(b *testing.B) { check(b, decoded) }},
		{"encode", func(b *testing.B) { _, _ = encodeOK(answer) }},
		{"encode with proto.Marshal", func(b *testing.B) { _, _ = proto.Marshal(answer) }},
	}
	for _, step := range steps {
		b.Run(step.name, func(b *testing.B) {
			b.ReportAllocs()
			cpu := cpuTime()
			for b.Loop() {
				step.run(b)
			}
			// CPU time rather than wall time: on a shared machine the latter measures the
			// neighbours.
			b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op")
		})
	}
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
