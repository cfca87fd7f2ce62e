// Package translate turns the model of the edge's targets into Envoy resources: one HTTPS
// listener, a route configuration and a routing scope per target plus one shared by the static
// targets (see scopes.go), one cluster per target and the SDS secrets that hold the serving
// certificate and every upstream credential (see secrets.go). Translate is a pure function (no
// I/O, same input → same output) so that golden files can pin its output, and it validates every
// resource it returns.
package translate

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/keygate-dev/keygate/xds/model"
)

// Names of the resources every configuration has. Envoy's stats use them.
const (
	// ListenerName is the edge's one HTTPS listener.
	ListenerName = "https"
	// RouteConfigName is the route configuration of the static scope: the management API, the
	// public endpoints and the not-found route. Every other target has its own (see scopes.go).
	RouteConfigName = "edge"
	// StatPrefix prefixes the HTTP connection manager's stats (http.edge.*).
	StatPrefix = "edge"
)

// Defaults of Options.
const (
	DefaultExtAuthzCluster = "extauthz"
	DefaultExtAuthzTimeout = 2 * time.Second
)

// Options are the settings of the edge that do not come from the targets.
type Options struct {
	// ListenAddress and ListenPort are where Envoy accepts HTTPS, e.g. 0.0.0.0 and 8443.
	ListenAddress string
	ListenPort    uint32
	// ServingCert and ServingKey are the edge's PEM serving certificate (chain) and key.
	ServingCert, ServingKey []byte
	// ExtAuthzCluster is the Envoy cluster of the ext_authz gRPC service (defined in Envoy's
	// bootstrap); empty means DefaultExtAuthzCluster.
	ExtAuthzCluster string
	// ExtAuthzTimeout bounds each authorisation check; 0 means DefaultExtAuthzTimeout.
	ExtAuthzTimeout time.Duration
	// Limits bound each client; a zero field takes DefaultLimits' value.
	Limits Limits
}

func (o Options) withDefaults() Options {
	if o.ExtAuthzCluster == "" {
		o.ExtAuthzCluster = DefaultExtAuthzCluster
	}
	if o.ExtAuthzTimeout == 0 {
		o.ExtAuthzTimeout = DefaultExtAuthzTimeout
	}
	o.Limits = o.Limits.withDefaults()
	return o
}

