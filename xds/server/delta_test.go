package server

import (
	"context"
	"net/url"
	"slices"
	"testing"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/google/go-cmp/cmp"

	"github.com/keygate-dev/keygate/internal/edgepath"
	"github.com/keygate-dev/keygate/xds/model"
	"github.com/keygate-dev/keygate/xds/translate"
)

// clustersAt is a model of connected clusters, each at its own upstream address.
func clustersAt(hosts map[string]string) model.Model {
	var ts []model.Target
	for name, host := range hosts {
		ts = append(ts, model.Target{
			Ref:      edgepath.Ref{Kind: edgepath.KindCluster, Cluster: name},
			Upstream: model.Upstream{URL: &url.URL{Scheme: "http", Host: host}},
		})
	}
	return model.New(ts...)
}

// delta is what one change sent on a stream: per type, the resources and the removals.
type delta map[string]struct{ names, removed []string }

// responsesOf reads every response of c into a channel, so that a test can wait for one with a
// deadline without losing any.
func responsesOf(c *adsClient) <-chan *discoveryv3.DeltaDiscoveryResponse {
	ch := make(chan *discoveryv3.DeltaDiscoveryResponse, 16)
	go func() {
		defer close(ch)
		for {
			resp, err := c.stream.Recv()
			if err != nil {
				return
			}
			ch <- resp
		}
	}()
	return ch
}

// collect receives and ACKs responses until every type of want has answered, and fails if a
// type outside want answers meanwhile or within a short while after (a late extra response can
// only make this pass wrongly, never fail wrongly).
func collect(t *testing.T, c *adsClient, responses <-chan *discoveryv3.DeltaDiscoveryResponse, want ...string) delta {
	t.Helper()
	got := delta{}
	for len(got) < len(want) {
		var resp *discoveryv3.DeltaDiscoveryResponse
		select {
		case resp = <-responses:
		case <-time.After(10 * time.Second):
			t.Fatalf("no response within 10s; got %v, want %v", got, want)
		}
		if resp == nil {
			t.Fatal("the stream ended")
		}
		if !slices.Contains(want, resp.TypeUrl) {
			t.Fatalf("unexpected %s response: %v, removed %v", shortType(resp.TypeUrl), names(resp), resp.RemovedResources)
		}
		got[resp.TypeUrl] = struct{ names, removed []string }{names(resp), resp.RemovedResources}
		c.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resp.TypeUrl, ResponseNonce: resp.Nonce})
	}
	select {
	case resp := <-responses:
		if resp != nil {
			t.Fatalf("unexpected %s response after the change: %v, removed %v", shortType(resp.TypeUrl), names(resp), resp.RemovedResources)
		}
	case <-time.After(300 * time.Millisecond):
	}
	return got
}

// TestOneTargetChangeSendsOnlyItsResources: over delta ADS, subscribed as Envoy is (scopes and
// clusters by wildcard, route configurations by the names the scopes give), adding, moving and
// removing one target sends that target's scope, route configuration and cluster, and nothing of
// the other targets or of the static routes.
func TestOneTargetChangeSendsOnlyItsResources(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	hosts := map[string]string{"demo": "127.0.0.1:6443", "prod": "127.0.0.1:7443"}
	if err := f.srv.Update(ctx, clustersAt(hosts)); err != nil {
		t.Fatal(err)
	}
	c := dialADS(t, serve(t, f))
	rs := responsesOf(c)
	c.send(&discoveryv3.DeltaDiscoveryRequest{Node: nodeOf("envoy-1"), TypeUrl: resource.ScopedRouteType})
	c.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resource.ClusterType})
	c.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resource.RouteType,
		ResourceNamesSubscribe: []string{translate.RouteConfigName, "cluster_demo", "cluster_prod"}})
	first := collect(t, c, rs, resource.ScopedRouteType, resource.ClusterType, resource.RouteType)
	if diff := cmp.Diff([]string{"cluster_demo", "cluster_prod", "edge"}, first[resource.ScopedRouteType].names); diff != "" {
		t.Fatalf("first scopes (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"cluster_demo", "cluster_prod", "edge"}, first[resource.RouteType].names); diff != "" {
		t.Fatalf("first route configurations (-want +got):\n%s", diff)
	}

	// Add staging: its scope and cluster; then Envoy subscribes to its route configuration.
	hosts["staging"] = "127.0.0.1:8443"
	if err := f.srv.Update(ctx, clustersAt(hosts)); err != nil {
		t.Fatal(err)
	}
	added := collect(t, c, rs, resource.ScopedRouteType, resource.ClusterType)
	c.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resource.RouteType, ResourceNamesSubscribe: []string{"cluster_staging"}})
	routes := collect(t, c, rs, resource.RouteType)
	for typ, d := range map[string][]string{
		resource.ScopedRouteType: added[resource.ScopedRouteType].names,
		resource.ClusterType:     added[resource.ClusterType].names,
		resource.RouteType:       routes[resource.RouteType].names,
	} {
		if diff := cmp.Diff([]string{"cluster_staging"}, d); diff != "" {
			t.Errorf("adding staging sent %s (-want +got):\n%s", shortType(typ), diff)
		}
	}

	// Move demo's upstream: its cluster and its routes (they rewrite Host), nothing else.
	hosts["demo"] = "127.0.0.1:6444"
	if err := f.srv.Update(ctx, clustersAt(hosts)); err != nil {
		t.Fatal(err)
	}
	moved := collect(t, c, rs, resource.ClusterType, resource.RouteType)
	for _, typ := range []string{resource.ClusterType, resource.RouteType} {
		if diff := cmp.Diff([]string{"cluster_demo"}, moved[typ].names); diff != "" {
			t.Errorf("moving demo sent %s (-want +got):\n%s", shortType(typ), diff)
		}
	}

	// Remove prod: only removals, and only of prod's resources.
	delete(hosts, "prod")
	if err := f.srv.Update(ctx, clustersAt(hosts)); err != nil {
		t.Fatal(err)
	}
	removed := collect(t, c, rs, resource.ScopedRouteType, resource.ClusterType, resource.RouteType)
	for _, typ := range []string{resource.ScopedRouteType, resource.ClusterType, resource.RouteType} {
		if d := removed[typ]; len(d.names) != 0 || !cmp.Equal([]string{"cluster_prod"}, d.removed) {
			t.Errorf("removing prod sent %s %v, removed %v; want only cluster_prod removed", shortType(typ), d.names, d.removed)
		}
	}
}
