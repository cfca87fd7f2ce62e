package kube

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/keygate-dev/keygate/internal/edgepath"
	"github.com/keygate-dev/keygate/xds/model"
	"github.com/keygate-dev/keygate/xds/source/kube/apis/v1alpha1"
)

// secretLookup returns the Secret ref names, or an error that says why it cannot (not found,
// not watched).
type secretLookup func(ref v1alpha1.SecretRef) (*corev1.Secret, error)

// result is one target of a Cluster object, or why it cannot be served. ref is set either way,
// so that an error is reported against the target it stops.
type result struct {
	ref    edgepath.Ref
	target model.Target
	err    error
}

// clusterTargets translates a Cluster object and the Secrets it references into its targets:
// the cluster's API server and, if set, its Grafana. Each succeeds or fails on its own, so that
// a broken Grafana CA does not take the cluster down. It reads nothing but lookup.
func clusterTargets(c *v1alpha1.Cluster, lookup secretLookup) []result {
	ref := edgepath.Ref{Kind: edgepath.KindCluster, Cluster: c.Name}
	spaces, spacesErr := spaceMap(c.Spec.Spaces)
	ref.Spaces = edgepath.FormatSpaces(spaces)
	results := []result{build(ref, func() (model.Upstream, string, error) {
		if spacesErr != nil {
			return model.Upstream{}, "", spacesErr
		}
		return clusterUpstream(c.Spec, lookup)
	})}
	if g := c.Spec.Grafana; g != nil {
		gref := edgepath.Ref{Kind: edgepath.KindGrafana, Cluster: c.Name}
		results = append(results, build(gref, func() (model.Upstream, string, error) { return grafanaUpstream(*g, lookup) }))
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
		if u, server, err = fromKubeconfig(data); err != nil {
			return model.Upstream{}, "", fmt.Errorf("%s: key %q: %w", where, key, err)
		}
	} else if spec.Config.Key != "" {
		return model.Upstream{}, "", fmt.Errorf("%s: has no key %q (spec.config.key); it has %s", where, key, keys(secret))
	} else {
		u = fromKeys(secret)
		if u.Token == "" && len(u.ClientCert) == 0 && len(u.ClientKey) == 0 {
			return model.Upstream{}, "", fmt.Errorf("%s: holds no credential: want key %q, or %q, or %q and %q (it has %s)",
				where, v1alpha1.KeyKubeconfig, v1alpha1.KeyToken, v1alpha1.KeyTLSCert, v1alpha1.KeyTLSKey, keys(secret))
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

// keys lists a Secret's keys (never its values), for error messages.
func keys(s *corev1.Secret) string {
	if len(s.Data) == 0 {
		return "no keys"
	}
	ks := make([]string, 0, len(s.Data))
	for k := range s.Data {
		ks = append(ks, fmt.Sprintf("%q", k))
	}
	slices.Sort(ks)
	return "keys " + strings.Join(ks, ", ")
}

// fromKubeconfig reads the server, CA and credential of a kubeconfig's current context. It
// refuses what the edge cannot carry over to Envoy: files on the machine that wrote the
// kubeconfig, credential plugins, proxies, skipping TLS verification, and impersonation (the
// edge impersonates each request's user itself).
func fromKubeconfig(data []byte) (model.Upstream, string, error) {
	cfg, err := clientcmd.Load(data)
	if err != nil {
		return model.Upstream{}, "", fmt.Errorf("not a kubeconfig: %w", err)
	}
	name := cfg.CurrentContext
	if name == "" {
		if len(cfg.Contexts) != 1 {
			return model.Upstream{}, "", fmt.Errorf("no current-context, and %d contexts to choose from: set current-context", len(cfg.Contexts))
		}
		for n := range cfg.Contexts {
			name = n
		}
	}
	ctx, ok := cfg.Contexts[name]
	if !ok {
		return model.Upstream{}, "", fmt.Errorf("context %q not found", name)
	}
	cluster, ok := cfg.Clusters[ctx.Cluster]
	if !ok {
		return model.Upstream{}, "", fmt.Errorf("context %q: cluster %q not found", name, ctx.Cluster)
	}
	user, ok := cfg.AuthInfos[ctx.AuthInfo]
	if !ok {
		return model.Upstream{}, "", fmt.Errorf("context %q: user %q not found", name, ctx.AuthInfo)
	}
	var errs []string
	refuse := func(set bool, msg string) {
		if set {
			errs = append(errs, msg)
		}
	}
	refuse(cluster.InsecureSkipTLSVerify, "insecure-skip-tls-verify: the edge always verifies upstream certificates; set certificate-authority-data")
	refuse(cluster.CertificateAuthority != "" && len(cluster.CertificateAuthorityData) == 0, "certificate-authority names a file; inline it as certificate-authority-data")
	refuse(cluster.ProxyURL != "", "proxy-url is not supported")
	refuse(user.ClientCertificate != "" && len(user.ClientCertificateData) == 0, "client-certificate names a file; inline it as client-certificate-data")
	refuse(user.ClientKey != "" && len(user.ClientKeyData) == 0, "client-key names a file; inline it as client-key-data")
	refuse(user.TokenFile != "" && user.Token == "", "tokenFile names a file; inline it as token")
	refuse(user.Exec != nil, "exec credential plugins cannot run in Envoy; use a token or a client certificate")
	refuse(user.AuthProvider != nil, "auth-provider plugins cannot run in Envoy; use a token or a client certificate")
	refuse(user.Username != "" || user.Password != "", "basic authentication (username, password) is not supported; use a token or a client certificate")
	refuse(user.Impersonate != "" || user.ImpersonateUID != "" || len(user.ImpersonateGroups) > 0 || len(user.ImpersonateUserExtra) > 0,
		"as/as-groups/as-uid/as-user-extra: the edge impersonates each request's user itself; remove them")
	if len(errs) > 0 {
		return model.Upstream{}, "", fmt.Errorf("context %q: %s", name, strings.Join(errs, "; "))
	}
	return model.Upstream{
		CA:         cluster.CertificateAuthorityData,
		ServerName: cluster.TLSServerName,
		ClientCert: user.ClientCertificateData,
		ClientKey:  user.ClientKeyData,
		Token:      user.Token,
	}, cluster.Server, nil
}
