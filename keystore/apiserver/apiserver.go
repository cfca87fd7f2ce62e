// Package apiserver serves management.loft.sh/v1 (ownedaccesskeys, selves) with k8s.io/apiserver,
// the way k8s.io/sample-apiserver does, over the Redis key store.
//
// It sits behind the edge: Envoy authenticates the access key (extauthz) and forwards the
// caller's identity as front-proxy headers (X-Remote-User, X-Remote-Group,
// X-Remote-Extra-Loft-Access-Key) over a TLS connection with its client certificate. The server
// trusts those headers only from a client certificate signed by --requestheader-client-ca-file
// (and with an allowed common name); every other request is unauthenticated and refused.
package apiserver

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apiserver/pkg/authentication/authenticatorfactory"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	openapinamer "k8s.io/apiserver/pkg/endpoints/openapi"
	"k8s.io/apiserver/pkg/registry/rest"
	genericapiserver "k8s.io/apiserver/pkg/server"
	genericoptions "k8s.io/apiserver/pkg/server/options"
	"k8s.io/component-base/compatibility"

	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
	"github.com/keygate-dev/keygate/keystore/apis/management/v1/openapi"
	"github.com/keygate-dev/keygate/keystore/registry"
)

// Front-proxy headers, as the edge sets them (extauthz/identity).
var (
	UsernameHeaders     = []string{"X-Remote-User"}
	GroupHeaders        = []string{"X-Remote-Group"}
	ExtraHeaderPrefixes = []string{"X-Remote-Extra-"}
)

// Config of the management API server.
type Config struct {
	// Address to serve HTTPS on, host:port.
	Address string
	// CertFile and KeyFile are the serving certificate.
	CertFile, KeyFile string
	// ClientCAFile signs the client certificate of the edge (Envoy), the only client whose
	// identity headers are believed.
	ClientCAFile string
	// AllowedNames are the common names the edge's client certificate may have; empty: any
	// certificate signed by ClientCAFile.
	AllowedNames []string
	// Registry options: the admin group and team lookup.
	Registry registry.Options
	// Keys is the key store; UserInfo describes users for selves (optional).
	Keys     registry.Keys
	UserInfo registry.UserInfoFunc
	// Users is the user store, served as users; nil serves none.
	Users registry.UserStore
	// Teams is the team store, served as teams (with Users, which holds membership); nil
	// serves none.
	Teams registry.TeamStore
	// Targets are the edge's targets, served as clusters and virtualclusterinstances; nil
	// serves neither.
	Targets registry.TargetsFunc
}

// Scheme and Codecs know management.loft.sh/v1 and the meta types every server speaks.
var (
	Scheme = runtime.NewScheme()
	Codecs = serializer.NewCodecFactory(Scheme)
)

func init() {
	if err := v1.AddToScheme(Scheme); err != nil {
		panic(err)
	}
	// As k8s.io/sample-apiserver: the unversioned meta types discovery and errors use.
	metav1.AddToGroupVersion(Scheme, schema.GroupVersion{Version: "v1"})
	unversioned := schema.GroupVersion{Group: "", Version: "v1"}
	Scheme.AddUnversionedTypes(unversioned, &metav1.Status{}, &metav1.APIVersions{}, &metav1.APIGroupList{}, &metav1.APIGroup{}, &metav1.APIResourceList{})
}

// New builds the server; run it with PrepareRun().RunWithContext.
func New(c Config) (*genericapiserver.GenericAPIServer, error) {
	host, port, err := splitAddress(c.Address)
	if err != nil {
		return nil, err
	}
	if c.CertFile == "" || c.KeyFile == "" {
		return nil, fmt.Errorf("a serving certificate and key are required")
	}
	if c.ClientCAFile == "" {
		return nil, fmt.Errorf("a client CA for the edge's certificate is required: without it, anyone could claim any identity")
	}

	cfg := genericapiserver.NewRecommendedConfig(Codecs)
	cfg.EffectiveVersion = compatibility.NewEffectiveVersionFromString("1.37", "", "")
	if err := applyServing(cfg, c, host, port); err != nil {
		return nil, err
	}
	if err := applyEdgeAuthentication(cfg, c); err != nil {
		return nil, err
	}
	cfg.Authorization.Authorizer = authorizer.AuthorizerFunc(authz{adminGroup: c.Registry.AdminGroup}.Authorize)
	applyOpenAPI(cfg)

	gs, err := cfg.Complete().New("keygate-management", genericapiserver.NewEmptyDelegate())
	if err != nil {
		return nil, err
	}
	if err := installManagementAPI(gs, c); err != nil {
		return nil, err
	}
	return gs, nil
}

// splitAddress reads host:port; the port must be a number.
func splitAddress(address string) (host string, port int, err error) {
	host, portStr, err := net.SplitHostPort(address)
	if err != nil {
		return "", 0, fmt.Errorf("address %q: %w", address, err)
	}
	if port, err = strconv.Atoi(portStr); err != nil {
		return "", 0, fmt.Errorf("address %q: bad port", address)
	}
	return host, port, nil
}

// applyServing makes cfg serve HTTPS on host:port (every interface for an empty host) with the
// serving certificate.
func applyServing(cfg *genericapiserver.RecommendedConfig, c Config, host string, port int) error {
	serving := genericoptions.NewSecureServingOptions().WithLoopback()
	serving.BindAddress = net.ParseIP(host)
	if serving.BindAddress == nil && host != "" {
		return fmt.Errorf("address %q: host must be an IP address", c.Address)
	}
	if host == "" {
		serving.BindAddress = net.IPv4zero
	}
	serving.BindPort = port
	serving.ServerCert.CertKey = genericoptions.CertKey{CertFile: c.CertFile, KeyFile: c.KeyFile}
	if err := serving.ApplyTo(&cfg.SecureServing, &cfg.LoopbackClientConfig); err != nil {
		return fmt.Errorf("serving: %w", err)
	}
	return nil
}

