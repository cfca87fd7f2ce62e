package faultload

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/keygate-dev/keygate/localdev"
	"github.com/keygate-dev/keygate/xds/source/file"
)

// ClusterPath is connected cluster name's path prefix at the edge.
func ClusterPath(name string) string { return "/kubernetes/cluster/" + name }

// ClusterAnswers says how the admin key's GET /version on cluster name differs from status.
func ClusterAnswers(ctx context.Context, name string, status int) error {
	return WantStatus(ctx, &Probe{Name: "cluster " + name, Key: Platform.AdminKey, Path: ClusterPath(name) + "/version"}, status)
}

// EditTargets changes the platform's targets file (localdev's EditTargets), failing the test if
// it cannot.
func EditTargets(t *testing.T, edit func(*localdev.Targets)) {
	t.Helper()
	if err := Platform.EditTargets(edit); err != nil {
		t.Fatalf("edit the targets: %v", err)
	}
}

// DropCluster is clusters without those named.
func DropCluster(clusters []file.Cluster, names ...string) []file.Cluster {
	var out []file.Cluster
	for _, c := range clusters {
		drop := false
		for _, n := range names {
			drop = drop || c.Name == n
		}
		if !drop {
			out = append(out, c)
		}
	}
	return out
}

// RelayedCluster adds a connected cluster named name whose API server is staging's behind a
// Relay of its own, waits until the edge serves it, and returns the relay. When t ends the
// cluster is removed and the relay closed.
func RelayedCluster(t *testing.T, name string) *Relay {
	t.Helper()
	staging := Platform.Clusters[localdev.ClusterStaging]
	r, err := NewRelay(strings.TrimPrefix(staging.URL, "https://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	target := Platform.ClusterTarget(name, staging)
	target.Upstream.URL = "https://" + r.Addr
	EditTargets(t, func(d *localdev.Targets) { d.Clusters = append(d.Clusters, target) })
	t.Cleanup(func() { EditTargets(t, func(d *localdev.Targets) { d.Clusters = DropCluster(d.Clusters, name) }) })
	Eventually(t, time.Minute, "the edge serves "+name, func() error { return ClusterAnswers(context.Background(), name, 200) })
	return r
}