func (o Options) validate() error {
	var errs []error
	if o.ListenAddress == "" {
		errs = append(errs, errors.New("listen address is empty"))
	}
	if o.ListenPort == 0 || o.ListenPort > 65535 {
		errs = append(errs, fmt.Errorf("listen port %d is not from 1 to 65535", o.ListenPort))
	}
	if len(o.ServingCert) == 0 || len(o.ServingKey) == 0 {
		errs = append(errs, errors.New("the serving certificate and key are required"))
	}
	if o.ExtAuthzTimeout < 0 {
		errs = append(errs, fmt.Errorf("ext_authz timeout %s is negative", o.ExtAuthzTimeout))
	}
	if err := o.Limits.validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Resources are the Envoy resources of one configuration of the edge.
type Resources struct {
	Listeners []*listenerv3.Listener
	// ScopedRoutes are the routing scopes, each naming the route configuration of the same
	// name: the static scope first, then one per target, in target order.
	ScopedRoutes []*routev3.ScopedRouteConfiguration
	// Routes are the route configurations, in the order of their scopes.
	Routes   []*routev3.RouteConfiguration
	Clusters []*clusterv3.Cluster
	// Secrets are the SDS secrets the listener and the clusters refer to by name: the serving
	// certificate first, then each target's, in target order.
	Secrets []*tlsv3.Secret
}

// ByType returns the resources keyed by xDS type, as go-control-plane's snapshots take them.
func (r Resources) ByType() map[resource.Type][]types.Resource {
	out := map[resource.Type][]types.Resource{
		resource.ListenerType:    {},
		resource.ScopedRouteType: {},
		resource.RouteType:       {},
		resource.ClusterType:     {},
		resource.SecretType:      {},
	}
	for _, l := range r.Listeners {
		out[resource.ListenerType] = append(out[resource.ListenerType], l)
	}
	for _, sc := range r.ScopedRoutes {
		out[resource.ScopedRouteType] = append(out[resource.ScopedRouteType], sc)
	}
	for _, rc := range r.Routes {
		out[resource.RouteType] = append(out[resource.RouteType], rc)
	}
	for _, c := range r.Clusters {
		out[resource.ClusterType] = append(out[resource.ClusterType], c)
	}
	for _, sec := range r.Secrets {
		out[resource.SecretType] = append(out[resource.SecretType], sec)
	}
	return out
}

// validator is what protoc-gen-validate generates on every Envoy message.
type validator interface{ ValidateAll() error }

// Translate returns the Envoy resources that serve m with options o. Every resource passes
// Envoy's own constraints (ValidateAll) or Translate fails: a configuration Envoy would reject
// is never published.
func Translate(m model.Model, o Options) (Resources, error) {
	t, err := NewTranslator(o)
	if err != nil {
		return Resources{}, err
	}
	return t.Translate(m)
}

// A Translator translates one model after another, as Translate does, and reuses the resources
// of every target that has not changed since its previous translation: the same messages, not
// built, validated and checked again. At 10,000 targets a one-target change then costs the
// translation of one target instead of 10,000. Its output must not be modified: the next
// translation may return the same messages. A Translator is not safe for concurrent use.
type Translator struct {
	listener *listenerv3.Listener
	serving  *tlsv3.Secret
	// listenerRefs are the secrets the listener refers to.
	listenerRefs []string
	// targets are the previous translation's targets, by fingerprint.
	targets map[string]*targetResources
	// limits give the routes their stream bounds (streams.go).
	limits Limits
}

// targetResources are the resources of one target, validated.
type targetResources struct {
	cluster *clusterv3.Cluster
	secrets []*tlsv3.Secret
	// clusterRefs are the secrets the cluster refers to.
	clusterRefs []string
	// Either the target has a scope and a route configuration of its own, or its routes go
	// into the static scope.
	scope  *routev3.ScopedRouteConfiguration
	config *routev3.RouteConfiguration
	routes []*routev3.Route
}

// NewTranslator checks o and builds what depends on it alone (the listener and the serving
// certificate's secret).
func NewTranslator(o Options) (*Translator, error) {
	o = o.withDefaults()
	if err := o.validate(); err != nil {
		return nil, fmt.Errorf("translate: options: %w", err)
	}
	l, err := httpsListener(o)
	if err != nil {
		return nil, fmt.Errorf("translate: listener: %w", err)
	}
	if err := l.ValidateAll(); err != nil {
		return nil, fmt.Errorf("translate: listener %q: %w", l.GetName(), err)
	}
	refs, err := sdsReferences(l)
	if err != nil {
		return nil, fmt.Errorf("translate: listener %q: %w", l.GetName(), err)
	}
	serving := tlsCertificateSecret(ServingSecretName, o.ServingCert, o.ServingKey)
	if err := serving.ValidateAll(); err != nil {
		return nil, fmt.Errorf("translate: secret %q: %w", serving.GetName(), err)
	}
	return &Translator{listener: l, serving: serving, listenerRefs: refs, limits: o.Limits}, nil
}

// Translate returns the Envoy resources that serve m. An error changes nothing: the next
// translation reuses what the last successful one built.
func (tr *Translator) Translate(m model.Model) (Resources, error) {
	res := Resources{
		Listeners: []*listenerv3.Listener{tr.listener},
		Secrets:   []*tlsv3.Secret{tr.serving},
	}
	var static []*routev3.Route
	var scopes []*routev3.ScopedRouteConfiguration
	var configs []*routev3.RouteConfiguration
	refs := []secretRefs{{"listener " + strconv.Quote(tr.listener.GetName()), tr.listenerRefs}}
	next := make(map[string]*targetResources, len(m.Targets))
	for _, t := range m.Targets {
		key := fingerprint(t)
		tg, ok := tr.targets[key]
		if !ok {
			var err error
			if tg, err = translateTarget(t, tr.limits); err != nil {
				return Resources{}, fmt.Errorf("translate: %w", err)
			}
		}
		next[key] = tg
		refs = append(refs, secretRefs{"cluster " + strconv.Quote(tg.cluster.GetName()), tg.clusterRefs})
		res.Clusters = append(res.Clusters, tg.cluster)
		res.Secrets = append(res.Secrets, tg.secrets...)
		if tg.scope != nil {
			scopes = append(scopes, tg.scope)
			configs = append(configs, tg.config)
		} else {
			static = append(static, tg.routes...)
		}
	}
	nf, err := notFoundRoute()
	if err != nil {
		return Resources{}, fmt.Errorf("translate: %w", err)
	}
	staticConfig := routeConfig(RouteConfigName, append(static, nf))
	if err := staticConfig.ValidateAll(); err != nil {
		return Resources{}, fmt.Errorf("translate: route configuration %q: %w", staticConfig.GetName(), err)
	}
	staticScope := scope(RouteConfigName, StaticScopeKey)
	res.ScopedRoutes = append([]*routev3.ScopedRouteConfiguration{staticScope}, scopes...)
	res.Routes = append([]*routev3.RouteConfiguration{staticConfig}, configs...)

	if err := res.checkNames(); err != nil {
		return Resources{}, fmt.Errorf("translate: %w", err)
	}
	if err := res.checkSecretReferences(refs); err != nil {
		return Resources{}, fmt.Errorf("translate: %w", err)
	}
	tr.targets = next
	return res, nil
}

// translateTarget builds and validates the resources of one target. The routes of a target
// without a scope of its own are validated with the static route configuration they go into.
func translateTarget(t model.Target, l Limits) (*targetResources, error) {
	if err := t.Ref.Validate(); err != nil {
		return nil, err
	}
	c, err := upstreamCluster(t)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", t.Ref, err)
	}
	rs, err := targetRoutes(t, l)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", t.Ref, err)
	}
	tg := &targetResources{cluster: c, secrets: upstreamSecrets(c.GetName(), t.Upstream), routes: rs}
	if key, ok := ScopeKey(t.Ref); ok {
		markScoped(rs)
		name := ResourceName(t.Ref)
		tg.scope, tg.config, tg.routes = scope(name, key), routeConfig(name, rs), nil
	}
	check := func(kind, name string, v validator) {
		if e := v.ValidateAll(); e != nil && err == nil {
			err = fmt.Errorf("%s %q: %w", kind, name, e)
		}
	}
	check("cluster", c.GetName(), c)
	for _, sec := range tg.secrets {
		check("secret", sec.GetName(), sec)
	}
	if tg.scope != nil {
		check("scoped route configuration", tg.scope.GetName(), tg.scope)
		check("route configuration", tg.config.GetName(), tg.config)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", t.Ref, err)
	}
	if tg.clusterRefs, err = sdsReferences(c); err != nil {
		return nil, fmt.Errorf("%s: cluster %q: %w", t.Ref, c.GetName(), err)
	}
	return tg, nil
}

