package server

import (
	"strings"
	"testing"
	"time"

	"github.com/keygate-dev/keygate/internal/edgepath"
	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
)

// The decision sees the request's Upgrade and Connection headers as Envoy passes them: a
// read-only key reads a subresource, but the same GET upgraded to a WebSocket is a stream into
// the workload and needs create (docs/scopes.md, "Verbs").
func TestCheckPassesUpgradesToTheDecision(t *testing.T) {
	c, _ := serve(t, keys, Options{})
	readOnly := newKey(t, "check-read-only", v1.OwnedAccessKeySpec{User: "erin",
		Scope: &v1.AccessKeyScope{Rules: []v1.AccessKeyScopeRule{{Verbs: []string{"get", "list", "watch"}}}}}, time.Now())
	demo := edgepath.Ref{Kind: edgepath.KindCluster, Cluster: "demo"}
	console := "/kubernetes/cluster/demo/apis/subresources.kubevirt.io/v1/namespaces/ns/virtualmachineinstances/vm/console"
	plain := map[string]string{"authorization": "Bearer " + readOnly}
	if resp := check(t, c, demo, console, plain); resp.GetOkResponse() == nil {
		t.Errorf("a plain GET of a subresource with a read-only key: denied %s", resp.GetDeniedResponse().GetBody())
	}
	upgraded := map[string]string{"authorization": "Bearer " + readOnly, "connection": "Upgrade", "upgrade": "websocket"}
	resp := check(t, c, demo, console, upgraded)
	denied := resp.GetDeniedResponse()
	want := `access key "check-read-only" is not allowed to create virtualmachineinstances/console.subresources.kubevirt.io "vm" in namespace "ns" on cluster "demo"`
	if denied == nil || denied.GetStatus().GetCode() != 403 || !strings.Contains(denied.GetBody(), strings.ReplaceAll(want, `"`, `\"`)) {
		t.Errorf("an upgraded GET of the same subresource: %v; want 403 saying %s", resp, want)
	}
}
