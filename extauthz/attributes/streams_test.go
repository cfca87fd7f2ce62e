package attributes

import (
	"fmt"
	"testing"
)

// Headers of the upgrades kubectl sends: a WebSocket (kubectl 1.30+'s default, a GET) and SPDY
// (the fallback, a POST).
var (
	websocket = map[string]string{"connection": "Upgrade", "upgrade": "websocket", "sec-websocket-protocol": "v5.channel.k8s.io"}
	spdy      = map[string]string{"connection": "Upgrade", "upgrade": "SPDY/3.1"}
)

const (
	pod  = "/api/v1/namespaces/ns/pods/p"
	node = "/api/v1/nodes/n1/proxy"
)

// verbTable is the table of docs/scopes.md ("Verbs"): method × path × headers → the verbs a
// scope must grant. Each row is a request and the verbs Kubernetes 1.35+ RBAC checks for it, or
// stronger ones where the edge fails closed (marked).
var verbTable = []struct {
	method, path string
	header       map[string]string
	want         []string // the verbs every one of which must be granted
}{
	// The API server's own verbs (RequestInfoFactory), for a resource and a subresource.
	{"GET", pod, nil, []string{"get"}},
	{"HEAD", pod, nil, []string{"get"}},
	{"GET", "/api/v1/namespaces/ns/pods", nil, []string{"list"}},
	{"GET", "/api/v1/namespaces/ns/pods?watch=true", nil, []string{"watch"}},
	{"GET", "/api/v1/namespaces/ns/pods?watch=true", websocket, []string{"watch"}}, // a watch over a WebSocket
	{"GET", "/api/v1/watch/namespaces/ns/pods", nil, []string{"watch"}},
	{"POST", "/api/v1/namespaces/ns/pods", nil, []string{"create"}},
	{"PUT", pod, nil, []string{"update"}},
	{"PATCH", pod, nil, []string{"patch"}},
	{"DELETE", pod, nil, []string{"delete"}},
	{"DELETE", "/api/v1/namespaces/ns/pods", nil, []string{"deletecollection"}},
	{"GET", pod + "/log", nil, []string{"get"}},
	{"GET", pod + "/log", websocket, []string{"get"}}, // the API server streams logs over a WebSocket
	{"PUT", "/apis/apps/v1/namespaces/ns/deployments/d/scale", nil, []string{"update"}},
	// exec, attach, portforward: create as well, whatever the method, upgraded or not
	// (Kubernetes 1.35+, AuthorizePodWebsocketUpgradeCreatePermission).
	{"GET", pod + "/exec?command=sh", websocket, []string{"get", "create"}},
	{"GET", pod + "/exec?command=sh", nil, []string{"get", "create"}},
	{"POST", pod + "/exec?command=sh", spdy, []string{"create"}},
	{"POST", pod + "/exec?command=sh", nil, []string{"create"}},
	{"GET", pod + "/attach", websocket, []string{"get", "create"}},
	{"POST", pod + "/attach", spdy, []string{"create"}},
	{"GET", pod + "/portforward?ports=80", websocket, []string{"get", "create"}},
	{"POST", pod + "/portforward", spdy, []string{"create"}},
	{"PUT", pod + "/exec", nil, []string{"update", "create"}},
	{"GET", "/api/v1/watch/namespaces/ns/pods/p/exec", nil, []string{"watch", "create"}},
	// Proxies follow their method, upgraded or not, as in RBAC.
	{"GET", pod + "/proxy/", nil, []string{"get"}},
	{"GET", pod + "/proxy/ws", websocket, []string{"get"}},
	{"POST", pod + "/proxy/exec", nil, []string{"create"}},
	{"GET", "/api/v1/namespaces/ns/services/s:80/proxy/exec/x", websocket, []string{"get"}},
	{"DELETE", "/api/v1/namespaces/ns/services/s/proxy/x", nil, []string{"delete"}},
	{"GET", node + "/pods", nil, []string{"get"}},
	{"GET", node + "/containerLogs/ns/p/c", nil, []string{"get"}},
	{"GET", node + "/logs/", nil, []string{"get"}},
	{"PUT", node + "/debug/flags/v", nil, []string{"update"}},
	// Kubelet endpoints that run or attach, through nodes/proxy: create as well (stricter
	// than Kubernetes, which checks get on nodes/proxy only).
	{"GET", node + "/exec/ns/p/c?command=sh", websocket, []string{"get", "create"}},
	{"GET", node + "/exec/ns/p/c?command=sh", nil, []string{"get", "create"}},
	{"POST", node + "/exec/ns/p/c?command=sh", spdy, []string{"create"}},
	{"POST", node + "/run/ns/p/c?cmd=id", nil, []string{"create"}},
	{"GET", node + "/attach/ns/p/c", websocket, []string{"get", "create"}},
	{"GET", node + "/portForward/ns/p", websocket, []string{"get", "create"}},
	{"GET", node + "/portforward/ns/p", nil, []string{"get", "create"}},
	{"GET", node + "/cri/exec/token", nil, []string{"get", "create"}},
	{"GET", node + "/./exec/ns/p/c", nil, []string{"get", "create"}},
	{"GET", node + "/x/../exec/ns/p/c", nil, []string{"get", "create"}},
	{"GET", node + "/exec", nil, []string{"get", "create"}},
	{"GET", "/api/v1/nodes/n1:10250/proxy/exec/ns/p/c", nil, []string{"get", "create"}},
	{"GET", "/api/v1/proxy/nodes/n1/exec/ns/p/c", nil, []string{"proxy", "create"}}, // deprecated path form
	{"GET", node + "/execute", nil, []string{"get"}},                                // not under exec
	// Other groups: a stream subresource by name, and any other upgraded subresource,
	// need create (failing closed: KubeVirt's console and vnc are WebSocket GETs).
	{"GET", "/apis/subresources.kubevirt.io/v1/namespaces/ns/virtualmachineinstances/vm/portforward/22", nil, []string{"get", "create"}},
	{"GET", "/apis/subresources.kubevirt.io/v1/namespaces/ns/virtualmachineinstances/vm/console", websocket, []string{"get", "create"}},
	{"GET", "/apis/subresources.kubevirt.io/v1/namespaces/ns/virtualmachineinstances/vm/console", map[string]string{"Connection": "keep-alive, Upgrade"}, []string{"get", "create"}},
	{"GET", "/apis/subresources.kubevirt.io/v1/namespaces/ns/virtualmachineinstances/vm/vnc", map[string]string{"Upgrade": "websocket"}, []string{"get", "create"}},
	{"GET", "/apis/subresources.kubevirt.io/v1/namespaces/ns/virtualmachineinstances/vm/guestosinfo", nil, []string{"get"}},
	{"GET", "/apis/x.io/v1/namespaces/ns/things/t/proxy", websocket, []string{"get", "create"}}, // only the core proxies are exempt
	// Non-resource paths: the lower-case method, upgraded or not.
	{"GET", "/version", nil, []string{"get"}},
	{"POST", "/healthz", nil, []string{"post"}},
	{"GET", "/public/live/ws", websocket, []string{"get"}},
}

// TestVerbMapping checks every row of verbTable: the checks FromRequest's attributes ask for.
func TestVerbMapping(t *testing.T) {
	for _, tc := range verbTable {
		name := fmt.Sprintf("%s %s %s", tc.method, tc.path, tc.header["upgrade"]+tc.header["Upgrade"])
		t.Run(name, func(t *testing.T) {
			a, err := FromRequest(tc.method, tc.path, tc.header)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, c := range a.Checks() {
				if c.AlsoVerb != "" {
					t.Errorf("check %+v carries a second verb", c)
				}
				got = append(got, c.Verb)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("verbs %v, want %v (%+v)", got, tc.want, a)
			}
		})
	}
}
