// Package edgepath owns the grammar of the edge's path prefixes and the identity of a target
// (which upstream a request is for). xds uses it to build routes and to fill each route's
// ext_authz context_extensions; extauthz reads a target back from those extensions, and parses a
// path itself only when a Check carries none (an Envoy that our xds does not program).
package edgepath

import (
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Kind is the kind of upstream a target is.
type Kind string

// The kinds of target, one per prefix of the edge.
const (
	// KindManagement is the management API at /kubernetes/management/.
	KindManagement Kind = "management"
	// KindCluster is a connected cluster's API server at /kubernetes/cluster/<cluster>/.
	KindCluster Kind = "cluster"
	// KindVirtualCluster is a virtual cluster at
	// /kubernetes/virtualcluster/<cluster>/<namespace>/<vcluster>/.
	KindVirtualCluster Kind = "virtualcluster"
	// KindGrafana is a connected cluster's Grafana at /grafana/<cluster>/.
	KindGrafana Kind = "grafana"
	// KindAuth is the public login endpoints at /auth/.
	KindAuth Kind = "auth"
	// KindOIDC is the public OIDC provider at /oidc/.
	KindOIDC Kind = "oidc"
	// KindNone is a path that names no target; the key is still checked, then the edge answers 404.
	KindNone Kind = "none"
)

// Public reports whether requests to targets of this kind need no access key.
func (k Kind) Public() bool { return k == KindAuth || k == KindOIDC }

// Kubernetes reports whether the upstream is a Kubernetes API server (identity by impersonation).
func (k Kind) Kubernetes() bool { return k == KindCluster || k == KindVirtualCluster }

// Ref identifies a target: everything extauthz needs to judge a request for it.
type Ref struct {
	Kind Kind
	// Cluster is the connected cluster of a cluster, virtual cluster or Grafana target.
	Cluster string
	// Namespace is the namespace (in Cluster) that a virtual cluster runs in.
	Namespace string
	// VirtualCluster is the name of a virtual cluster.
	VirtualCluster string
	// Project is the project a virtual cluster belongs to, if any.
	Project string
	// Spaces are the namespaces of a connected cluster that are spaces of a project, encoded
	// as "namespace=project,..." sorted by namespace (see FormatSpaces). Kept as a string so
	// that Ref stays comparable and travels as one context extension.
	Spaces string
}

// Context extension keys that xds sets on every route and extauthz reads.
const (
	ExtKind           = "target.kind"
	ExtCluster        = "target.cluster"
	ExtNamespace      = "target.namespace"
	ExtVirtualCluster = "target.virtualCluster"
	ExtProject        = "target.project"
	ExtSpaces         = "target.spaces"
	ExtPrefix         = "target.prefix"
)

// Path prefixes of the edge.
const (
	PrefixManagement     = "/kubernetes/management/"
	PrefixCluster        = "/kubernetes/cluster/"
	PrefixVirtualCluster = "/kubernetes/virtualcluster/"
	PrefixGrafana        = "/grafana/"
	PrefixAuth           = "/auth/"
	PrefixOIDC           = "/oidc/"
)

// Prefix is the path prefix that routes to the target, with its trailing slash. The edge strips
// it before forwarding. KindNone has no prefix.
func (r Ref) Prefix() string {
	switch r.Kind {
	case KindManagement:
		return PrefixManagement
	case KindCluster:
		return PrefixCluster + r.Cluster + "/"
	case KindVirtualCluster:
		return PrefixVirtualCluster + r.Cluster + "/" + r.Namespace + "/" + r.VirtualCluster + "/"
	case KindGrafana:
		return PrefixGrafana + r.Cluster + "/"
	case KindAuth:
		return PrefixAuth
	case KindOIDC:
		return PrefixOIDC
	}
	return ""
}

// String names the target for logs and denial messages, e.g. `cluster "demo"`.
func (r Ref) String() string {
	switch r.Kind {
	case KindCluster:
		return fmt.Sprintf("cluster %q", r.Cluster)
	case KindVirtualCluster:
		return fmt.Sprintf("virtual cluster %q in namespace %q of cluster %q", r.VirtualCluster, r.Namespace, r.Cluster)
	case KindGrafana:
		return fmt.Sprintf("grafana of cluster %q", r.Cluster)
	}
	return string(r.Kind)
}

// Validate checks that the names in r can appear in a path and in Envoy resource names.
func (r Ref) Validate() error {
	check := func(field, v string, f func(string) []string) error {
		if v == "" {
			return fmt.Errorf("%s target: %s is empty", r.Kind, field)
		}
		if errs := f(v); len(errs) > 0 {
			return fmt.Errorf("%s target: %s %q is not valid: %s", r.Kind, field, v, strings.Join(errs, "; "))
		}
		return nil
	}
	switch r.Kind {
	case KindManagement, KindAuth, KindOIDC, KindNone:
		return nil
	case KindCluster, KindGrafana:
		if err := check("cluster", r.Cluster, isSubdomain); err != nil {
			return err
		}
		if _, err := ParseSpaces(r.Spaces); err != nil {
			return fmt.Errorf("%s target %q: spaces: %w", r.Kind, r.Cluster, err)
		}
		return nil
	case KindVirtualCluster:
		if err := check("cluster", r.Cluster, isSubdomain); err != nil {
			return err
		}
		if err := check("namespace", r.Namespace, isLabel); err != nil {
			return err
		}
		if err := check("virtual cluster name", r.VirtualCluster, isSubdomain); err != nil {
			return err
		}
		if r.Project != "" {
			return check("project", r.Project, isLabel)
		}
		return nil
	}
	return fmt.Errorf("unknown target kind %q", r.Kind)
}

// isSubdomain and isLabel are Kubernetes' DNS-1123 subdomain and label checks with a fast path:
// extauthz validates the target of every check (FromContextExtensions), and Kubernetes' checks
// run a regular expression. A name the fast path accepts is one Kubernetes accepts; any other
// goes to Kubernetes' check, which decides and words the error.
func isSubdomain(s string) []string {
	if len(s) <= validation.DNS1123SubdomainMaxLength && dnsLabels(s, true) {
		return nil
	}
	return validation.IsDNS1123Subdomain(s)
}

func isLabel(s string) []string {
	if len(s) <= validation.DNS1123LabelMaxLength && dnsLabels(s, false) {
		return nil
	}
	return validation.IsDNS1123Label(s)
}

// dnsLabels reports whether s is one DNS-1123 label (dots false) or several joined by dots
// (dots true): lower-case letters, digits and '-', each label starting and ending with a letter
// or digit. Lengths are the caller's.
func dnsLabels(s string, dots bool) bool {
	start := 0
	for i := 0; i <= len(s); i++ {
		if i < len(s) && s[i] != '.' {
			c := s[i]
			if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
				return false
			}
			continue
		}
		if i < len(s) && !dots {
			return false
		}
		label := s[start:i]
		if label == "" || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		start = i + 1
	}
	return true
}

