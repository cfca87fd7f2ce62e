// Package translate turns the model of the edge's targets into Envoy resources: one HTTPS
// listener, a route configuration and a routing scope per target plus one shared by the static
// targets (see scopes.go), one cluster per target and the SDS secrets that hold the serving
// certificate and every upstream credential (see secrets.go). Translate is a pure function (no
// I/O, same input → same output) so that golden files can pin its output, and it validates every
// resource it returns.
package translate

import (
	"errors"
	"fmt"
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
}

func (o Options) withDefaults() Options {
	if o.ExtAuthzCluster == "" {
		o.ExtAuthzCluster = DefaultExtAuthzCluster
	}
	if o.ExtAuthzTimeout == 0 {
		o.ExtAuthzTimeout = DefaultExtAuthzTimeout
	}
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
	o = o.withDefaults()
	if err := o.validate(); err != nil {
		return Resources{}, fmt.Errorf("translate: options: %w", err)
	}
	l, err := httpsListener(o)
	if err != nil {
		return Resources{}, fmt.Errorf("translate: listener: %w", err)
	}
	res := Resources{
		Listeners: []*listenerv3.Listener{l},
		Secrets:   []*tlsv3.Secret{tlsCertificateSecret(ServingSecretName, o.ServingCert, o.ServingKey)},
	}
	var static []*routev3.Route
	var scopes []*routev3.ScopedRouteConfiguration
	var configs []*routev3.RouteConfiguration
	for _, t := range m.Targets {
		if err := t.Ref.Validate(); err != nil {
			return Resources{}, fmt.Errorf("translate: %w", err)
		}
		c, err := upstreamCluster(t)
		if err != nil {
			return Resources{}, fmt.Errorf("translate: %s: %w", t.Ref, err)
		}
		rs, err := targetRoutes(t)
		if err != nil {
			return Resources{}, fmt.Errorf("translate: %s: %w", t.Ref, err)
		}
		res.Clusters = append(res.Clusters, c)
		res.Secrets = append(res.Secrets, upstreamSecrets(c.GetName(), t.Upstream)...)
		if key, ok := ScopeKey(t.Ref); ok {
			name := ClusterName(t.Ref)
			scopes = append(scopes, scope(name, key))
			configs = append(configs, routeConfig(name, rs))
		} else {
			static = append(static, rs...)
		}
	}
	nf, err := notFoundRoute()
	if err != nil {
		return Resources{}, fmt.Errorf("translate: %w", err)
	}
	res.ScopedRoutes = append([]*routev3.ScopedRouteConfiguration{scope(RouteConfigName, StaticScopeKey)}, scopes...)
	res.Routes = append([]*routev3.RouteConfiguration{routeConfig(RouteConfigName, append(static, nf))}, configs...)

	if err := res.validate(); err != nil {
		return Resources{}, fmt.Errorf("translate: %w", err)
	}
	return res, nil
}

func (r Resources) validate() error {
	seen := map[string]bool{}
	var errs []error
	check := func(kind, name string, v validator) {
		if seen[kind+"/"+name] {
			errs = append(errs, fmt.Errorf("%s %q: defined twice", kind, name))
		}
		seen[kind+"/"+name] = true
		if err := v.ValidateAll(); err != nil {
			errs = append(errs, fmt.Errorf("%s %q: %w", kind, name, err))
		}
	}
	for _, l := range r.Listeners {
		check("listener", l.GetName(), l)
	}
	for _, sc := range r.ScopedRoutes {
		check("scoped route configuration", sc.GetName(), sc)
	}
	for _, rc := range r.Routes {
		check("route configuration", rc.GetName(), rc)
	}
	for _, c := range r.Clusters {
		check("cluster", c.GetName(), c)
	}
	for _, sec := range r.Secrets {
		check("secret", sec.GetName(), sec)
	}
	if err := r.checkSecretReferences(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
