// Package credential turns what Kubernetes holds about an upstream (a kubeconfig, a Secret's
// keys) into a target: it reads the edge's credential out of a kubeconfig, and makes the
// target by the model's rules, worded in the terms an operator fixes (Secret keys, never their
// values). The Kubernetes source (Cluster and VirtualCluster objects) and virtual-cluster
// discovery both read credentials this way.
package credential

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/keygate-dev/keygate/internal/edgepath"
	"github.com/keygate-dev/keygate/xds/model"
)

// Result is one target, or why it cannot be served. Ref is set either way, so that an error is
// reported against the target it stops.
type Result struct {
	Ref    edgepath.Ref
	Target model.Target
	Err    error
}

// Build makes the target of ref from the upstream read returns, by model.NewTarget's rules, and
// words the rules the upstream breaks in the terms of the Secret keys it came from, prefixed
// with where (also returned by read): that is what an operator fixes. The errors never quote the
// material.
func Build(ref edgepath.Ref, read func() (u model.Upstream, where string, err error)) Result {
	var where string
	t, err := model.NewTarget(ref, func() (model.Upstream, error) {
		u, w, err := read()
		where = w
		return u, err
	})
	if rules := model.UpstreamErrors(nil); errors.As(err, &rules) {
		err = fmt.Errorf("%s: %w", where, describe(rules))
	}
	if err != nil {
		return Result{Ref: ref, Err: err}
	}
	return Result{Ref: ref, Target: t}
}

// describe words the rules an upstream from Kubernetes breaks.
func describe(rules model.UpstreamErrors) error {
	var errs []error
	overHTTP := false
	for _, e := range rules {
		switch e.Rule {
		case model.RuleNeedsCA:
			errs = append(errs, errors.New("no CA: an https upstream needs ca.crt or the kubeconfig's certificate-authority-data (the edge always verifies upstream certificates)"))
		case model.RuleNoTLSOverHTTP:
			// One error for every field set: the URL is what is most likely wrong.
			if !overHTTP {
				errs = append(errs, e)
				overHTTP = true
			}
		default:
			errs = append(errs, e)
		}
	}
	return errors.Join(errs...)
}

// Keys lists a Secret's keys (never its values), for error messages.
func Keys(s *corev1.Secret) string {
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

// FromKubeconfig reads the server, CA and credential of a kubeconfig's current context. It
// refuses what the edge cannot carry over to Envoy: files on the machine that wrote the
// kubeconfig, credential plugins, proxies, skipping TLS verification, and impersonation (the
// edge impersonates each request's user itself).
func FromKubeconfig(data []byte) (model.Upstream, string, error) {
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
