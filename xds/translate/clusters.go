package translate

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net"
	"strconv"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	credinjectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/credential_injector/v3"
	upstreamcodecv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/upstream_codec/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	genericcredv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/http/injected_credentials/generic/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/keygate-dev/keygate/internal/edgepath"
	"github.com/keygate-dev/keygate/xds/model"
)

const (
	connectTimeout = 5 * time.Second
	// circuitLimit replaces Envoy's default of 1024 connections and requests per cluster: every
	// open watch counts as an active request, and a busy cluster has far more than 1024.
	circuitLimit = 1_000_000
	// upstreamBufferLimit bounds the buffers of each upstream connection (Envoy's edge guide).
	upstreamBufferLimit = 32 << 10
	// upstreamHTTPOptions is the extension name of upstream HTTP protocol options.
	upstreamHTTPOptions = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
)

// ResourceName names every Envoy resource of a target: its cluster, its route configuration
// and scope, and (as a prefix) its routes and secrets. It is cluster_<cluster>,
// virtualcluster_<cluster>_<namespace>_<vcluster>, grafana_<cluster>, or the kind for the
// singletons (management, auth, oidc). Names in a Ref are DNS names, which have no "_", so the
// names cannot collide.
func ResourceName(r edgepath.Ref) string {
	switch r.Kind {
	case edgepath.KindCluster:
		return "cluster_" + r.Cluster
	case edgepath.KindVirtualCluster:
		return "virtualcluster_" + r.Cluster + "_" + r.Namespace + "_" + r.VirtualCluster
	case edgepath.KindGrafana:
		return "grafana_" + r.Cluster
	}
	return string(r.Kind)
}

// oneEndpoint is the load assignment of a cluster with one upstream address.
func oneEndpoint(cluster, host string, port uint32) *endpointv3.ClusterLoadAssignment {
	return &endpointv3.ClusterLoadAssignment{
		ClusterName: cluster,
		Endpoints: []*endpointv3.LocalityLbEndpoints{{
			LbEndpoints: []*endpointv3.LbEndpoint{{
				HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
					Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
						Address:       host,
						PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
					}}},
				}},
			}},
		}},
	}
}

// upstreamCluster is the Envoy cluster that reaches a target's upstream.
func upstreamCluster(t model.Target) (*clusterv3.Cluster, error) {
	u := t.Upstream
	if u.URL == nil {
		return nil, errors.New("upstream has no URL")
	}
	host, port, err := hostPort(u)
	if err != nil {
		return nil, err
	}
	name := ResourceName(t.Ref)
	http1, err := upstreamHTTPProtocolOptions(name, u)
	if err != nil {
		return nil, err
	}
	c := &clusterv3.Cluster{
		Name:           name,
		ConnectTimeout: durationpb.New(connectTimeout),
		LoadAssignment: oneEndpoint(name, host, port),
		CircuitBreakers: &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{
			Priority:           corev3.RoutingPriority_DEFAULT,
			MaxConnections:     wrapperspb.UInt32(circuitLimit),
			MaxPendingRequests: wrapperspb.UInt32(circuitLimit),
			MaxRequests:        wrapperspb.UInt32(circuitLimit),
		}}},
		TypedExtensionProtocolOptions: map[string]*anypb.Any{upstreamHTTPOptions: http1},
		// As on the client side (Limits): a slow reader upstream cannot make Envoy buffer
		// without bound; flow control holds the other side back instead.
		PerConnectionBufferLimitBytes: wrapperspb.UInt32(upstreamBufferLimit),
	}
	if net.ParseIP(host) != nil {
		c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC}
	} else {
		c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STRICT_DNS}
		// Many upstreams listen on IPv4 only; "localhost" resolving to ::1 first must not break them.
		c.DnsLookupFamily = clusterv3.Cluster_V4_PREFERRED
	}
	if u.TLS() {
		ts, err := upstreamTLS(name, u)
		if err != nil {
			return nil, err
		}
		c.TransportSocket = ts
		c.Metadata = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
			MetadataNamespace: {Fields: map[string]*structpb.Value{
				CredentialsDigestKey: structpb.NewStringValue(credentialsDigest(u)),
			}},
		}}
	}
	return c, nil
}

// MetadataNamespace and CredentialsDigestKey name the cluster metadata that changes whenever the
// cluster's TLS credentials (CA or client certificate) do.
const (
	MetadataNamespace    = "keygate"
	CredentialsDigestKey = "credentials_digest"
)

