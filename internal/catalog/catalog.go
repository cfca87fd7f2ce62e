// Package catalog is how keystore learns the edge's targets from xds, so that the management
// API's clusters and virtualclusterinstances list exactly what Envoy routes, from whichever
// source xds reads (the targets file, or Cluster and VirtualCluster objects): one source of
// truth, no second reader of it that could drift. It is one unary gRPC method on xds's gRPC
// port (mutual TLS with the control plane's CA, like Envoy's streams), answering the
// published targets' identities (edgepath.Ref: names, projects, spaces), never their
// upstreams or secrets.
package catalog

import (
	"context"
	"encoding/json"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/keygate-dev/keygate/internal/edgepath"
)

// Method is the gRPC method's full name. The message types are protobuf's well-known ones (the
// answer is JSON in a BytesValue), so that neither side needs generated code for one call.
const (
	service = "keygate.catalog.v1.Catalog"
	Method  = "/" + service + "/Targets"
)

// Targets returns the published targets; ok is false until the first publication.
type Targets func() (refs []edgepath.Ref, ok bool)

// Register adds the catalog to a gRPC server.
func Register(g *grpc.Server, targets Targets) {
	g.RegisterService(&grpc.ServiceDesc{
		ServiceName: service,
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{{MethodName: "Targets", Handler: func(_ any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			if err := dec(&emptypb.Empty{}); err != nil {
				return nil, err
			}
			refs, ok := targets()
			if !ok {
				return nil, errNotPublished
			}
			data, err := json.Marshal(refs)
			if err != nil {
				return nil, err
			}
			return wrapperspb.Bytes(data), nil
		}}},
	}, struct{}{})
}

var errNotPublished = fmt.Errorf("xds has published no targets yet")

// Get asks xds for the published targets over conn.
func Get(ctx context.Context, conn grpc.ClientConnInterface) ([]edgepath.Ref, error) {
	var out wrapperspb.BytesValue
	if err := conn.Invoke(ctx, Method, &emptypb.Empty{}, &out); err != nil {
		return nil, fmt.Errorf("targets from xds: %w", err)
	}
	var refs []edgepath.Ref
	if err := json.Unmarshal(out.Value, &refs); err != nil {
		return nil, fmt.Errorf("targets from xds: %w", err)
	}
	return refs, nil
}
