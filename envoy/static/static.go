// Package static renders the edge's Envoy configuration without xds: the listener, its routes
// and one cluster per target written out in one static file (edge.yaml), for an Envoy that our
// xds does not program. It calls extauthz without context_extensions, so extauthz takes each
// request's target from its path (extauthz/README.md). Render fills it in for a list of targets;
// example.yaml is a rendered copy for reading and copying.
package static

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"text/template"

	"github.com/keygate-dev/keygate/envoy"
	"github.com/keygate-dev/keygate/internal/edgepath"
)

//go:embed edge.yaml
var edgeTemplate string

var tmpl = template.Must(template.New("edge.yaml").Funcs(template.FuncMap{
	"quote": envoy.Quote,
	// indent indents every line of s by n spaces, for a YAML block scalar.
	"indent": func(n int, s string) string {
		pad := strings.Repeat(" ", n)
		return pad + strings.ReplaceAll(strings.TrimSuffix(s, "\n"), "\n", "\n"+pad)
	},
	// targetHeader is the response header naming a request's target.
	"targetHeader": func() string { return edgepath.TargetHeader },
	"route": func(t target, match string) any {
		return struct {
			T     target
			Match string
		}{t, match}
	},
}).Option("missingkey=error").Parse(edgeTemplate))

// NotFoundBody is the edge's answer to a path that names no target it serves, a Kubernetes
// Status (as xds's not-found route).
const NotFoundBody = `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"the path names no target on this edge","reason":"NotFound","code":404}`

// DefaultMaxHeapBytes is the heap the overload manager protects when Params sets none.
const DefaultMaxHeapBytes = 1 << 30

// Params are what one static edge serves and where its parts are. Addresses are host:port; a host
// that is not an IP address is resolved by DNS.
type Params struct {
	// AdminAddress is Envoy's admin interface: keep it on loopback.
	AdminAddress string
	// ListenAddress is the HTTPS listener; ServingCertFile and ServingKeyFile its certificate.
	ListenAddress                   string
	ServingCertFile, ServingKeyFile string
	// ExtAuthzAddress is extauthz's gRPC port, reached over mutual TLS with ExtAuthzTLS.
	ExtAuthzAddress string
	ExtAuthzTLS     TLS
	// Targets are the upstreams, one static entry each.
	Targets []Target
	// MaxHeapBytes is the heap the overload manager protects; 0 means DefaultMaxHeapBytes.
	MaxHeapBytes uint64
}

// TLS is a client side of TLS: the CA that verifies the server, the name it must hold (empty:
// the address's host), and the client certificate presented (both files or neither).
type TLS struct {
	CAFile, CertFile, KeyFile string
	ServerName                string
}

// Target is one upstream of the edge: which prefix (Ref) routes to it and where it is.
type Target struct {
	Ref edgepath.Ref
	// URL is the upstream's base URL, http:// or https://host[:port].
	URL string
	// TLS is the upstream's TLS, for an https URL (CAFile required).
	TLS TLS
}

// endpoint is a host and port with the Envoy cluster type that reaches it.
type endpoint struct {
	envoy.Address
	// TLS is nil for plaintext.
	TLS *clientTLS
}

// clientTLS is a cluster's upstream TLS, for the template.
type clientTLS struct {
	CAFile, CertFile, KeyFile string
	SNI, SANType, SAN, ALPN   string
}

// Render returns the static configuration for p.
func Render(p Params) ([]byte, error) {
	data, err := templateData(p)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := tmpl.Execute(&buf, data); err != nil {
		return nil, fmt.Errorf("static envoy: %w", err)
	}
	return buf.Bytes(), nil
}

// data is what the template reads.
type data struct {
	Admin, Listen, ExtAuthz         endpoint
	ServingCertFile, ServingKeyFile string
	Targets                         []target
	MaxHeapBytes                    uint64
	HeaderListsLua, NotFoundBody    string
	// What the listener strips from every request (edgepath.StrippedByEdge), header names in
	// lower case.
	StrippedHeaderPrefixes, StrippedHeaders []string
}

