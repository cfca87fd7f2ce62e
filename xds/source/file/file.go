// Package file is the targets-file source of xds: it loads a YAML file describing the edge's
// targets into a model.Model (Load), and watches it for changes (Watcher). The schema is
// documented in xds/README.md; unknown fields are refused so that a typo cannot silently drop a
// setting, and every upstream is checked before anything is served.
package file

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/keygate-dev/keygate/internal/edgepath"
	"github.com/keygate-dev/keygate/xds/model"
)

// Document is the targets file as written by operators (schema: xds/README.md). It is
// exported so that tools which write targets files (localdev) share this one definition.
type Document struct {
	Management      *Upstream        `json:"management,omitempty"`
	Auth            *Upstream        `json:"auth,omitempty"`
	OIDC            *Upstream        `json:"oidc,omitempty"`
	Clusters        []Cluster        `json:"clusters,omitempty"`
	VirtualClusters []VirtualCluster `json:"virtualClusters,omitempty"`
}

// Upstream is where a target is and how the edge authenticates to it. Each PEM item comes from
// a file (…File) or inline (…Data), not both.
type Upstream struct {
	URL            string `json:"url"`
	CAFile         string `json:"caFile,omitempty"`
	CAData         string `json:"caData,omitempty"`
	ClientCertFile string `json:"clientCertFile,omitempty"`
	ClientCertData string `json:"clientCertData,omitempty"`
	ClientKeyFile  string `json:"clientKeyFile,omitempty"`
	ClientKeyData  string `json:"clientKeyData,omitempty"`
	TLSServerName  string `json:"tlsServerName,omitempty"`
}

// Cluster is a connected cluster, with its Grafana if it has one and the namespaces that are
// spaces of a project.
type Cluster struct {
	Name     string `json:"name"`
	Upstream `json:",inline"`
	Grafana  *Upstream `json:"grafana,omitempty"`
	Spaces   []Space   `json:"spaces,omitempty"`
}

// Space is a namespace of a connected cluster that belongs to a project (in Kubernetes, the
// namespace's loft.sh/project label).
type Space struct {
	Name    string `json:"name"`
	Project string `json:"project"`
}

// VirtualCluster is a virtual cluster in a namespace of a connected cluster.
type VirtualCluster struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	Cluster   string `json:"cluster"`
	Project   string `json:"project,omitempty"`
	Upstream  `json:",inline"`
}

// Load reads the targets file at path into a model. Relative file names in it resolve against
// the file's directory. The error lists every problem found, each naming its entry and field.
func Load(path string) (model.Model, error) {
	m, _, err := load(path)
	return m, err
}

// load is Load that also returns every file the model was read from (the targets file and the
// PEM files it names), so that the Watcher can watch them all.
func load(path string) (model.Model, []string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return model.Model{}, nil, fmt.Errorf("load targets %s: %w", path, err)
	}
	data, err := os.ReadFile(abs)
	if err != nil {
		return model.Model{}, []string{abs}, fmt.Errorf("load targets: %w", err)
	}
	l := &loader{dir: filepath.Dir(abs), files: []string{abs}}
	m, err := l.parse(data)
	if err != nil {
		return model.Model{}, l.files, fmt.Errorf("load targets %s: %w", path, err)
	}
	return m, l.files, nil
}

// loader turns a document into a model, collecting every error rather than stopping at the
// first, so that an operator fixes a file in one go.
type loader struct {
	dir   string
	files []string
	errs  []error
}

func (l *loader) errorf(format string, args ...any) {
	l.errs = append(l.errs, fmt.Errorf(format, args...))
}

