package server

import (
	"context"
	"strings"
	"testing"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/keygate-dev/keygate/internal/grpctls/grpctlstest"
)

// TestADSRefusesStrangers is the attack of issue 13: a client that can reach xds's gRPC port
// subscribes to the secrets over delta ADS. With Envoy's certificate it gets them (so the test
// would see a leak); without a client certificate, with one from another CA, or in plaintext it
// gets no stream at all, and the TLS alert says why.
func TestADSRefusesStrangers(t *testing.T) {
	ca, edge1, _ := issue(t)
	f := newFixture(t)
	if err := f.srv.Update(context.Background(), tlsCluster(ca, edge1, "token-1")); err != nil {
		t.Fatal(err)
	}
	e := serve(t, f)
	secrets := []string{"client_cluster_demo", "token_cluster_tokened"}
	subscribe := &discoveryv3.DeltaDiscoveryRequest{Node: nodeOf("attacker"), TypeUrl: resource.SecretType, ResourceNamesSubscribe: secrets}

	c := dialADS(t, e)
	c.send(subscribe)
	if got := names(c.recv()); strings.Join(got, ",") != strings.Join(secrets, ",") {
		t.Fatalf("Envoy's certificate: secrets %v, want %v", got, secrets)
	}

	strangers, err := grpctlstest.Strangers(e.cp.CAFile, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range strangers {
		t.Run(s.Name, func(t *testing.T) {
			resp, err := trySubscribe(t, e.addr, s.Creds, subscribe)
			if resp != nil {
				t.Fatalf("got %d secrets: %v", len(resp.Resources), names(resp))
			}
			t.Logf("the ADS stream fails with: %v", err)
			if status.Code(err) != codes.Unavailable {
				t.Errorf("ADS error %v, want Unavailable (no connection)", err)
			}
			if s.TLS == nil {
				return
			}
			if err := grpctlstest.Refusal(e.addr, s.TLS); err == nil || !strings.Contains(err.Error(), s.Alert) {
				t.Errorf("TLS handshake: %v, want the server's alert %q", err, s.Alert)
			}
		})
	}
}

// trySubscribe opens a delta ADS stream with creds, sends req and returns the first response,
// or the error at any step.
func trySubscribe(t *testing.T, addr string, creds credentials.TransportCredentials, req *discoveryv3.DeltaDiscoveryRequest) (*discoveryv3.DeltaDiscoveryResponse, error) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// The deadline only bounds a broken test (a server that took the stream and sent nothing).
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).DeltaAggregatedResources(ctx)
	if err != nil {
		return nil, err
	}
	if err := stream.Send(req); err != nil {
		_, err = stream.Recv() // the stream's real error
		return nil, err
	}
	return stream.Recv()
}