func templateData(p Params) (data, error) {
	var errs []error
	parse := func(field, addr string) endpoint {
		e, err := parseEndpoint(addr)
		if err != nil {
			errs = append(errs, fmt.Errorf("static envoy: %s: %w", field, err))
		}
		return e
	}
	d := data{
		Admin: parse("AdminAddress", p.AdminAddress), Listen: parse("ListenAddress", p.ListenAddress),
		ExtAuthz:        parse("ExtAuthzAddress", p.ExtAuthzAddress),
		ServingCertFile: p.ServingCertFile, ServingKeyFile: p.ServingKeyFile,
		MaxHeapBytes: p.MaxHeapBytes, HeaderListsLua: edgepath.HeaderListsLua, NotFoundBody: NotFoundBody,
		StrippedHeaderPrefixes: edgepath.StrippedHeaderPrefixes,
	}
	for _, h := range edgepath.DefaultGrafanaAuthProxyHeaders {
		d.StrippedHeaders = append(d.StrippedHeaders, strings.ToLower(h))
	}
	if d.MaxHeapBytes == 0 {
		d.MaxHeapBytes = DefaultMaxHeapBytes
	}
	if p.ServingCertFile == "" || p.ServingKeyFile == "" {
		errs = append(errs, errors.New("static envoy: the serving certificate and key files are required"))
	}
	if p.ExtAuthzTLS.CAFile == "" || p.ExtAuthzTLS.CertFile == "" || p.ExtAuthzTLS.KeyFile == "" {
		errs = append(errs, errors.New("static envoy: extauthz needs mutual TLS: CAFile, CertFile and KeyFile"))
	}
	d.ExtAuthz.TLS = p.ExtAuthzTLS.client(d.ExtAuthz.Host, "h2")
	seen := map[string]bool{}
	for _, t := range p.Targets {
		tt, err := newTarget(t)
		if err == nil && seen[tt.Name] {
			err = fmt.Errorf("%s is listed twice", t.Ref)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("static envoy: target %s: %w", t.Ref, err))
			continue
		}
		seen[tt.Name] = true
		d.Targets = append(d.Targets, tt)
	}
	return d, errors.Join(errs...)
}

// client is the TLS of a cluster whose server is host, unless ServerName says otherwise.
func (t TLS) client(host, alpn string) *clientTLS {
	name := t.ServerName
	if name == "" {
		name = host
	}
	c := &clientTLS{CAFile: t.CAFile, CertFile: t.CertFile, KeyFile: t.KeyFile, SANType: "DNS", SAN: name, SNI: name, ALPN: alpn}
	// SNI carries DNS names only (RFC 6066): for an IP address send none, verify the IP SAN.
	if net.ParseIP(name) != nil {
		c.SANType, c.SNI = "IP_ADDRESS", ""
	}
	return c
}

func parseEndpoint(addr string) (endpoint, error) {
	a, err := envoy.ParseAddress(addr)
	return endpoint{Address: a}, err
}

// target is a Target for the template.
type target struct {
	endpoint
	Ref         edgepath.Ref
	Name        string
	HostRewrite string
}

func newTarget(t Target) (target, error) {
	if err := t.Ref.Validate(); err != nil {
		return target{}, err
	}
	if t.Ref.Kind == edgepath.KindNone {
		return target{}, errors.New("a target needs a kind other than none")
	}
	u, err := url.Parse(t.URL)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return target{}, fmt.Errorf("URL %q is not http(s)://host[:port]", t.URL)
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	e, err := parseEndpoint(net.JoinHostPort(u.Hostname(), port))
	if err != nil {
		return target{}, err
	}
	if u.Scheme == "https" {
		if t.TLS.CAFile == "" {
			return target{}, errors.New("an https upstream needs a CAFile to verify it")
		}
		if (t.TLS.CertFile == "") != (t.TLS.KeyFile == "") {
			return target{}, errors.New("client certificate and key: both or neither")
		}
		e.TLS = t.TLS.client(e.Host, "")
	}
	return target{endpoint: e, Ref: t.Ref, Name: resourceName(t.Ref), HostRewrite: u.Host}, nil
}

// resourceName names a target's cluster and routes as xds does (cluster_demo, grafana_demo,
// virtualcluster_demo_ns_vc1, management), so that stats read the same.
func resourceName(r edgepath.Ref) string {
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

// Describe names the target in a comment.
func (t target) Describe() string { return t.Ref.String() }

// Prefix is the target's path prefix, with its trailing slash.
func (t target) Prefix() string { return t.Ref.Prefix() }

// MatchValue is the route match's value: the prefix without its slash for the exact "path"
// route, the prefix for the "prefix" route.
func (t target) MatchValue(match string) string {
	if match == "path" {
		return t.Prefix()[:len(t.Prefix())-1]
	}
	return t.Prefix()
}

// Public reports whether the target needs no key (its routes skip ext_authz).
func (t target) Public() bool { return t.Ref.Kind.Public() }

// LongLived reports whether requests may stay open indefinitely: Kubernetes API servers
// (watch, exec, port-forward), the management API and Grafana (live websockets).
func (t target) LongLived() bool {
	k := t.Ref.Kind
	return k == edgepath.KindManagement || k.Kubernetes() || k == edgepath.KindGrafana
}
