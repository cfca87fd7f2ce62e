package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/keygate-dev/keygate/internal/edgepath"
	"github.com/keygate-dev/keygate/localdev"
)

// target is one way to reach the demo pod: through the edge with the admin key, or straight to
// the demo cluster's API server with its admin client certificate (no Envoy, no extauthz).
type target struct {
	name string
	cfg  *rest.Config
}

// env is the running platform and the bench's ways to reach the pod.
type env struct {
	platform *localdev.Platform
	dir      string
	edge     target
	direct   target // the API server without the edge
	echoAddr string // the stand-in's TCP echo server, which every forwarded port reaches
	started  time.Time
}

// startEnv starts the whole local platform, as `make run` and the end-to-end tests do, so the
// bench measures the same Envoy bootstrap, extauthz and stand-in they use.
func startEnv(progress io.Writer) (*env, error) {
	dir, err := os.MkdirTemp("", "keygate-streams-")
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	p, err := localdev.Start(ctx, localdev.Options{Dir: dir, Progress: progress})
	if err != nil {
		return nil, fmt.Errorf("start the platform: %w (logs in %s)", err, filepath.Join(dir, "logs"))
	}
	e := &env{platform: p, dir: dir, echoAddr: p.Kubelet.EchoAddr, started: time.Now()}
	api := p.Clusters[localdev.ClusterDemo]
	e.direct = target{"API server, no edge", rest.CopyConfig(api.AdminConfig)}
	ref := edgepath.Ref{Kind: edgepath.KindCluster, Cluster: localdev.ClusterDemo}
	kubeconfig, err := p.Kubeconfig(p.AdminKey, ref)
	if err == nil {
		var cfg *rest.Config
		cfg, err = clientcmd.RESTConfigFromKubeConfig(kubeconfig)
		e.edge = target{"edge", cfg}
	}
	if err != nil {
		e.stop(false)
		return nil, err
	}
	return e, nil
}

func (e *env) stop(keep bool) {
	e.platform.Stop()
	if keep {
		fmt.Fprintf(os.Stderr, "streams: the platform's directory (logs) is %s\n", e.dir)
		return
	}
	os.RemoveAll(e.dir)
}

// podURL is the URL of the demo pod's subresource (exec or portforward) at t, with params.
func podURL(t target, subresource string, params *corev1.PodExecOptions) (*url.URL, error) {
	c, err := kubernetes.NewForConfig(t.cfg)
	if err != nil {
		return nil, err
	}
	req := c.CoreV1().RESTClient().Post().Namespace("default").Resource("pods").Name(localdev.DemoPod).SubResource(subresource)
	if params != nil {
		req = req.VersionedParams(params, scheme.ParameterCodec)
	}
	return req.URL(), nil
}