// applyEdgeAuthentication makes cfg believe the front-proxy identity headers from the edge's
// client certificate (signed by ClientCAFile, with an allowed name), and nothing else.
func applyEdgeAuthentication(cfg *genericapiserver.RecommendedConfig, c Config) error {
	rh := genericoptions.RequestHeaderAuthenticationOptions{
		ClientCAFile:        c.ClientCAFile,
		AllowedNames:        c.AllowedNames,
		UsernameHeaders:     UsernameHeaders,
		GroupHeaders:        GroupHeaders,
		ExtraHeaderPrefixes: ExtraHeaderPrefixes,
	}
	rhConfig, err := rh.ToAuthenticationRequestHeaderConfig()
	if err != nil {
		return fmt.Errorf("request-header authentication: %w", err)
	}
	// The TLS handshake must ask for client certificates, or no request could prove it came
	// from the edge.
	if err := cfg.Authentication.ApplyClientCert(rhConfig.CAContentProvider, cfg.SecureServing); err != nil {
		return fmt.Errorf("client CA: %w", err)
	}
	authn, _, err := authenticatorfactory.DelegatingAuthenticatorConfig{RequestHeaderConfig: rhConfig}.New()
	if err != nil {
		return fmt.Errorf("authentication: %w", err)
	}
	cfg.Authentication.Authenticator = authn
	cfg.Authentication.RequestHeaderConfig = rhConfig
	return nil
}

// applyOpenAPI serves OpenAPI v2 and v3, so that kubectl validates and apply --server-side
// works.
func applyOpenAPI(cfg *genericapiserver.RecommendedConfig) {
	namer := openapinamer.NewDefinitionNamer(Scheme)
	cfg.OpenAPIConfig = genericapiserver.DefaultOpenAPIConfig(openapi.GetOpenAPIDefinitions, namer)
	cfg.OpenAPIConfig.Info.Title = "keygate management API"
	cfg.OpenAPIConfig.Info.Version = "v1"
	cfg.OpenAPIV3Config = genericapiserver.DefaultOpenAPIV3Config(openapi.GetOpenAPIDefinitions, namer)
	cfg.OpenAPIV3Config.Info.Title = "keygate management API"
	cfg.OpenAPIV3Config.Info.Version = "v1"
}

// installManagementAPI serves management.loft.sh/v1's ownedaccesskeys, selves, users, teams,
// and, read-only, clusters and virtualclusterinstances.
func installManagementAPI(gs *genericapiserver.GenericAPIServer, c Config) error {
	agi := genericapiserver.NewDefaultAPIGroupInfo(v1.GroupName, Scheme, runtime.NewParameterCodec(Scheme), Codecs)
	agi.VersionedResourcesStorageMap[v1.Version] = map[string]rest.Storage{
		"ownedaccesskeys": registry.NewAccessKeys(c.Keys, c.Registry),
		"selves":          registry.NewSelves(c.Keys, c.Registry, c.UserInfo),
	}
	if c.Users != nil {
		agi.VersionedResourcesStorageMap[v1.Version]["users"] = registry.NewUsers(c.Users, c.Keys, c.Registry)
		if c.Teams != nil {
			agi.VersionedResourcesStorageMap[v1.Version]["teams"] = registry.NewTeams(c.Teams, c.Users, c.Keys, c.Registry)
		}
	}
	if c.Targets != nil {
		agi.VersionedResourcesStorageMap[v1.Version]["clusters"] = registry.NewClusters(c.Keys, c.Registry, c.Targets)
		agi.VersionedResourcesStorageMap[v1.Version]["virtualclusterinstances"] = registry.NewVirtualClusterInstances(c.Keys, c.Registry, c.Targets)
	}
	return gs.InstallAPIGroup(&agi)
}

// authz lets every authenticated caller use the management group (the registry decides which
// keys they own) and read discovery, OpenAPI and health; everything else (metrics, debug
// endpoints) is for admins.
type authz struct{ adminGroup string }

func (a authz) Authorize(_ context.Context, attrs authorizer.Attributes) (authorizer.Decision, string, error) {
	u := attrs.GetUser()
	if u == nil {
		return authorizer.DecisionDeny, "no user", nil
	}
	groups := u.GetGroups()
	if slices.Contains(groups, user.SystemPrivilegedGroup) || (a.adminGroup != "" && slices.Contains(groups, a.adminGroup)) {
		return authorizer.DecisionAllow, "", nil
	}
	if attrs.IsResourceRequest() {
		if attrs.GetAPIGroup() == v1.GroupName {
			return authorizer.DecisionAllow, "", nil
		}
		return authorizer.DecisionDeny, "only management.loft.sh is served here", nil
	}
	if attrs.GetVerb() != "get" {
		return authorizer.DecisionDeny, "", nil
	}
	p := attrs.GetPath()
	switch {
	case p == "/api", p == "/apis", p == "/version", p == "/healthz", p == "/livez", p == "/readyz",
		strings.HasPrefix(p, "/api/"), strings.HasPrefix(p, "/apis/"), strings.HasPrefix(p, "/openapi/"):
		return authorizer.DecisionAllow, "", nil
	}
	return authorizer.DecisionDeny, "only admins may read " + p, nil
}
