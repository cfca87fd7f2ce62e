package manifests_test

import (
	"regexp"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
)

// rendered is one values file's output, decoded.
type rendered struct {
	raw  string
	objs []*unstructured.Unstructured
}

func renderValues(t *testing.T, file string) rendered {
	t.Helper()
	raw := render(t, chartDir, file)
	return rendered{raw: string(raw), objs: objects(t, raw)}
}

// typed converts every object of kind into T.
func typed[T any](t *testing.T, r rendered, kind string) map[string]*T {
	t.Helper()
	out := map[string]*T{}
	for _, o := range r.objs {
		if o.GetKind() != kind {
			continue
		}
		v := new(T)
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, v); err != nil {
			t.Fatalf("%s %s: %v", kind, o.GetName(), err)
		}
		out[o.GetName()] = v
	}
	return out
}

// podTemplates are the pods every Deployment and StatefulSet runs, by workload name.
func podTemplates(t *testing.T, r rendered) map[string]corev1.PodTemplateSpec {
	t.Helper()
	pods := map[string]corev1.PodTemplateSpec{}
	for name, d := range typed[appsv1.Deployment](t, r, "Deployment") {
		pods[name] = d.Spec.Template
	}
	for name, s := range typed[appsv1.StatefulSet](t, r, "StatefulSet") {
		pods[name] = s.Spec.Template
	}
	return pods
}

// TestEveryContainerIsLockedDown: every container of every values file runs as nonroot on a
// read-only root file system, without privilege escalation or capabilities, under
// RuntimeDefault seccomp, with liveness and readiness probes and CPU and memory requests.
func TestEveryContainerIsLockedDown(t *testing.T) {
	for name, file := range valuesFiles(t) {
		t.Run(name, func(t *testing.T) {
			pods := podTemplates(t, renderValues(t, file))
			if len(pods) < 4 {
				t.Fatalf("%d workloads, want envoy, xds, extauthz and keystore at least", len(pods))
			}
			for workload, pod := range pods {
				if psc := pod.Spec.SecurityContext; psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
					t.Errorf("%s: the pod does not require runAsNonRoot", workload)
				}
				for _, c := range append(slices.Clone(pod.Spec.InitContainers), pod.Spec.Containers...) {
					checkContainer(t, workload+"/"+c.Name, c)
				}
			}
		})
	}
}