// FormatSpaces encodes a namespace → project map for Ref.Spaces.
func FormatSpaces(spaces map[string]string) string {
	names := make([]string, 0, len(spaces))
	for ns := range spaces {
		names = append(names, ns)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, ns := range names {
		parts[i] = ns + "=" + spaces[ns]
	}
	return strings.Join(parts, ",")
}

// ParseSpaces decodes Ref.Spaces. Namespaces and projects are DNS labels, so neither "=" nor
// "," can appear in them.
func ParseSpaces(s string) (map[string]string, error) {
	spaces := map[string]string{}
	if s == "" {
		return spaces, nil
	}
	for _, part := range strings.Split(s, ",") {
		ns, project, ok := strings.Cut(part, "=")
		if !ok {
			return nil, fmt.Errorf("%q is not namespace=project", part)
		}
		if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
			return nil, fmt.Errorf("namespace %q: %s", ns, strings.Join(errs, "; "))
		}
		if errs := validation.IsDNS1123Label(project); len(errs) > 0 {
			return nil, fmt.Errorf("project %q of space %q: %s", project, ns, strings.Join(errs, "; "))
		}
		if _, dup := spaces[ns]; dup {
			return nil, fmt.Errorf("space %q appears twice", ns)
		}
		spaces[ns] = project
	}
	return spaces, nil
}

// SpaceProject returns the project of namespace ns if ns is a space of the cluster.
func (r Ref) SpaceProject(ns string) (string, bool) {
	for _, part := range strings.Split(r.Spaces, ",") {
		if name, project, ok := strings.Cut(part, "="); ok && name == ns {
			return project, true
		}
	}
	return "", false
}