func (l *loader) parse(data []byte) (model.Model, error) {
	// YAMLToJSONStrict refuses duplicate keys, which YAML parsers otherwise resolve silently.
	jsonData, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return model.Model{}, fmt.Errorf("not valid YAML: %w", err)
	}
	// A file with no document at all is far more likely a write caught half-way (truncate, then
	// write) than a wish to remove every route, so it is refused.
	if t := bytes.TrimSpace(jsonData); len(t) == 0 || string(t) == "null" {
		return model.Model{}, errors.New("the file is empty; to serve no targets write `clusters: []`")
	}
	// Field names match case-sensitively (encoding/json would take `cafile` for `caFile`), and
	// unknown fields are errors: a typo must not silently drop a setting.
	var doc Document
	strictErrs, err := sigsjson.UnmarshalStrict(jsonData, &doc)
	if err != nil {
		return model.Model{}, fmt.Errorf("not a valid targets file (schema: xds/README.md): %w", err)
	}
	if len(strictErrs) > 0 {
		return model.Model{}, fmt.Errorf("not a valid targets file (schema: xds/README.md): %w", errors.Join(strictErrs...))
	}

	var targets []model.Target
	add := func(where string, ref edgepath.Ref, u *Upstream) {
		if err := ref.Validate(); err != nil {
			l.errorf("%s: name: %w", where, err)
			return
		}
		up, ok := l.upstream(where, u)
		if ok {
			targets = append(targets, model.Target{Ref: ref, Upstream: up})
		}
	}
	for _, s := range []struct {
		name string
		kind edgepath.Kind
		u    *Upstream
	}{{"management", edgepath.KindManagement, doc.Management}, {"auth", edgepath.KindAuth, doc.Auth}, {"oidc", edgepath.KindOIDC, doc.OIDC}} {
		if s.u != nil {
			add(s.name, edgepath.Ref{Kind: s.kind}, s.u)
		}
	}

	clusters := map[string]string{} // name → where it was first defined
	for i, c := range doc.Clusters {
		where := fmt.Sprintf("clusters[%d] (%s)", i, c.Name)
		if first, dup := clusters[c.Name]; dup {
			l.errorf("%s: name: duplicate of %s", where, first)
			continue
		}
		clusters[c.Name] = fmt.Sprintf("clusters[%d]", i)
		spaces := map[string]string{}
		for j, sp := range c.Spaces {
			swhere := fmt.Sprintf("%s: spaces[%d] (%s)", where, j, sp.Name)
			if errs := validation.IsDNS1123Label(sp.Name); len(errs) > 0 {
				l.errorf("%s: name: %s", swhere, strings.Join(errs, "; "))
			} else if errs := validation.IsDNS1123Label(sp.Project); len(errs) > 0 {
				l.errorf("%s: project %q: %s", swhere, sp.Project, strings.Join(errs, "; "))
			} else if _, dup := spaces[sp.Name]; dup {
				l.errorf("%s: name: duplicate space", swhere)
			} else {
				spaces[sp.Name] = sp.Project
			}
		}
		add(where, edgepath.Ref{Kind: edgepath.KindCluster, Cluster: c.Name, Spaces: edgepath.FormatSpaces(spaces)}, &c.Upstream)
		if c.Grafana != nil {
			add(where+": grafana", edgepath.Ref{Kind: edgepath.KindGrafana, Cluster: c.Name}, c.Grafana)
		}
	}

	vclusters := map[string]string{}
	for i, v := range doc.VirtualClusters {
		where := fmt.Sprintf("virtualClusters[%d] (%s)", i, v.Name)
		ref := edgepath.Ref{Kind: edgepath.KindVirtualCluster, Cluster: v.Cluster, Namespace: v.Namespace, VirtualCluster: v.Name, Project: v.Project}
		key := ref.Prefix() // unique per (cluster, namespace, name): the route the edge serves
		if first, dup := vclusters[key]; dup {
			l.errorf("%s: name: duplicate of %s (same cluster, namespace and name)", where, first)
			continue
		}
		vclusters[key] = fmt.Sprintf("virtualClusters[%d]", i)
		if _, ok := clusters[v.Cluster]; v.Cluster != "" && !ok {
			l.errorf("%s: cluster: %q is not the name of an entry in clusters", where, v.Cluster)
			continue
		}
		add(where, ref, &v.Upstream)
	}

	if err := errors.Join(l.errs...); err != nil {
		return model.Model{}, err
	}
	return model.New(targets...), nil
}