func checkContainer(t *testing.T, name string, c corev1.Container) {
	t.Helper()
	sc := c.SecurityContext
	switch {
	case sc == nil:
		t.Errorf("%s: no securityContext", name)
		return
	case sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot:
		t.Errorf("%s: runAsNonRoot is not true", name)
	case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
		t.Errorf("%s: readOnlyRootFilesystem is not true", name)
	case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
		t.Errorf("%s: allowPrivilegeEscalation is not false", name)
	case sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault:
		t.Errorf("%s: seccomp is not RuntimeDefault", name)
	case sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0:
		t.Errorf("%s: capabilities are not drop [ALL]", name)
	}
	if c.LivenessProbe == nil || c.ReadinessProbe == nil {
		t.Errorf("%s: liveness or readiness probe missing", name)
	}
	for _, p := range []*corev1.Probe{c.LivenessProbe, c.ReadinessProbe} {
		if p != nil && p.HTTPGet != nil && p.HTTPGet.Path != "/healthz" && p.HTTPGet.Path != "/readyz" {
			t.Errorf("%s: probe on %s, want /healthz or /readyz", name, p.HTTPGet.Path)
		}
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() {
		t.Errorf("%s: no CPU or memory request", name)
	}
	if c.Resources.Limits.Memory().IsZero() {
		t.Errorf("%s: no memory limit", name)
	}
}

// TestExtauthzSurvivesADisruption: every request waits on extauthz, so it runs at least two
// replicas (by the HPA or the Deployment), spread over zones and nodes, and a PDB keeps one.
func TestExtauthzSurvivesADisruption(t *testing.T) {
	for name, file := range valuesFiles(t) {
		t.Run(name, func(t *testing.T) {
			r := renderValues(t, file)
			d := typed[appsv1.Deployment](t, r, "Deployment")[release+"-extauthz"]
			if d == nil {
				t.Fatalf("no Deployment %s-extauthz", release)
			}
			replicas := int32(0)
			if d.Spec.Replicas != nil {
				replicas = *d.Spec.Replicas
			}
			if hpa := typed[autoscalingv2.HorizontalPodAutoscaler](t, r, "HorizontalPodAutoscaler")[release+"-extauthz"]; hpa != nil {
				if hpa.Spec.MinReplicas != nil {
					replicas = *hpa.Spec.MinReplicas
				}
				if hpa.Spec.ScaleTargetRef.Name != d.Name {
					t.Errorf("the HPA scales %q, not %q", hpa.Spec.ScaleTargetRef.Name, d.Name)
				}
			}
			if replicas < 2 {
				t.Errorf("extauthz runs %d replicas, want at least 2", replicas)
			}
			if len(d.Spec.Template.Spec.TopologySpreadConstraints) == 0 {
				t.Error("extauthz has no topology spread constraints")
			}
			pdb := typed[policyv1.PodDisruptionBudget](t, r, "PodDisruptionBudget")
			for _, c := range []string{"extauthz", "envoy", "xds", "keystore"} {
				p := pdb[release+"-"+c]
				if p == nil || p.Spec.Selector.MatchLabels["app.kubernetes.io/component"] != c {
					t.Errorf("no PodDisruptionBudget selecting %s", c)
				}
			}
		})
	}
}

// TestOnlyEnvoyReachesTheControlPlane: the NetworkPolicies of xds, extauthz and keystore admit
// Envoy's pods only on their service ports (xds also keystore's, which reads its catalog of
// targets), and metricsFrom on the metrics port; Redis, when the chart runs one, admits
// keystore and extauthz.
func TestOnlyEnvoyReachesTheControlPlane(t *testing.T) {
	for name, file := range valuesFiles(t) {
		t.Run(name, func(t *testing.T) {
			r := renderValues(t, file)
			policies := typed[networkingv1.NetworkPolicy](t, r, "NetworkPolicy")
			for _, c := range []string{"xds", "extauthz", "keystore"} {
				p := policies[release+"-"+c]
				if p == nil {
					t.Errorf("no NetworkPolicy for %s", c)
					continue
				}
				for _, rule := range p.Spec.Ingress {
					metrics := len(rule.Ports) == 1 && rule.Ports[0].Port.String() == "http"
					if metrics {
						continue
					}
					want := []string{"envoy"}
					if c == "xds" {
						want = append(want, "keystore")
					}
					if got := admitted(rule.From); !slices.Equal(got, want) {
						t.Errorf("%s: an ingress rule admits %+v, want the pods of %v only", c, rule.From, want)
					}
				}
			}
			if policies[release+"-envoy"] == nil {
				t.Error("no NetworkPolicy for envoy")
			}
			if strings.Contains(r.raw, "kind: StatefulSet") && policies[release+"-redis"] == nil {
				t.Error("the chart runs Redis without a NetworkPolicy")
			}
		})
	}
}

// admitted names the components whose pods (of the release's namespace) peers admit; a peer of
// any other kind (a namespace selector, an IP block) is named "other".
func admitted(peers []networkingv1.NetworkPolicyPeer) []string {
	var out []string
	for _, p := range peers {
		if p.PodSelector == nil || p.NamespaceSelector != nil || p.IPBlock != nil {
			out = append(out, "other")
			continue
		}
		out = append(out, p.PodSelector.MatchLabels["app.kubernetes.io/component"])
	}
	return out
}

// secretLike is what a private key, password or token looks like in rendered output.
var secretLike = regexp.MustCompile(`-----BEGIN [A-Z ]*PRIVATE KEY-----|(?i)(password|token|secret)["']?\s*:\s*["']?[A-Za-z0-9+/]{16,}`)

// TestNoSecretInline: the chart renders no Secret and no secret value; certificates and
// passwords come from the Secrets the values name, as mounted files (never env values).
func TestNoSecretInline(t *testing.T) {
	for name, file := range valuesFiles(t) {
		t.Run(name, func(t *testing.T) {
			r := renderValues(t, file)
			for _, o := range r.objs {
				if o.GetKind() == "Secret" {
					t.Errorf("the chart renders Secret %s", o.GetName())
				}
			}
			if m := secretLike.FindString(r.raw); m != "" {
				t.Errorf("rendered output holds what looks like a secret: %q", m)
			}
			for workload, pod := range podTemplates(t, r) {
				for _, c := range pod.Spec.Containers {
					for _, e := range c.Env {
						if strings.HasSuffix(e.Name, "PASSWORD") {
							t.Errorf("%s/%s: %s set in the environment; use the _FILE variant from a Secret", workload, c.Name, e.Name)
						}
					}
				}
			}
		})
	}
}
