// Package file is the targets-file source of xds: it loads a YAML file describing the edge's
// targets into a model.Model (Load), and watches it for changes (Watcher). The schema is
// documented in xds/README.md; unknown fields are refused so that a typo cannot silently drop a
// setting, and every upstream is checked before anything is served.
package file

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"

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
	dir     string
	files   []string
	errs    []error
	targets []model.Target
}

func (l *loader) errorf(format string, args ...any) {
	l.errs = append(l.errs, fmt.Errorf(format, args...))
}

// errRecorded is what the loader's steps return when they have recorded their errors already.
var errRecorded = errors.New("recorded")

func (l *loader) parse(data []byte) (model.Model, error) {
	doc, err := decode(data)
	if err != nil {
		return model.Model{}, err
	}
	l.addStatic(doc)
	clusters := l.addClusters(doc.Clusters)
	l.addVirtualClusters(doc.VirtualClusters, clusters)
	if err := errors.Join(l.errs...); err != nil {
		return model.Model{}, err
	}
	return model.New(l.targets...), nil
}

// decode reads the document strictly: a file that would not say what its author meant is
// refused as a whole, before any entry is looked at.
func decode(data []byte) (Document, error) {
	// YAMLToJSONStrict refuses duplicate keys, which YAML parsers otherwise resolve silently.
	jsonData, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return Document{}, fmt.Errorf("not valid YAML: %w", err)
	}
	// A file with no document at all is far more likely a write caught half-way (truncate, then
	// write) than a wish to remove every route, so it is refused.
	if t := bytes.TrimSpace(jsonData); len(t) == 0 || string(t) == "null" {
		return Document{}, errors.New("the file is empty; to serve no targets write `clusters: []`")
	}
	// Field names match case-sensitively (encoding/json would take `cafile` for `caFile`), and
	// unknown fields are errors: a typo must not silently drop a setting.
	var doc Document
	strictErrs, err := sigsjson.UnmarshalStrict(jsonData, &doc)
	if err != nil {
		return Document{}, fmt.Errorf("not a valid targets file (schema: xds/README.md): %w", err)
	}
	if len(strictErrs) > 0 {
		return Document{}, fmt.Errorf("not a valid targets file (schema: xds/README.md): %w", errors.Join(strictErrs...))
	}
	return doc, nil
}

// addStatic adds the targets that have no name: management, auth and oidc.
func (l *loader) addStatic(doc Document) {
	for _, s := range []struct {
		name string
		kind edgepath.Kind
		u    *Upstream
	}{{"management", edgepath.KindManagement, doc.Management}, {"auth", edgepath.KindAuth, doc.Auth}, {"oidc", edgepath.KindOIDC, doc.OIDC}} {
		if s.u != nil {
			l.add(s.name, edgepath.Ref{Kind: s.kind}, s.u)
		}
	}
}

// addClusters adds each cluster and its Grafana, and returns where each cluster name was first
// defined, for the virtual clusters that name it.
func (l *loader) addClusters(cs []Cluster) map[string]string {
	clusters := map[string]string{} // name → where it was first defined
	for i, c := range cs {
		where := fmt.Sprintf("clusters[%d] (%s)", i, c.Name)
		if first, dup := clusters[c.Name]; dup {
			l.errorf("%s: name: duplicate of %s", where, first)
			continue
		}
		clusters[c.Name] = fmt.Sprintf("clusters[%d]", i)
		spaces := l.spaces(where, c.Spaces)
		l.add(where, edgepath.Ref{Kind: edgepath.KindCluster, Cluster: c.Name, Spaces: edgepath.FormatSpaces(spaces)}, &c.Upstream)
		if c.Grafana != nil {
			l.add(where+": grafana", edgepath.Ref{Kind: edgepath.KindGrafana, Cluster: c.Name}, c.Grafana)
		}
	}
	return clusters
}

// spaces returns a cluster's good spaces; the others are errors of the file.
func (l *loader) spaces(where string, list []Space) map[string]string {
	ms := make([]model.Space, len(list))
	for i, sp := range list {
		ms[i] = model.Space(sp)
	}
	spaces, errs := model.SpacesOf(ms)
	for _, e := range errs {
		if e.Duplicate {
			// Every error of a targets file names its field.
			l.errorf("%s: spaces[%d] (%s): name: duplicate space", where, e.Index, e.Space.Name)
			continue
		}
		l.errorf("%s: %w", where, e)
	}
	return spaces
}