// ContextExtensions encodes r for a route's ext_authz per-route check settings.
func (r Ref) ContextExtensions() map[string]string {
	ext := map[string]string{ExtKind: string(r.Kind)}
	set := func(k, v string) {
		if v != "" {
			ext[k] = v
		}
	}
	set(ExtCluster, r.Cluster)
	set(ExtNamespace, r.Namespace)
	set(ExtVirtualCluster, r.VirtualCluster)
	set(ExtProject, r.Project)
	set(ExtSpaces, r.Spaces)
	set(ExtPrefix, r.Prefix())
	return ext
}

// FromContextExtensions decodes a Ref that xds put on a route. ok is false when the extensions
// carry no target at all (a Check from an Envoy that our xds does not program).
func FromContextExtensions(ext map[string]string) (r Ref, ok bool, err error) {
	kind, found := ext[ExtKind]
	if !found {
		return Ref{}, false, nil
	}
	r = Ref{
		Kind:           Kind(kind),
		Cluster:        ext[ExtCluster],
		Namespace:      ext[ExtNamespace],
		VirtualCluster: ext[ExtVirtualCluster],
		Project:        ext[ExtProject],
		Spaces:         ext[ExtSpaces],
	}
	if err := r.Validate(); err != nil {
		return Ref{}, true, fmt.Errorf("route context extensions: %w", err)
	}
	return r, true, nil
}

// Parse splits an (already normalised) request path into the target it names and the path the
// upstream sees, query string kept. A path naming no target gives KindNone and the path
// unchanged. A prefix without its trailing slash (e.g. /kubernetes/cluster/demo) names the target
// with rest "/".
func Parse(rawPath string) (r Ref, rest string) {
	path, query := rawPath, ""
	if i := strings.IndexByte(rawPath, '?'); i >= 0 {
		path, query = rawPath[:i], rawPath[i:]
	}
	segs := strings.Split(strings.TrimPrefix(path, "/"), "/")
	at := func(i int) string {
		if i < len(segs) {
			return segs[i]
		}
		return ""
	}
	after := func(n int) string {
		if n >= len(segs) {
			return "/" + query
		}
		return "/" + strings.Join(segs[n:], "/") + query
	}
	var n int
	switch {
	case at(0) == "kubernetes" && at(1) == "management":
		r, n = Ref{Kind: KindManagement}, 2
	case at(0) == "kubernetes" && at(1) == "cluster":
		r, n = Ref{Kind: KindCluster, Cluster: at(2)}, 3
	case at(0) == "kubernetes" && at(1) == "virtualcluster":
		r, n = Ref{Kind: KindVirtualCluster, Cluster: at(2), Namespace: at(3), VirtualCluster: at(4)}, 5
	case at(0) == "grafana":
		r, n = Ref{Kind: KindGrafana, Cluster: at(1)}, 2
	case at(0) == "auth":
		r, n = Ref{Kind: KindAuth}, 1
	case at(0) == "oidc":
		r, n = Ref{Kind: KindOIDC}, 1
	default:
		return Ref{Kind: KindNone}, rawPath
	}
	if r.Validate() != nil {
		return Ref{Kind: KindNone}, rawPath
	}
	return r, after(n)
}

// Normal checks that a request path (query string allowed) is in the form the edge's Envoy
// gives every path before routing it (normalize_path, merge_slashes, escaped slashes
// rejected): no empty, "." or ".." segment, also percent-encoded, no encoded slash or backslash,
// no backslash, no fragment. Parse reads only such paths the way Envoy routes them; extauthz
// refuses any other when no route tells it the target (an Envoy that our xds does not program,
// which may normalise less). A trailing slash is fine.
func Normal(rawPath string) error {
	path, _, _ := strings.Cut(rawPath, "?")
	if !strings.HasPrefix(path, "/") {
		return fmt.Errorf("the path %q does not start with /", path)
	}
	if strings.ContainsAny(path, "\\#") {
		return errors.New("the path holds a backslash or a fragment")
	}
	lower := strings.ToLower(path)
	if strings.Contains(lower, "%2f") || strings.Contains(lower, "%5c") {
		return errors.New("the path holds an escaped slash (%2F or %5C)")
	}
	segs := strings.Split(path[1:], "/")
	for i, seg := range segs {
		if seg == "" && i < len(segs)-1 {
			return errors.New("the path holds an empty segment (//)")
		}
		if dec, err := url.PathUnescape(seg); err != nil {
			return fmt.Errorf("the path holds a bad escape: %w", err)
		} else if dec == "." || dec == ".." {
			return errors.New("the path holds a . or .. segment")
		}
	}
	return nil
}