// credentialsDigest identifies an upstream's CA and client certificate. The cluster carries it so
// that a new CA or client certificate also changes the cluster, not only its secrets: Envoy
// applies a secret update to new connections only, and keeps the ones it has pooled, with the
// previous credential, for as long as they stay open (an API server's keep-alive connection:
// for ever). A changed cluster is replaced, and the old one's connections drained: in-flight
// requests (watches, exec) finish on them, and every new request opens a connection with the
// new credential. The token is left out: it is added to each request, so a new token applies at
// once. The key is left out too: a new key comes with a new certificate.
func credentialsDigest(u model.Upstream) string {
	h := sha256.New()
	for _, b := range [][]byte{u.CA, u.ClientCert} {
		// Length-prefixed, so that moving bytes from one to the other changes the digest.
		fmt.Fprintf(h, "%d\n", len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// hostPort is the upstream's host (without IPv6 brackets) and port (the scheme's default if the
// URL has none).
func hostPort(u model.Upstream) (string, uint32, error) {
	host := u.URL.Hostname()
	if host == "" {
		return "", 0, fmt.Errorf("upstream URL %q has no host", u.URL)
	}
	p := u.URL.Port()
	switch {
	case p != "":
	case u.URL.Scheme == "https":
		p = "443"
	case u.URL.Scheme == "http":
		p = "80"
	default:
		return "", 0, fmt.Errorf("upstream URL %q: scheme must be http or https", u.URL)
	}
	n, err := strconv.ParseUint(p, 10, 16)
	if err != nil || n == 0 || n > math.MaxUint16 {
		return "", 0, fmt.Errorf("upstream URL %q: bad port %q", u.URL, p)
	}
	return host, uint32(n), nil
}

// upstreamHTTPProtocolOptions speak HTTP/1.1 to the upstream: SPDY upgrades (kubectl exec,
// port-forward) exist in HTTP/1.1 only. An upstream with a bearer token gets it from an upstream
// HTTP filter, the credential injector, with the token over SDS (see tokenFilters).
func upstreamHTTPProtocolOptions(cluster string, u model.Upstream) (*anypb.Any, error) {
	opts := &upstreamhttpv3.HttpProtocolOptions{
		UpstreamProtocolOptions: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig{
			ProtocolConfig: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_HttpProtocolOptions{HttpProtocolOptions: &corev3.Http1ProtocolOptions{}},
		}},
	}
	if u.Token != "" {
		if !u.TLS() {
			// Fail closed: a credential must not travel in clear.
			return nil, fmt.Errorf("a bearer token for the http upstream %s; it needs https", u.URL)
		}
		if err := checkToken(u.Token); err != nil {
			return nil, err
		}
		filters, err := tokenFilters(TokenSecretName(cluster))
		if err != nil {
			return nil, err
		}
		opts.HttpFilters = filters
	}
	return pack(opts)
}

// tokenFilters are the upstream HTTP filters that send the token of secret as
// `Authorization: Bearer <token>`. They run per upstream request, after routing, so the token is
// the cluster's: the route has already removed the client's access key (Authorization), and
// overwrite makes sure that no client-sent value could ever take the token's place. Without the
// token (its secret not yet delivered) the filter answers 401 rather than forward the request
// unauthenticated; Envoy keeps the cluster warming until the secret has arrived, so that does not
// happen in practice.
func tokenFilters(secret string) ([]*hcmv3.HttpFilter, error) {
	generic, err := pack(&genericcredv3.Generic{
		Credential:        sdsSecret(secret),
		Header:            "Authorization",
		HeaderValuePrefix: "Bearer ",
	})
	if err != nil {
		return nil, fmt.Errorf("generic credential: %w", err)
	}
	injector, err := pack(&credinjectorv3.CredentialInjector{
		Overwrite:                     true,
		AllowRequestWithoutCredential: false,
		Credential:                    &corev3.TypedExtensionConfig{Name: genericCredential, TypedConfig: generic},
	})
	if err != nil {
		return nil, fmt.Errorf("credential injector: %w", err)
	}
	// An upstream filter chain must end with the upstream codec, which sends the request.
	codec, err := pack(&upstreamcodecv3.UpstreamCodec{})
	if err != nil {
		return nil, fmt.Errorf("upstream codec: %w", err)
	}
	return []*hcmv3.HttpFilter{
		{Name: credentialInjectorFilter, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: injector}},
		{Name: upstreamCodecFilter, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: codec}},
	}, nil
}

// upstreamTLS verifies the upstream's certificate against its CA and its name, and presents the
// edge's client certificate if it has one. Without a SAN matcher Envoy would accept any
// certificate the CA signed, for any host. The CA and the client certificate are SDS secrets
// (CASecretName, ClientSecretName); the name to verify stays here, since it is part of where the
// cluster goes, not of its credential.
func upstreamTLS(cluster string, u model.Upstream) (*corev3.TransportSocket, error) {
	if len(u.CA) == 0 {
		// Fail closed: there is no insecure mode.
		return nil, fmt.Errorf("https upstream %s has no CA to verify it with", u.URL)
	}
	name := u.VerifyName()
	san := &tlsv3.SubjectAltNameMatcher{
		SanType: tlsv3.SubjectAltNameMatcher_DNS,
		Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: name}},
	}
	if net.ParseIP(name) != nil {
		san.SanType = tlsv3.SubjectAltNameMatcher_IP_ADDRESS
	}
	common := &tlsv3.CommonTlsContext{
		// Envoy merges the two: the trusted CA from the secret, the name matcher from here.
		ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
			DefaultValidationContext: &tlsv3.CertificateValidationContext{
				MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{san},
			},
			ValidationContextSdsSecretConfig: sdsSecret(CASecretName(cluster)),
		}},
	}
	if len(u.ClientCert) > 0 || len(u.ClientKey) > 0 {
		if len(u.ClientCert) == 0 || len(u.ClientKey) == 0 {
			return nil, errors.New("client certificate and key: both or neither")
		}
		common.TlsCertificateSdsSecretConfigs = []*tlsv3.SdsSecretConfig{sdsSecret(ClientSecretName(cluster))}
	}
	ctx := &tlsv3.UpstreamTlsContext{CommonTlsContext: common}
	// SNI carries DNS names only (RFC 6066): for an IP address the edge sends none and
	// verifies the IP SAN.
	if net.ParseIP(name) == nil {
		ctx.Sni = name
	}
	a, err := pack(ctx)
	if err != nil {
		return nil, fmt.Errorf("upstream TLS: %w", err)
	}
	return &corev3.TransportSocket{Name: tlsSocket, ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: a}}, nil
}
