package translate

import (
	"errors"
	"fmt"
	"slices"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/keygate-dev/keygate/xds/model"
)

// Credentials reach Envoy as SDS secrets (over the same ADS stream), never inlined in CDS or
// LDS. A cluster or listener names its secrets; the secret holds the PEM or the token. The
// names depend only on the Envoy cluster's name, never on the content: rotating a credential
// changes a secret's content, under the same name, and Envoy updates it in place (a cluster
// keeps using the same secret provider). A new token then applies to the next request; a new CA
// or client certificate also changes the cluster's credentials digest (see credentialsDigest),
// so that connections opened with the old certificate are drained.

// ServingSecretName is the secret of the listener's serving certificate and key.
const ServingSecretName = "serving"

// CASecretName is the validation-context secret (the CA bundle) that verifies the upstream of
// the Envoy cluster named cluster (see ResourceName).
func CASecretName(cluster string) string { return "ca_" + cluster }

// ClientSecretName is the TLS-certificate secret (the edge's client certificate and key) that
// the Envoy cluster named cluster presents upstream.
func ClientSecretName(cluster string) string { return "client_" + cluster }

// TokenSecretName is the generic secret (a bearer token) that the Envoy cluster named cluster
// sends upstream in Authorization.
func TokenSecretName(cluster string) string { return "token_" + cluster }

// sdsSecret refers to the secret name over ADS, the stream that brings the cluster or listener
// referring to it. Envoy keeps that cluster or listener warming (not serving) until the secret
// has arrived.
func sdsSecret(name string) *tlsv3.SdsSecretConfig {
	return &tlsv3.SdsSecretConfig{
		Name: name,
		SdsConfig: &corev3.ConfigSource{
			ResourceApiVersion:    corev3.ApiVersion_V3,
			ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
		},
	}
}

func tlsCertificateSecret(name string, cert, key []byte) *tlsv3.Secret {
	return &tlsv3.Secret{Name: name, Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
		CertificateChain: inline(cert),
		PrivateKey:       inline(key),
	}}}
}

func caSecret(name string, ca []byte) *tlsv3.Secret {
	return &tlsv3.Secret{Name: name, Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
		TrustedCa: inline(ca),
	}}}
}

func tokenSecret(name, token string) *tlsv3.Secret {
	return &tlsv3.Secret{Name: name, Type: &tlsv3.Secret_GenericSecret{GenericSecret: &tlsv3.GenericSecret{
		Secret: inline([]byte(token)),
	}}}
}

// upstreamSecrets are the secrets of one target's upstream, in a fixed order (CA, client
// certificate, token). What exists must agree with what upstreamCluster refers to; Resources'
// validation checks that it does.
func upstreamSecrets(cluster string, u model.Upstream) []*tlsv3.Secret {
	var out []*tlsv3.Secret
	if u.TLS() {
		out = append(out, caSecret(CASecretName(cluster), u.CA))
		if len(u.ClientCert) > 0 {
			out = append(out, tlsCertificateSecret(ClientSecretName(cluster), u.ClientCert, u.ClientKey))
		}
	}
	if u.Token != "" {
		out = append(out, tokenSecret(TokenSecretName(cluster), u.Token))
	}
	return out
}

// checkToken refuses a token that cannot be a header value as it is: a control character or a
// space would make Envoy fail every request to the upstream (or, worse, split a header), and a
// token is sent as one RFC 6750 b64token, which has neither.
func checkToken(token string) error {
	for i := 0; i < len(token); i++ {
		if c := token[i]; c < 0x21 || c > 0x7e {
			return fmt.Errorf("bearer token: byte %d is not a visible ASCII character (a token has no spaces, line breaks or control characters)", i)
		}
	}
	return nil
}

// secretRefs are the secrets one listener or cluster refers to (sdsReferences).
type secretRefs struct {
	who   string // e.g. `cluster "cluster_demo"`
	names []string
}

// checkSecretReferences makes sure that every secret a listener or cluster refers to is among
// the secrets, and that every secret is referred to. go-control-plane's Snapshot.Consistent
// checks routes and endpoints only; a missing secret would leave its cluster warming, and an
// unreferenced one would never be requested.
func (r Resources) checkSecretReferences(refs []secretRefs) error {
	have := map[string]bool{}
	for _, s := range r.Secrets {
		have[s.GetName()] = true
	}
	used := map[string]bool{}
	var errs []error
	for _, ref := range refs {
		for _, name := range ref.names {
			used[name] = true
			if !have[name] {
				errs = append(errs, fmt.Errorf("%s refers to secret %q, which is not in the configuration", ref.who, name))
			}
		}
	}
	for _, s := range r.Secrets {
		if !used[s.GetName()] {
			errs = append(errs, fmt.Errorf("secret %q: no listener or cluster refers to it", s.GetName()))
		}
	}
	return errors.Join(errs...)
}

// sdsReferences are the names of the SDS secrets m refers to, anywhere in it, including inside
// the Any-packed typed configs of transport sockets, protocol options and filters.
func sdsReferences(m proto.Message) ([]string, error) {
	var names []string
	var walk func(protoreflect.Message) error
	walk = func(msg protoreflect.Message) error {
		if s, ok := msg.Interface().(*tlsv3.SdsSecretConfig); ok {
			names = append(names, s.GetName())
			return nil
		}
		if a, ok := msg.Interface().(*anypb.Any); ok {
			inner, err := a.UnmarshalNew()
			if err != nil {
				return fmt.Errorf("unpack %s: %w", a.GetTypeUrl(), err)
			}
			return walk(inner.ProtoReflect())
		}
		var err error
		msg.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
			switch {
			case fd.IsList() && fd.Message() != nil:
				for i := 0; i < v.List().Len() && err == nil; i++ {
					err = walk(v.List().Get(i).Message())
				}
			case fd.IsMap() && fd.MapValue().Message() != nil:
				v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
					err = walk(mv.Message())
					return err == nil
				})
			case !fd.IsList() && !fd.IsMap() && fd.Message() != nil:
				err = walk(v.Message())
			}
			return err == nil
		})
		return err
	}
	if err := walk(m.ProtoReflect()); err != nil {
		return nil, err
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}
