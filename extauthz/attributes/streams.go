package attributes

import (
	"path"
	"strings"
)

// The requests that open a stream into a workload need create as well as their method's verb.
// docs/scopes.md has the whole table; keep both in step.
var (
	// streamSubresources run a command in a container, attach to one or forward its ports.
	// Kubernetes 1.35+ (AuthorizePodWebsocketUpgradeCreatePermission) authorizes pods/exec,
	// pods/attach and pods/portforward with create whatever the method, because kubectl 1.30+
	// opens them with a WebSocket GET. Other groups' subresources of these names (KubeVirt's
	// virtualmachineinstances/portforward) are taken to do the same.
	streamSubresources = map[string]bool{"exec": true, "attach": true, "portforward": true}
	// kubeletStreamPaths are the kubelet endpoints that run or attach (reached through
	// nodes/proxy), with everything under them; cri is older kubelets' streaming server.
	// Kubernetes itself still authorizes a nodes/proxy GET to them as get: the edge is
	// stricter, because a GET there opens a shell on any pod of the node.
	kubeletStreamPaths = map[string]bool{"exec": true, "run": true, "attach": true, "portforward": true, "cri": true}
	// proxyResources follow their method, upgraded or not, as in RBAC: what a GET does behind
	// them is up to the pod, service or kubelet (docs/scopes.md says so).
	proxyResources = map[string]bool{"pods": true, "services": true, "nodes": true}
	// readStreams are upgraded subresources known to only read: the API server streams logs
	// over a WebSocket when asked to.
	readStreams = map[string]bool{"pods/log": true}
)

// opensStream reports whether a resource request opens a stream into a workload. parts are
// RequestInfoFactory's: resource, name, subresource, then the rest of the path.
func opensStream(a Attributes, parts []string) bool {
	core := a.APIGroup == ""
	switch {
	case core && a.Resource == "nodes" && a.Subresource == "proxy" && len(parts) > 3:
		return kubeletStream(parts[3:])
	case core && a.Resource == "nodes" && a.Verb == "proxy" && len(parts) > 2:
		// The deprecated /api/v1/proxy/nodes/<node>/<kubelet path> form: no subresource.
		return kubeletStream(parts[2:])
	case core && a.Subresource == "proxy" && proxyResources[a.Resource]:
		return false
	case streamSubresources[strings.ToLower(a.Subresource)]:
		return true
	case core && readStreams[a.Resource+"/"+a.Subresource]:
		return false
	}
	// Any other upgraded subresource (KubeVirt's console and vnc are WebSocket GETs) is taken
	// to be a stream into the workload too: failing closed, it needs create.
	return a.Upgrade && a.Subresource != ""
}

// kubeletStream reports whether a kubelet path (the segments after nodes/<node>/proxy) reaches
// an endpoint that runs or attaches. The path is cleaned as the kubelet's mux would clean it
// (dot segments, empty segments) and compared without case, to fail closed.
func kubeletStream(segments []string) bool {
	p := strings.TrimPrefix(path.Clean("/"+strings.Join(segments, "/")), "/")
	first, _, _ := strings.Cut(p, "/")
	return kubeletStreamPaths[strings.ToLower(first)]
}