// addVirtualClusters adds each virtual cluster of a cluster in clusters.
func (l *loader) addVirtualClusters(vcs []VirtualCluster, clusters map[string]string) {
	vclusters := map[string]string{}
	for i, v := range vcs {
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
		l.add(where, ref, &v.Upstream)
	}
}

// add makes the target of ref and u, or records why it cannot, prefixed with where.
func (l *loader) add(where string, ref edgepath.Ref, u *Upstream) {
	t, err := model.NewTarget(ref, func() (model.Upstream, error) { return l.upstream(where, u) })
	var refErr *model.RefError
	var rules model.UpstreamErrors
	switch {
	case err == nil:
		l.targets = append(l.targets, t)
	case errors.As(err, &refErr):
		l.errorf("%s: name: %w", where, refErr.Err)
	case errors.As(err, &rules):
		for _, e := range rules {
			name, msg := describe(e, u)
			l.errorf("%s: %s: %s", where, name, msg)
		}
	}
}

// upstream reads u's URL and the PEM items it names; errors are recorded, prefixed with where.
func (l *loader) upstream(where string, u *Upstream) (model.Upstream, error) {
	parsed, err := model.ParseURL(u.URL, "http", "https")
	if errors.Is(err, model.ErrURLCredentials) {
		err = fmt.Errorf("%w; use clientCertFile and clientKeyFile", err)
	}
	if err != nil {
		l.errorf("%s: url: %w", where, err)
		return model.Upstream{}, errRecorded
	}
	out := model.Upstream{URL: parsed, ServerName: u.TLSServerName}
	var caErr, certErr, keyErr error
	out.CA, caErr = l.pem(u.CAFile, u.CAData, "caFile", "caData")
	out.ClientCert, certErr = l.pem(u.ClientCertFile, u.ClientCertData, "clientCertFile", "clientCertData")
	out.ClientKey, keyErr = l.pem(u.ClientKeyFile, u.ClientKeyData, "clientKeyFile", "clientKeyData")
	failed := false
	for _, err := range []error{caErr, certErr, keyErr} {
		if err != nil {
			l.errorf("%s: %w", where, err)
			failed = true
		}
	}
	if failed {
		return model.Upstream{}, errRecorded
	}
	return out, nil
}

// describe words a broken upstream rule in the targets file's terms: the field to fix, and what
// is wrong with it.
func describe(e *model.UpstreamError, u *Upstream) (fieldName string, msg string) {
	switch e.Rule {
	case model.RuleNeedsCA:
		return "caFile", "an https upstream needs caFile or caData (the edge always verifies upstream certificates)"
	case model.RuleCA:
		return field(u.CAFile, "caFile", "caData"), e.Err.Error()
	case model.RuleServerName:
		return "tlsServerName", e.Err.Error()
	case model.RuleNoTLSOverHTTP:
		// TLS settings on a plain-HTTP upstream would be ignored: most likely the url is wrong.
		names := map[model.Field]string{model.FieldCA: "caFile", model.FieldClientCert: "clientCertFile",
			model.FieldClientKey: "clientKeyFile", model.FieldServerName: "tlsServerName"}
		return names[e.Field], "set for an http upstream; use an https url or remove it"
	case model.RuleCertNeedsKey:
		return "clientKeyFile", "clientCertFile is set without a client key: set clientKeyFile or clientKeyData too"
	case model.RuleKeyNeedsCert:
		return "clientCertFile", "clientKeyFile is set without a client certificate: set clientCertFile or clientCertData too"
	case model.RuleKeyPair:
		return field(u.ClientCertFile, "clientCertFile", "clientCertData"), "not a matching PEM certificate and key: " + e.Err.Error()
	}
	return "upstream", e.Error()
}

// field names the field a PEM item came from, for error messages.
func field(file, fileField, dataField string) string {
	if file != "" {
		return fileField
	}
	return dataField
}

// pem returns a PEM item from its file (relative to the targets file's directory) or inline
// data; nil if it names neither.
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