// TargetHeader is the response header that names the target a request was judged for (Ref.Name):
// xds's routes add it, and extauthz for an Envoy that sends no context_extensions. The edge
// forwards to exactly that target, which tests and operators can check.
const TargetHeader = "X-Keygate-Target"

// Name is the target's prefix without its slashes, e.g. kubernetes/cluster/demo, or the kind
// ("none") for a path that names no target.
func (r Ref) Name() string {
	if p := strings.Trim(r.Prefix(), "/"); p != "" {
		return p
	}
	return string(r.Kind)
}

// Headers a client could send to claim an identity upstream, which the edge's Envoy as xds
// programs it strips from every request before any filter sees it (an early header mutation,
// whatever the route): every header starting with one of StrippedHeaderPrefixes (Kubernetes
// impersonation; the front-proxy headers the management API reads), and
// DefaultGrafanaAuthProxyHeaders. extauthz removes, in its answers, what an Envoy it cannot
// count on for this (one without context_extensions) may have let through, and on Grafana's
// routes every auth-proxy header it is configured with.
var (
	StrippedHeaderPrefixes = []string{"impersonate-", "x-remote-"}
	// DefaultGrafanaAuthProxyHeaders are the header names Grafana's documentation gives for its
	// auth proxy: header_name's default, and the names its example maps the five attributes it
	// can read to (Name, Role, Email, Groups, and Login, which its code also reads).
	DefaultGrafanaAuthProxyHeaders = []string{
		"X-WEBAUTH-USER", "X-WEBAUTH-EMAIL", "X-WEBAUTH-NAME", "X-WEBAUTH-LOGIN", "X-WEBAUTH-ROLE", "X-WEBAUTH-GROUPS",
	}
)

// StrippedByEdge reports whether xds's Envoy strips a client's header of this name (any letter
// case) before ext_authz.
func StrippedByEdge(name string) bool {
	for _, p := range StrippedHeaderPrefixes {
		if len(name) >= len(p) && strings.EqualFold(name[:len(p)], p) {
			return true
		}
	}
	for _, h := range DefaultGrafanaAuthProxyHeaders {
		if strings.EqualFold(name, h) {
			return true
		}
	}
	return false
}

// Identity headers that carry several values (one Impersonate-Group line per group) cannot be
// set by Envoy's ext_authz filter: it joins appended values with commas, and Kubernetes reads
// "a,b" as one group. So extauthz also returns them in the dynamic metadata of its OK response,
// under MetadataHeaderLists, as {header name: [values]}, and a Lua filter that xds installs
// after ext_authz replaces each such header with one line per value. Clients cannot forge
// dynamic metadata.
const (
	// MetadataNamespace is the namespace ext_authz's dynamic metadata lands in.
	MetadataNamespace = "envoy.filters.http.ext_authz"
	// MetadataHeaderLists is the metadata field holding the multi-valued headers.
	MetadataHeaderLists = "header_lists"
)

// HeaderListsLua is the source of the Lua filter that follows ext_authz: it writes the
// multi-valued identity headers that extauthz returned in its dynamic metadata
// (MetadataHeaderLists) as one header line per value, replacing whatever the request had under
// those names. ext_authz cannot do this itself: it joins appended values with commas. Without
// metadata (public routes, denials) it does nothing. xds installs it; a static Envoy
// configuration (envoy/static) and an Istio EnvoyFilter (manifests/istio) carry a copy.
const HeaderListsLua = `function envoy_on_request(handle)
  local meta = handle:streamInfo():dynamicMetadata():get("` + MetadataNamespace + `")
  if meta == nil then return end
  local lists = meta["` + MetadataHeaderLists + `"]
  if lists == nil then return end
  local headers = handle:headers()
  for name, values in pairs(lists) do
    headers:remove(name)
    for _, value in ipairs(values) do
      headers:add(name, value)
    end
  end
end
`
