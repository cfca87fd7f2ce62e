// Package envoy holds the bootstrap of the edge's Envoy: a template (bootstrap.yaml) that
// points Envoy at xds (delta ADS) for its listeners, routes and clusters, and at extauthz for
// access-key checks. Render fills it in for one Envoy.
package envoy

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"text/template"
)

//go:embed bootstrap.yaml
var bootstrapTemplate string

var tmpl = template.Must(template.New("bootstrap.yaml").Funcs(template.FuncMap{
	"quote": Quote,
}).Option("missingkey=error").Parse(bootstrapTemplate))

// Quote makes any string a valid YAML scalar (a JSON string is one), for Envoy's templates.
func Quote(s string) (string, error) {
	b, err := json.Marshal(s)
	return string(b), err
}

// Params are what differs between Envoys. Addresses are host:port; a host that is not an IP
// address is resolved by DNS (e.g. a Kubernetes Service name).
type Params struct {
	// NodeID names this Envoy to xds (in its logs); every Envoy gets the same configuration.
	NodeID string
	// AdminAddress is where Envoy serves its admin interface (/ready, /stats). Keep it on
	// loopback: it can change Envoy's state.
	AdminAddress string
	// XDSAddress is the xds gRPC server.
	XDSAddress string
	// ExtAuthzAddress is the extauthz gRPC server.
	ExtAuthzAddress string
	// ExtAuthzReplicaPorts are more extauthz replicas on ExtAuthzAddress's host, each on its
	// own port: one endpoint each, as replicas on one machine run (the local platform). In
	// production one name that resolves to every replica (a headless Service) is enough.
	ExtAuthzReplicaPorts []uint16
	// TLS is the mutual TLS of both gRPC links. It is required: xds hands out the edge's
	// secrets and extauthz decides who passes, so Envoy must prove itself to both, and check
	// that it talks to them.
	TLS *TLS
	// InsecurePlaintext talks plaintext to xds and extauthz instead, for benchmarks and tools on
	// one host: Render refuses it unless both addresses are loopback IPs or localhost.
	InsecurePlaintext bool
	// MaxHeapBytes is the heap the overload manager protects; 0 means DefaultMaxHeapBytes. Set
	// it to about 80% of the container's memory limit: Envoy shrinks its heap at 95% of it and
	// stops accepting requests at 98%, rather than being killed for memory.
	MaxHeapBytes uint64
}

// DefaultMaxHeapBytes leaves room for 10,000 targets (about 1.3 GB, bench/README.md).
const DefaultMaxHeapBytes = 4 << 30

// TLS are the files of Envoy's side of the mutual TLS with xds and extauthz (the control
// plane's CA, not the edge's or the upstreams'). Envoy reads them at start.
type TLS struct {
	// CAFile verifies xds's and extauthz's serving certificates.
	CAFile string
	// CertFile and KeyFile are Envoy's client certificate, signed by the CA that xds and
	// extauthz take as --grpc-client-ca-file.
	CertFile, KeyFile string
	// XDSServerName and ExtAuthzServerName are the names Envoy verifies in the servers'
	// certificates (and sends as SNI, if DNS names); empty means the address's host.
	XDSServerName, ExtAuthzServerName string
}

// upstreamTLS is one cluster's TLS for the template.
type upstreamTLS struct {
	CAFile, CertFile, KeyFile string
	// SNI is the server name sent, for DNS names only (SNI carries no IP addresses).
	SNI string
	// SANType and SAN are the subject alternative name the server's certificate must hold.
	SANType, SAN string
}

// Address is a parsed host:port with the Envoy cluster discovery type that reaches it.
type Address struct {
	Host string
	Port uint16
	// Type is STATIC for an IP address, else STRICT_DNS.
	Type string
}

// endpoint is an Address for the template.
type endpoint struct {
	Address
	// TLS is nil for plaintext.
	TLS *upstreamTLS
}

