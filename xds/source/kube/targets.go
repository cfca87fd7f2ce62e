package kube

import (
	"errors"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/keygate-dev/keygate/internal/edgepath"
	"github.com/keygate-dev/keygate/xds/model"
	"github.com/keygate-dev/keygate/xds/source/kube/apis/v1alpha1"
	"github.com/keygate-dev/keygate/xds/source/kube/credential"
)

// secretLookup returns the Secret ref names, or an error that says why it cannot (not found,
// not watched).
type secretLookup func(ref v1alpha1.SecretRef) (*corev1.Secret, error)

// clusterTargets translates a Cluster object and the Secrets it references into its targets:
// the cluster's API server and, if set, its Grafana. Each succeeds or fails on its own, so that
// a broken Grafana CA does not take the cluster down. It reads nothing but lookup.
func clusterTargets(c *v1alpha1.Cluster, lookup secretLookup) []credential.Result {
	ref := edgepath.Ref{Kind: edgepath.KindCluster, Cluster: c.Name}
	spaces, spacesErr := spaceMap(c.Spec.Spaces)
	ref.Spaces = edgepath.FormatSpaces(spaces)
	results := []credential.Result{credential.Build(ref, func() (model.Upstream, string, error) {
		if spacesErr != nil {
			return model.Upstream{}, "", spacesErr
		}
		return clusterUpstream(c.Spec, lookup)
	})}
	if g := c.Spec.Grafana; g != nil {
		gref := edgepath.Ref{Kind: edgepath.KindGrafana, Cluster: c.Name}
		results = append(results, credential.Build(gref, func() (model.Upstream, string, error) { return grafanaUpstream(*g, lookup) }))
	}
	return results
}

// spaceMap checks spaces as the CRD's schema does (a server with an older CRD may not have).
func spaceMap(spaces []v1alpha1.Space) (map[string]string, error) {
	ms := make([]model.Space, len(spaces))
	for i, sp := range spaces {
		ms[i] = model.Space(sp)
	}
	out, errs := model.SpacesOf(ms)
	joined := make([]error, len(errs))
	for i, e := range errs {
		joined[i] = fmt.Errorf("spec.%w", e)
	}
	return out, errors.Join(joined...)
}

// clusterUpstream reads a cluster's credential from its Secret: a kubeconfig, or the individual
// keys, then applies the spec's overrides. where names the Secret, for errors.
func clusterUpstream(spec v1alpha1.ClusterSpec, lookup secretLookup) (u model.Upstream, where string, err error) {
	secret, err := lookup(spec.Config.SecretRef)
	if err != nil {
		return model.Upstream{}, "", err
	}
	where = "Secret " + secret.Namespace + "/" + secret.Name
	var server string
	key := spec.Config.Key
	if key == "" {
		key = v1alpha1.KeyKubeconfig
	}
	if data, ok := secret.Data[key]; ok {
		if u, server, err = credential.FromKubeconfig(data); err != nil {
			return model.Upstream{}, "", fmt.Errorf("%s: key %q: %w", where, key, err)
		}
	} else if spec.Config.Key != "" {
		return model.Upstream{}, "", fmt.Errorf("%s: has no key %q (spec.config.key); it has %s", where, key, credential.Keys(secret))
	} else {
		u = fromKeys(secret)
		if u.Token == "" && len(u.ClientCert) == 0 && len(u.ClientKey) == 0 {
			return model.Upstream{}, "", fmt.Errorf("%s: holds no credential: want key %q, or %q, or %q and %q (it has %s)",
				where, v1alpha1.KeyKubeconfig, v1alpha1.KeyToken, v1alpha1.KeyTLSCert, v1alpha1.KeyTLSKey, credential.Keys(secret))
		}
	}
	if spec.Server != "" {
		server = spec.Server
	}
	if spec.TLSServerName != "" {
		u.ServerName = spec.TLSServerName
	}
	if server == "" {
		return model.Upstream{}, "", fmt.Errorf("spec.server is required when %s holds no kubeconfig", where)
	}
	// https only: the edge's credential for a cluster must not travel in clear.
	if u.URL, err = model.ParseURL(server, "https"); err != nil {
		return model.Upstream{}, "", fmt.Errorf("server: %w", err)
	}
	if u.Token == "" && len(u.ClientCert) == 0 {
		// The edge impersonates each request's user, which an anonymous client cannot.
		return model.Upstream{}, "", fmt.Errorf("%s: the kubeconfig's user has no token or client certificate", where)
	}
	return u, where, nil
}

// grafanaUpstream reads a Grafana's URL and, from its optional Secret, its CA and client
// certificate. where names the Secret, for errors.
func grafanaUpstream(g v1alpha1.Grafana, lookup secretLookup) (u model.Upstream, where string, err error) {
	parsed, err := model.ParseURL(g.URL, "http", "https")
	if err != nil {
		return model.Upstream{}, "", fmt.Errorf("spec.grafana.url: %w", err)
	}
	where = "spec.grafana"
	if g.Config != nil {
		secret, err := lookup(*g.Config)
		if err != nil {
			return model.Upstream{}, "", fmt.Errorf("spec.grafana.config: %w", err)
		}
		where = "spec.grafana: Secret " + secret.Namespace + "/" + secret.Name
		if _, ok := secret.Data[v1alpha1.KeyToken]; ok {
			// Grafana learns the user from the edge's auth-proxy header; a token would be ignored.
			return model.Upstream{}, "", fmt.Errorf("%s: key %q is not used for Grafana; remove it", where, v1alpha1.KeyToken)
		}
		u = fromKeys(secret)
	}
	u.URL, u.ServerName = parsed, g.TLSServerName
	return u, where, nil
}

// fromKeys reads the individual keys of a Secret: as a service-account token Secret
// (ca.crt, token) or a kubernetes.io/tls Secret (tls.crt, tls.key, often ca.crt) holds them. A
// key with no value counts as not given (model.Upstream.Validate: nil is not given).
func fromKeys(s *corev1.Secret) model.Upstream {
	return model.Upstream{
		CA:         given(s.Data[v1alpha1.KeyCA]),
		Token:      strings.TrimSpace(string(s.Data[v1alpha1.KeyToken])),
		ClientCert: given(s.Data[v1alpha1.KeyTLSCert]),
		ClientKey:  given(s.Data[v1alpha1.KeyTLSKey]),
	}
}

// given is b, or nil if it is empty.
func given(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}
