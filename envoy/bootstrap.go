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
	// quote makes any string a valid YAML scalar (a JSON string is one).
	"quote": func(s string) (string, error) {
		b, err := json.Marshal(s)
		return string(b), err
	},
}).Option("missingkey=error").Parse(bootstrapTemplate))

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
}

// endpoint is a parsed host:port for the template.
type endpoint struct {
	Host string
	Port uint16
	// Type is the Envoy cluster discovery type: STATIC for an IP, else STRICT_DNS.
	Type string
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
	}{
		NodeID:   p.NodeID,
		Admin:    parse("AdminAddress", p.AdminAddress),
		XDS:      parse("XDSAddress", p.XDSAddress),
		ExtAuthz: parse("ExtAuthzAddress", p.ExtAuthzAddress),
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

func parseEndpoint(addr string) (endpoint, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return endpoint{}, fmt.Errorf("%q is not host:port: %w", addr, err)
	}
	if host == "" {
		return endpoint{}, fmt.Errorf("%q has no host", addr)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil || port == 0 {
		return endpoint{}, fmt.Errorf("%q: port %q is not a number from 1 to 65535", addr, portStr)
	}
	e := endpoint{Host: host, Port: uint16(port), Type: "STRICT_DNS"}
	if net.ParseIP(host) != nil {
		e.Type = "STATIC"
	}
	return e, nil
}
