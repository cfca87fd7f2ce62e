package translate

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	credinjectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/credential_injector/v3"
	genericcredv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/http/injected_credentials/generic/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/keygate-dev/keygate/internal/pki"
	"github.com/keygate-dev/keygate/xds/model"
)

func secretNames(r Resources) []string {
	var names []string
	for _, s := range r.Secrets {
		names = append(names, s.Name)
	}
	return names
}

func TestSecretsPerTarget(t *testing.T) {
	noClientCert := secure(t, "https://127.0.0.1:7443")
	noClientCert.ClientCert, noClientCert.ClientKey = nil, nil
	res := translate(t,
		model.Target{Ref: demo, Upstream: secure(t, "https://127.0.0.1:6443")},
		model.Target{Ref: vc1, Upstream: noClientCert},
		model.Target{Ref: grafana, Upstream: plain(t, "http://127.0.0.1:3000")},
		model.Target{Ref: mgmt, Upstream: withToken(t, "https://127.0.0.1:9443", "t0ken")},
	)
	// The serving certificate first, then per target in prefix order: CA, client certificate,
	// token, each only if the upstream has it. Plain HTTP has none.
	want := []string{
		"serving",
		"ca_cluster_demo", "client_cluster_demo",
		"ca_management", "token_management",
		"ca_virtualcluster_demo_vcluster-demo_vc1",
	}
	if diff := cmp.Diff(want, secretNames(res)); diff != "" {
		t.Errorf("secrets (-want +got):\n%s", diff)
	}
	for _, s := range res.Secrets {
		switch {
		case strings.HasPrefix(s.Name, "ca_"):
			if s.GetValidationContext().GetTrustedCa().GetInlineString() == "" {
				t.Errorf("secret %s holds no CA: %v", s.Name, s)
			}
		case strings.HasPrefix(s.Name, "token_"):
			if got := s.GetGenericSecret().GetSecret().GetInlineString(); got != "t0ken" {
				t.Errorf("secret %s holds %q, want the token as it is (the filter adds \"Bearer \")", s.Name, got)
			}
		default:
			if s.GetTlsCertificate().GetPrivateKey().GetInlineString() == "" {
				t.Errorf("secret %s holds no key: %v", s.Name, s)
			}
		}
	}
}

// TestRotationKeepsNames: a new CA, client certificate or token for the same target changes the
// content of its secrets, under the same names, and nothing else but the credentials digest of a
// cluster whose CA or client certificate changed (which makes Envoy drain the connections that
// still use the old certificate). A token is added per request: its cluster stays as it is.
func TestRotationKeepsNames(t *testing.T) {
	issue := func(name string) model.Upstream {
		ca, err := pki.NewCA(name + " CA")
		if err != nil {
			t.Fatal(err)
		}
		client, err := ca.Client(name)
		if err != nil {
			t.Fatal(err)
		}
		u := plain(t, "https://127.0.0.1:6443")
		u.CA, u.ClientCert, u.ClientKey = ca.CertPEM, client.CertPEM, client.KeyPEM
		return u
	}
	before := translate(t,
		model.Target{Ref: demo, Upstream: issue("first")},
		model.Target{Ref: mgmt, Upstream: withToken(t, "https://127.0.0.1:9443", "first-token")},
	)
	after := translate(t,
		model.Target{Ref: demo, Upstream: issue("second")},
		model.Target{Ref: mgmt, Upstream: withToken(t, "https://127.0.0.1:9443", "second-token")},
	)
	digest := func(r Resources, i int) string {
		return r.Clusters[i].GetMetadata().GetFilterMetadata()["keygate"].GetFields()["credentials_digest"].GetStringValue()
	}
	// Clusters in prefix order: cluster_demo, management.
	if d1, d2 := digest(before, 0), digest(after, 0); d1 == "" || d1 == d2 {
		t.Errorf("cluster_demo's credentials digest %q → %q: want a change", d1, d2)
	}
	if !proto.Equal(before.Clusters[1], after.Clusters[1]) {
		t.Error("a new token changed its cluster; it only needs the secret")
	}
	ignoreDigest := protocmp.IgnoreFields(&clusterv3.Cluster{}, "metadata")
	if diff := cmp.Diff(before.Clusters, after.Clusters, protocmp.Transform(), ignoreDigest); diff != "" {
		t.Errorf("a rotation changed the clusters beyond the digest (-before +after):\n%s", diff)
	}
	if !proto.Equal(before.Listeners[0], after.Listeners[0]) {
		t.Error("a rotation changed the listener")
	}
	if diff := cmp.Diff(before.Routes, after.Routes, protocmp.Transform()); diff != "" {
		t.Errorf("a rotation changed the routes (-before +after):\n%s", diff)
	}
	if diff := cmp.Diff(before.ScopedRoutes, after.ScopedRoutes, protocmp.Transform()); diff != "" {
		t.Errorf("a rotation changed the scopes (-before +after):\n%s", diff)
	}
	if diff := cmp.Diff(secretNames(before), secretNames(after)); diff != "" {
		t.Fatalf("a rotation renamed secrets (-before +after):\n%s", diff)
	}
	// management kept its CA: only its token changed.
	rotated := map[string]bool{"ca_cluster_demo": true, "client_cluster_demo": true, "token_management": true}
	for i := range before.Secrets {
		changed := !proto.Equal(before.Secrets[i], after.Secrets[i])
		if want := rotated[before.Secrets[i].Name]; changed != want {
			t.Errorf("secret %s changed = %v, want %v", before.Secrets[i].Name, changed, want)
		}
	}
}

