// Package model is the in-memory description of what the edge routes to: the targets and how to
// reach each upstream. Sources (the targets file, Kubernetes) produce a Model; the translator
// turns it into Envoy resources. It holds data, and the rules every source's targets follow
// (NewTarget, Upstream.Validate, ParseURL, SpacesOf): no I/O, no Envoy types.
package model

import (
	"net/url"
	"slices"
	"strings"

	"github.com/keygate-dev/keygate/internal/edgepath"
)

// Upstream is where a target's requests go and how the edge authenticates to it.
type Upstream struct {
	// URL is the upstream's base URL: scheme http or https, a host and optionally a port.
	URL *url.URL
	// CA is the PEM bundle that verifies an https upstream's serving certificate.
	CA []byte
	// ClientCert and ClientKey are the edge's own PEM credential for the upstream (both or neither).
	ClientCert, ClientKey []byte
	// Token is a bearer token the edge presents instead of a client certificate (e.g. a
	// service account's), as `Authorization: Bearer`. Only the Kubernetes source sets it so far.
	Token string
	// ServerName is the name to send as SNI and to verify in the upstream's certificate; empty
	// means the URL's host.
	ServerName string
}

// TLS reports whether the edge speaks TLS to the upstream.
func (u Upstream) TLS() bool { return u.URL != nil && u.URL.Scheme == "https" }

// VerifyName is the name the upstream's certificate must carry: ServerName, or else the URL's
// host (an IP address or a DNS name).
func (u Upstream) VerifyName() string {
	if u.ServerName != "" {
		return u.ServerName
	}
	if u.URL == nil {
		return ""
	}
	return u.URL.Hostname()
}

// Target is one prefix of the edge and the upstream it routes to.
type Target struct {
	Ref      edgepath.Ref
	Upstream Upstream
}

// Model is everything the edge routes to, sorted by prefix (see New) so that equal models
// translate to equal Envoy resources.
type Model struct {
	Targets []Target
}

// New returns a Model of targets in their canonical order: sorted by path prefix.
func New(targets ...Target) Model {
	ts := slices.Clone(targets)
	slices.SortStableFunc(ts, func(a, b Target) int {
		return strings.Compare(a.Ref.Prefix(), b.Ref.Prefix())
	})
	return Model{Targets: ts}
}

// Counts returns the number of targets of each kind; every kind of edgepath.Kind that can have a
// target is present, with 0 when there is none, so that gauges drop back to zero.
func (m Model) Counts() map[edgepath.Kind]int {
	counts := map[edgepath.Kind]int{}
	for _, k := range Kinds {
		counts[k] = 0
	}
	for _, t := range m.Targets {
		counts[t.Ref.Kind]++
	}
	return counts
}

// Kinds are the kinds of target a Model can hold (every kind but edgepath.KindNone).
var Kinds = []edgepath.Kind{
	edgepath.KindManagement, edgepath.KindCluster, edgepath.KindVirtualCluster,
	edgepath.KindGrafana, edgepath.KindAuth, edgepath.KindOIDC,
}

// Merge combines the models of several sources (the targets file, Kubernetes) into one. A
// target whose prefix an earlier model already has is left out, and returned: the earlier
// source wins, so that one route never has two upstreams.
func Merge(models ...Model) (Model, []Target) {
	seen := map[string]bool{}
	var all, dropped []Target
	for _, m := range models {
		for _, t := range m.Targets {
			if p := t.Ref.Prefix(); seen[p] {
				dropped = append(dropped, t)
				continue
			}
			seen[t.Ref.Prefix()] = true
			all = append(all, t)
		}
	}
	return New(all...), dropped
}