// upstream checks u and reads the PEM items it names; errors are recorded, prefixed with where.
func (l *loader) upstream(where string, u *Upstream) (model.Upstream, bool) {
	before := len(l.errs)
	fail := func(field string, err error) { l.errorf("%s: %s: %w", where, field, err) }

	parsed, err := parseURL(u.URL)
	if err != nil {
		fail("url", err)
		return model.Upstream{}, false
	}
	out := model.Upstream{URL: parsed, ServerName: u.TLSServerName}
	var caErr, certErr, keyErr error
	out.CA, caErr = l.pem(u.CAFile, u.CAData, "caFile", "caData")
	out.ClientCert, certErr = l.pem(u.ClientCertFile, u.ClientCertData, "clientCertFile", "clientCertData")
	out.ClientKey, keyErr = l.pem(u.ClientKeyFile, u.ClientKeyData, "clientKeyFile", "clientKeyData")
	for _, err := range []error{caErr, certErr, keyErr} {
		if err != nil {
			l.errorf("%s: %w", where, err)
		}
	}
	if len(l.errs) > before {
		return model.Upstream{}, false
	}

	if out.TLS() {
		if len(out.CA) == 0 {
			fail("caFile", errors.New("an https upstream needs caFile or caData (the edge always verifies upstream certificates)"))
		} else if err := checkCA(out.CA); err != nil {
			fail(field(u.CAFile, "caFile", "caData"), err)
		}
		if u.TLSServerName != "" && net.ParseIP(u.TLSServerName) == nil {
			if errs := validation.IsDNS1123Subdomain(u.TLSServerName); len(errs) > 0 {
				fail("tlsServerName", fmt.Errorf("%q is neither an IP address nor a DNS name: %v", u.TLSServerName, errs))
			}
		}
	} else {
		// TLS settings on a plain-HTTP upstream would be ignored: most likely the url is wrong.
		for _, s := range []struct{ name, v string }{
			{"caFile", u.CAFile + u.CAData}, {"clientCertFile", u.ClientCertFile + u.ClientCertData},
			{"clientKeyFile", u.ClientKeyFile + u.ClientKeyData}, {"tlsServerName", u.TLSServerName},
		} {
			if s.v != "" {
				fail(s.name, fmt.Errorf("set for an http upstream; use an https url or remove it"))
			}
		}
	}
	switch hasCert, hasKey := len(out.ClientCert) > 0, len(out.ClientKey) > 0; {
	case hasCert && !hasKey:
		fail("clientKeyFile", errors.New("clientCertFile is set without a client key: set clientKeyFile or clientKeyData too"))
	case hasKey && !hasCert:
		fail("clientCertFile", errors.New("clientKeyFile is set without a client certificate: set clientCertFile or clientCertData too"))
	case hasCert && hasKey:
		if _, err := tls.X509KeyPair(out.ClientCert, out.ClientKey); err != nil {
			fail(field(u.ClientCertFile, "clientCertFile", "clientCertData"), fmt.Errorf("not a matching PEM certificate and key: %w", err))
		}
	}
	return out, len(l.errs) == before
}

// field names the field a PEM item came from, for error messages.
func field(file, fileField, dataField string) string {
	if file != "" {
		return fileField
	}
	return dataField
}

// pem returns a PEM item from its file (relative to the targets file's directory) or inline data.
func (l *loader) pem(file, data, fileField, dataField string) ([]byte, error) {
	switch {
	case file != "" && data != "":
		return nil, fmt.Errorf("%s and %s: set one, not both", fileField, dataField)
	case data != "":
		return []byte(data), nil
	case file == "":
		return nil, nil
	}
	p := file
	if !filepath.IsAbs(p) {
		p = filepath.Join(l.dir, p)
	}
	l.files = append(l.files, p)
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", fileField, err)
	}
	return b, nil
}

// checkCA makes sure a CA bundle holds at least one certificate and nothing that is not one.
func checkCA(data []byte) error {
	n := 0
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return fmt.Errorf("holds a PEM %q block; a CA bundle holds certificates only", block.Type)
		}
		if _, err := x509.ParseCertificate(block.Bytes); err != nil {
			return fmt.Errorf("certificate %d: %w", n+1, err)
		}
		n++
	}
	if n == 0 {
		return errors.New("no PEM certificate found")
	}
	return nil
}

// parseURL accepts http and https URLs with a host and an optional port, nothing else: the edge
// strips the target's prefix and forwards the rest, so a base path would be silently dropped.
func parseURL(raw string) (*url.URL, error) {
	if raw == "" {
		return nil, errors.New("is required")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("%q: scheme must be http or https", raw)
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("%q: has no host", raw)
	}
	if u.User != nil {
		return nil, fmt.Errorf("%q: must not carry credentials; use clientCertFile and clientKeyFile", raw)
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("%q: must not have a path, query or fragment (the edge forwards the path after the target's prefix as it is)", raw)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("%q: port %q is not a number from 1 to 65535", raw, p)
		}
	}
	u.Path = ""
	return u, nil
}