func TestTokenFilters(t *testing.T) {
	res := translate(t,
		model.Target{Ref: demo, Upstream: withToken(t, "https://127.0.0.1:6443", "t0ken")},
		model.Target{Ref: mgmt, Upstream: secure(t, "https://127.0.0.1:9443")},
	)
	opts := func(name string) *upstreamhttpv3.HttpProtocolOptions {
		t.Helper()
		for _, c := range res.Clusters {
			if c.Name == name {
				o := &upstreamhttpv3.HttpProtocolOptions{}
				if err := c.TypedExtensionProtocolOptions[upstreamHTTPOptions].UnmarshalTo(o); err != nil {
					t.Fatal(err)
				}
				return o
			}
		}
		t.Fatalf("no cluster %s", name)
		return nil
	}
	if f := opts("management").HttpFilters; len(f) != 0 {
		t.Errorf("cluster without a token has upstream filters %v", f)
	}
	o := opts("cluster_demo")
	if o.GetExplicitHttpConfig().GetHttpProtocolOptions() == nil {
		t.Error("a token cluster must still speak HTTP/1.1 (SPDY upgrades)")
	}
	var names []string
	for _, f := range o.HttpFilters {
		names = append(names, f.Name)
	}
	// The upstream codec must be last: it is what sends the request.
	if diff := cmp.Diff([]string{"envoy.filters.http.credential_injector", "envoy.filters.http.upstream_codec"}, names); diff != "" {
		t.Fatalf("upstream filters (-want +got):\n%s", diff)
	}
	inj := &credinjectorv3.CredentialInjector{}
	if err := o.HttpFilters[0].GetTypedConfig().UnmarshalTo(inj); err != nil {
		t.Fatal(err)
	}
	if !inj.Overwrite || inj.AllowRequestWithoutCredential {
		t.Errorf("credential injector overwrite %v, allow without credential %v; want true, false", inj.Overwrite, inj.AllowRequestWithoutCredential)
	}
	if inj.Credential.GetName() != "envoy.http.injected_credentials.generic" {
		t.Errorf("credential extension %q", inj.Credential.GetName())
	}
	gen := &genericcredv3.Generic{}
	if err := inj.Credential.GetTypedConfig().UnmarshalTo(gen); err != nil {
		t.Fatal(err)
	}
	want := &genericcredv3.Generic{Credential: sdsSecret("token_cluster_demo"), Header: "Authorization", HeaderValuePrefix: "Bearer "}
	if diff := cmp.Diff(want, gen, protocmp.Transform()); diff != "" {
		t.Errorf("generic credential (-want +got):\n%s", diff)
	}
}

func TestSecretReferencesAreChecked(t *testing.T) {
	good := translate(t, model.Target{Ref: demo, Upstream: secure(t, "https://127.0.0.1:6443")})
	refs, err := sdsReferences(good.Clusters[0])
	if err != nil {
		t.Fatal(err)
	}
	// The references are inside the Any of the transport socket: the walk must unpack it.
	if diff := cmp.Diff([]string{"ca_cluster_demo", "client_cluster_demo"}, refs); diff != "" {
		t.Errorf("references of cluster_demo (-want +got):\n%s", diff)
	}

	missing := good
	missing.Secrets = good.Secrets[:len(good.Secrets)-1]
	if err := missing.validate(); err == nil || !strings.Contains(err.Error(), `cluster "cluster_demo" refers to secret "client_cluster_demo", which is not in the configuration`) {
		t.Errorf("a missing secret: validate = %v", err)
	}
	extra := good
	extra.Secrets = append(append([]*tlsv3.Secret(nil), good.Secrets...), tokenSecret("token_nobody", "x"))
	if err := extra.validate(); err == nil || !strings.Contains(err.Error(), `secret "token_nobody": no listener or cluster refers to it`) {
		t.Errorf("an unreferenced secret: validate = %v", err)
	}
	twice := good
	twice.Secrets = append(append([]*tlsv3.Secret(nil), good.Secrets...), good.Secrets[1])
	if err := twice.validate(); err == nil || !strings.Contains(err.Error(), "defined twice") {
		t.Errorf("a secret twice: validate = %v", err)
	}
}

// validate checks r from scratch, as a Translator checks what it builds: every resource passes
// ValidateAll, no name is defined twice, and the secrets and their references match.
func (r Resources) validate() error {
	var errs []error
	var refs []secretRefs
	check := func(kind, name string, m proto.Message) {
		if err := m.(validator).ValidateAll(); err != nil {
			errs = append(errs, fmt.Errorf("%s %q: %w", kind, name, err))
		}
	}
	referring := func(kind, name string, m proto.Message) {
		check(kind, name, m)
		names, err := sdsReferences(m)
		errs = append(errs, err)
		refs = append(refs, secretRefs{kind + " " + strconv.Quote(name), names})
	}
	for _, l := range r.Listeners {
		referring("listener", l.GetName(), l)
	}
	for _, sc := range r.ScopedRoutes {
		check("scoped route configuration", sc.GetName(), sc)
	}
	for _, rc := range r.Routes {
		check("route configuration", rc.GetName(), rc)
	}
	for _, c := range r.Clusters {
		referring("cluster", c.GetName(), c)
	}
	for _, sec := range r.Secrets {
		check("secret", sec.GetName(), sec)
	}
	return errors.Join(append(errs, r.checkNames(), r.checkSecretReferences(refs))...)
}
