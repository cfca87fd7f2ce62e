package localdev

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/keygate-dev/keygate/internal/kubeletstub"
	"github.com/keygate-dev/keygate/internal/kubeserver"
)

// The node every demo cluster (vc1 included) has, served by the kubelet stand-in, and the pod
// bound to it in namespace default, for `kubectl exec -it demo-pod -- sh`.
const (
	NodeName      = "kubelet-stub"
	DemoPod       = "demo-pod"
	DemoContainer = "main"
)

// startKubelet starts the kubelet stand-in with a serving certificate of the platform CA (which
// the API servers' --kubelet-certificate-authority is) and accepting the API servers' client
// certificates of the same CA.
func (p *Platform) startKubelet(certs *kubeserver.Certs) error {
	pair, err := certs.CA.Server(NodeName, "127.0.0.1", "localhost")
	if err != nil {
		return err
	}
	cert, err := pair.TLS()
	if err != nil {
		return err
	}
	p.Kubelet, err = kubeletstub.Start(kubeletstub.Config{Addr: "127.0.0.1:0", Cert: cert, ClientCAs: certs.CA.Pool()})
	return err
}

// registerKubelet gives each demo cluster a Ready node at the stand-in and the demo pod on it.
func (p *Platform) registerKubelet(ctx context.Context) error {
	p.step("registering node %s (the kubelet stand-in, %s) and pod %s on every demo cluster", NodeName, p.Kubelet.Addr, DemoPod)
	for _, a := range p.kubeServers() {
		if err := p.registerNode(ctx, a); err != nil {
			return fmt.Errorf("%s: node %s: %w", a.Name, NodeName, err)
		}
		if err := p.CreatePod(ctx, a, "default", DemoPod); err != nil {
			return fmt.Errorf("%s: pod %s: %w", a.Name, DemoPod, err)
		}
	}
	return nil
}

// kubeServers are the connected clusters' and the virtual cluster's API servers.
func (p *Platform) kubeServers() []*kubeserver.APIServer {
	return []*kubeserver.APIServer{p.Clusters[ClusterDemo], p.Clusters[ClusterStaging], p.VirtualCluster}
}

// registerNode creates the node and writes its status (addresses, kubelet port, Ready) through
// the status subresource, the only place an API server takes a node's status from.
func (p *Platform) registerNode(ctx context.Context, a *kubeserver.APIServer) error {
	nodes := a.Admin.CoreV1().Nodes()
	n, err := nodes.Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: NodeName}}, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		n, err = nodes.Get(ctx, NodeName, metav1.GetOptions{})
	}
	if err != nil {
		return err
	}
	n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "127.0.0.1"}}
	n.Status.DaemonEndpoints.KubeletEndpoint.Port = p.Kubelet.Port
	n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue,
		Reason: "KubeletReady", Message: "keygate's kubelet stand-in", LastHeartbeatTime: metav1.Now()}}
	_, err = nodes.UpdateStatus(ctx, n, metav1.UpdateOptions{})
	return err
}

// CreatePod creates pod name in namespace (which must exist) on a's node of the stand-in, and
// marks it Running with its container started, so that kubectl exec, attach, port-forward
// and logs go ahead: they refuse pods that are not running.
func (p *Platform) CreatePod(ctx context.Context, a *kubeserver.APIServer, namespace, name string) error {
	pods := a.Admin.CoreV1().Pods(namespace)
	pod, err := pods.Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": name}},
		Spec: corev1.PodSpec{NodeName: NodeName, Containers: []corev1.Container{{Name: DemoContainer,
			Image: "keygate.dev/kubelet-stub", Stdin: true, TTY: true,
			Ports: []corev1.ContainerPort{{Name: "echo", ContainerPort: 7}}}}},
	}, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	now := metav1.Now()
	pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, HostIP: "127.0.0.1", PodIP: "127.0.0.1", StartTime: &now,
		Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
		ContainerStatuses: []corev1.ContainerStatus{{Name: DemoContainer, Ready: true, Started: new(true),
			Image: pod.Spec.Containers[0].Image, ImageID: pod.Spec.Containers[0].Image, ContainerID: "stub://" + namespace + "-" + name,
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}}}}}
	_, err = pods.UpdateStatus(ctx, pod, metav1.UpdateOptions{})
	return err
}
