package model

import (
	"net/url"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/keygate-dev/keygate/internal/edgepath"
)

func TestNewSortsByPrefix(t *testing.T) {
	u := Upstream{URL: &url.URL{Scheme: "http", Host: "127.0.0.1:1"}}
	m := New(
		Target{Ref: edgepath.Ref{Kind: edgepath.KindOIDC}, Upstream: u},
		Target{Ref: edgepath.Ref{Kind: edgepath.KindCluster, Cluster: "b"}, Upstream: u},
		Target{Ref: edgepath.Ref{Kind: edgepath.KindGrafana, Cluster: "a"}, Upstream: u},
		Target{Ref: edgepath.Ref{Kind: edgepath.KindCluster, Cluster: "a"}, Upstream: u},
	)
	var got []string
	for _, t := range m.Targets {
		got = append(got, t.Ref.Prefix())
	}
	want := []string{"/grafana/a/", "/kubernetes/cluster/a/", "/kubernetes/cluster/b/", "/oidc/"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("order (-want +got):\n%s", diff)
	}
}

func TestCounts(t *testing.T) {
	m := New(
		Target{Ref: edgepath.Ref{Kind: edgepath.KindCluster, Cluster: "a"}},
		Target{Ref: edgepath.Ref{Kind: edgepath.KindCluster, Cluster: "b"}},
		Target{Ref: edgepath.Ref{Kind: edgepath.KindManagement}},
	)
	want := map[edgepath.Kind]int{
		edgepath.KindManagement: 1, edgepath.KindCluster: 2, edgepath.KindVirtualCluster: 0,
		edgepath.KindGrafana: 0, edgepath.KindAuth: 0, edgepath.KindOIDC: 0,
	}
	if diff := cmp.Diff(want, m.Counts()); diff != "" {
		t.Errorf("Counts (-want +got):\n%s", diff)
	}
}

func TestUpstreamVerifyName(t *testing.T) {
	tests := map[string]struct {
		u    Upstream
		want string
		tls  bool
	}{
		"host of the url":          {Upstream{URL: &url.URL{Scheme: "https", Host: "api.example.com:6443"}}, "api.example.com", true},
		"ip of the url":            {Upstream{URL: &url.URL{Scheme: "https", Host: "127.0.0.1:6443"}}, "127.0.0.1", true},
		"server name wins":         {Upstream{URL: &url.URL{Scheme: "https", Host: "10.0.0.1"}, ServerName: "kubernetes.default.svc"}, "kubernetes.default.svc", true},
		"ipv6 host without braces": {Upstream{URL: &url.URL{Scheme: "http", Host: "[::1]:80"}}, "::1", false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := tc.u.VerifyName(); got != tc.want {
				t.Errorf("VerifyName() = %q, want %q", got, tc.want)
			}
			if got := tc.u.TLS(); got != tc.tls {
				t.Errorf("TLS() = %v, want %v", got, tc.tls)
			}
		})
	}
}

func TestMerge(t *testing.T) {
	fileURL := &url.URL{Scheme: "http", Host: "file:1"}
	kubeURL := &url.URL{Scheme: "http", Host: "kube:1"}
	file := New(
		Target{Ref: edgepath.Ref{Kind: edgepath.KindManagement}, Upstream: Upstream{URL: fileURL}},
		Target{Ref: edgepath.Ref{Kind: edgepath.KindCluster, Cluster: "a"}, Upstream: Upstream{URL: fileURL}},
	)
	kube := New(
		Target{Ref: edgepath.Ref{Kind: edgepath.KindCluster, Cluster: "a"}, Upstream: Upstream{URL: kubeURL}},
		Target{Ref: edgepath.Ref{Kind: edgepath.KindCluster, Cluster: "b"}, Upstream: Upstream{URL: kubeURL}},
	)
	got, dropped := Merge(file, kube)
	var prefixes, hosts []string
	for _, t := range got.Targets {
		prefixes = append(prefixes, t.Ref.Prefix())
		hosts = append(hosts, t.Upstream.URL.Host)
	}
	if diff := cmp.Diff([]string{"/kubernetes/cluster/a/", "/kubernetes/cluster/b/", "/kubernetes/management/"}, prefixes); diff != "" {
		t.Errorf("prefixes (-want +got):\n%s", diff)
	}
	// The first model wins a prefix that both have.
	if diff := cmp.Diff([]string{"file:1", "kube:1", "file:1"}, hosts); diff != "" {
		t.Errorf("upstreams (-want +got):\n%s", diff)
	}
	if len(dropped) != 1 || dropped[0].Upstream.URL != kubeURL {
		t.Errorf("dropped %v, want kube's cluster a", dropped)
	}
}