// fingerprint identifies a target by everything its translation reads (TestFingerprint checks
// that each field of model.Target counts): equal fingerprints, equal resources.
func fingerprint(t model.Target) string {
	h := sha256.New()
	field := func(b []byte) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	r, u := t.Ref, t.Upstream
	for _, s := range []string{string(r.Kind), r.Cluster, r.Namespace, r.VirtualCluster, r.Project, r.Spaces, u.Token, u.ServerName} {
		field([]byte(s))
	}
	if u.URL != nil {
		field([]byte(u.URL.String()))
	} else {
		field(nil)
	}
	field(u.CA)
	field(u.ClientCert)
	field(u.ClientKey)
	return string(h.Sum(nil))
}

// checkNames checks that no two resources of a type share a name.
func (r Resources) checkNames() error {
	seen := map[string]bool{}
	var errs []error
	check := func(kind, name string) {
		if seen[kind+"/"+name] {
			errs = append(errs, fmt.Errorf("%s %q: defined twice", kind, name))
		}
		seen[kind+"/"+name] = true
	}
	for _, l := range r.Listeners {
		check("listener", l.GetName())
	}
	for _, sc := range r.ScopedRoutes {
		check("scoped route configuration", sc.GetName())
	}
	for _, rc := range r.Routes {
		check("route configuration", rc.GetName())
	}
	for _, c := range r.Clusters {
		check("cluster", c.GetName())
	}
	for _, sec := range r.Secrets {
		check("secret", sec.GetName())
	}
	return errors.Join(errs...)
}
