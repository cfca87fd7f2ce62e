package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
)

// adsTypes are the types an edge Envoy receives over its ADS stream.
var adsTypes = []string{resource.ClusterType, resource.ListenerType, resource.ScopedRouteType, resource.RouteType, resource.SecretType}

// shortType names a type URL in the table.
func shortType(typeURL string) string {
	switch typeURL {
	case resource.ClusterType:
		return "CDS"
	case resource.ListenerType:
		return "LDS"
	case resource.ScopedRouteType:
		return "SRDS"
	case resource.RouteType:
		return "RDS"
	case resource.SecretType:
		return "SDS"
	}
	return typeURL
}

// adsResponse is one DeltaDiscoveryResponse as received.
type adsResponse struct {
	At        time.Time
	TypeURL   string
	Resources int // added or updated resources
	Removed   int
	Bytes     int // proto.Size of the whole response
}

// adsClient is a delta ADS client that subscribes like an Envoy and ACKs every response, and
// records what it receives: the size of the xDS traffic that an Envoy would get.
type adsClient struct {
	conn   *grpc.ClientConn
	cancel context.CancelFunc

	mu       sync.Mutex
	received []adsResponse
	err      error
}

// dialADS opens a delta ADS stream to addr. Envoy subscribes to clusters, listeners and scopes
// as wildcards, and to the route configurations and secrets by the names those resources give;
// subscribing to all five as wildcards receives the same resources (the cache serves every
// Envoy the same snapshot) without following the references.
func dialADS(addr string) (*adsClient, error) {
	conn, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		// At 10,000 targets the route configuration alone is megabytes; Envoy sets no limit
		// either.
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(1<<30)))
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).DeltaAggregatedResources(ctx)
	if err != nil {
		cancel()
		conn.Close()
		return nil, err
	}
	c := &adsClient{conn: conn, cancel: cancel}
	for i, typ := range adsTypes {
		req := &discoveryv3.DeltaDiscoveryRequest{TypeUrl: typ, ResourceNamesSubscribe: []string{"*"}}
		if i == 0 {
			req.Node = &corev3.Node{Id: "bench-ads-client", Cluster: "keygate-edge"}
		}
		if err := stream.Send(req); err != nil {
			c.close()
			return nil, fmt.Errorf("subscribe %s: %w", typ, err)
		}
	}
	go c.receive(stream)
	return c, nil
}

// receive records each response and ACKs it (an un-ACKed type gets no further updates).
func (c *adsClient) receive(stream discoveryv3.AggregatedDiscoveryService_DeltaAggregatedResourcesClient) {
	for {
		resp, err := stream.Recv()
		if err == nil {
			c.mu.Lock()
			c.received = append(c.received, adsResponse{
				At: time.Now(), TypeURL: resp.GetTypeUrl(), Resources: len(resp.GetResources()),
				Removed: len(resp.GetRemovedResources()), Bytes: proto.Size(resp),
			})
			c.mu.Unlock()
			err = stream.Send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resp.GetTypeUrl(), ResponseNonce: resp.GetNonce()})
		}
		if err != nil {
			c.mu.Lock()
			c.err = err
			c.mu.Unlock()
			return
		}
	}
}

// since returns the responses received from index i on, and the stream's error if it broke.
func (c *adsClient) since(i int) ([]adsResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if i > len(c.received) {
		i = len(c.received)
	}
	return append([]adsResponse(nil), c.received[i:]...), c.err
}

// count is the number of responses received so far.
func (c *adsClient) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.received)
}

// settle waits until responses from index from on cover every type in want (none: any response)
// and then none has arrived for quiet, and returns them.
func (c *adsClient) settle(ctx context.Context, from int, want []string, quiet time.Duration) ([]adsResponse, error) {
	for {
		rs, err := c.since(from)
		if err != nil {
			return rs, fmt.Errorf("ADS stream: %w", err)
		}
		seen := map[string]bool{}
		for _, r := range rs {
			seen[r.TypeURL] = true
		}
		complete := len(rs) > 0
		for _, t := range want {
			complete = complete && seen[t]
		}
		if complete && time.Since(rs[len(rs)-1].At) >= quiet {
			return rs, nil
		}
		select {
		case <-ctx.Done():
			return rs, fmt.Errorf("ADS responses did not settle (have %d): %w", len(rs), ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (c *adsClient) close() {
	c.cancel()
	c.conn.Close()
}

// traffic sums responses by type.
type traffic struct {
	Responses int
	Bytes     int
	ByType    map[string]typeTraffic // short type name → totals
}

type typeTraffic struct{ Responses, Resources, Removed, Bytes int }

func sumTraffic(rs []adsResponse) traffic {
	t := traffic{ByType: map[string]typeTraffic{}}
	for _, r := range rs {
		t.Responses++
		t.Bytes += r.Bytes
		tt := t.ByType[shortType(r.TypeURL)]
		tt.Responses++
		tt.Resources += r.Resources
		tt.Removed += r.Removed
		tt.Bytes += r.Bytes
		t.ByType[shortType(r.TypeURL)] = tt
	}
	return t
}