// Render returns the bootstrap YAML for p.
func Render(p Params) ([]byte, error) {
	if p.NodeID == "" {
		return nil, errors.New("envoy bootstrap: NodeID is empty")
	}
	var errs []error
	parse := func(field, addr string) endpoint {
		e, err := parseEndpoint(addr)
		if err != nil {
			errs = append(errs, fmt.Errorf("envoy bootstrap: %s: %w", field, err))
		}
		return e
	}
	data := struct {
		NodeID               string
		Admin, XDS, ExtAuthz endpoint
		ExtAuthzPorts        []uint16
		MaxHeapBytes         uint64
	}{
		NodeID:       p.NodeID,
		MaxHeapBytes: p.MaxHeapBytes,
		Admin:        parse("AdminAddress", p.AdminAddress),
		XDS:          parse("XDSAddress", p.XDSAddress),
		ExtAuthz:     parse("ExtAuthzAddress", p.ExtAuthzAddress),
	}
	data.ExtAuthzPorts = append([]uint16{data.ExtAuthz.Port}, p.ExtAuthzReplicaPorts...)
	for _, port := range p.ExtAuthzReplicaPorts {
		if port == 0 {
			errs = append(errs, errors.New("envoy bootstrap: ExtAuthzReplicaPorts: port 0"))
		}
	}
	errs = append(errs, p.secure(&data.XDS, &data.ExtAuthz))
	if data.MaxHeapBytes == 0 {
		data.MaxHeapBytes = DefaultMaxHeapBytes
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := tmpl.Execute(&buf, data); err != nil {
		return nil, fmt.Errorf("envoy bootstrap: %w", err)
	}
	return buf.Bytes(), nil
}

// secure sets the TLS of the xds and extauthz clusters, or checks that plaintext stays on
// loopback.
func (p Params) secure(xds, extAuthz *endpoint) error {
	switch {
	case p.InsecurePlaintext && p.TLS != nil:
		return errors.New("envoy bootstrap: TLS and InsecurePlaintext are both set: choose one")
	case p.InsecurePlaintext:
		var errs []error
		for _, e := range []struct {
			field string
			ep    *endpoint
		}{{"XDSAddress", xds}, {"ExtAuthzAddress", extAuthz}} {
			if ip := net.ParseIP(e.ep.Host); e.ep.Host != "localhost" && (ip == nil || !ip.IsLoopback()) {
				errs = append(errs, fmt.Errorf("envoy bootstrap: InsecurePlaintext with %s %q: plaintext gRPC is allowed to a loopback address only", e.field, e.ep.Host))
			}
		}
		return errors.Join(errs...)
	case p.TLS == nil:
		return errors.New("envoy bootstrap: TLS is required (Envoy's client certificate and the control plane's CA); InsecurePlaintext is for loopback only")
	}
	t := p.TLS
	if t.CAFile == "" || t.CertFile == "" || t.KeyFile == "" {
		return errors.New("envoy bootstrap: TLS needs CAFile, CertFile and KeyFile")
	}
	xds.TLS, extAuthz.TLS = t.upstream(t.XDSServerName, xds.Host), t.upstream(t.ExtAuthzServerName, extAuthz.Host)
	return nil
}

// upstream is the TLS of a cluster whose server is verified as name, or host if name is empty.
func (t *TLS) upstream(name, host string) *upstreamTLS {
	if name == "" {
		name = host
	}
	u := &upstreamTLS{CAFile: t.CAFile, CertFile: t.CertFile, KeyFile: t.KeyFile, SANType: "DNS", SAN: name, SNI: name}
	if net.ParseIP(name) != nil {
		u.SANType, u.SNI = "IP_ADDRESS", ""
	}
	return u
}

func parseEndpoint(addr string) (endpoint, error) {
	a, err := ParseAddress(addr)
	return endpoint{Address: a}, err
}

// ParseAddress reads host:port (the port 1 to 65535), for an Envoy cluster: STATIC for an IP
// address, STRICT_DNS for a name.
func ParseAddress(addr string) (Address, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return Address{}, fmt.Errorf("%q is not host:port: %w", addr, err)
	}
	if host == "" {
		return Address{}, fmt.Errorf("%q has no host", addr)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil || port == 0 {
		return Address{}, fmt.Errorf("%q: port %q is not a number from 1 to 65535", addr, portStr)
	}
	a := Address{Host: host, Port: uint16(port), Type: "STRICT_DNS"}
	if net.ParseIP(host) != nil {
		a.Type = "STATIC"
	}
	return a, nil
}
