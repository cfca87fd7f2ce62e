// Package server is the Envoy ext_authz v3 gRPC service: it reads the key from the request,
// looks it up, decides, and answers Envoy with identity headers or a Kubernetes Status denial.
package server

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/structpb"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/keygate-dev/keygate/extauthz/attributes"
	"github.com/keygate-dev/keygate/extauthz/decide"
	"github.com/keygate-dev/keygate/extauthz/identity"
	"github.com/keygate-dev/keygate/extauthz/userinfo"
	"github.com/keygate-dev/keygate/internal/edgepath"
	"github.com/keygate-dev/keygate/internal/kubestatus"
	"github.com/keygate-dev/keygate/keystore/accesskey"
	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
	"github.com/keygate-dev/keygate/keystore/store"
)

// Keys finds an access key by the digest of its plain key (store.Store in production).
type Keys interface {
	LookupDigest(ctx context.Context, digest string) (*v1.OwnedAccessKey, error)
}

// Activity notes that a key was used (activity.Recorder in production). Record must not block
// on I/O: it runs on the request path.
type Activity interface {
	Record(digest string, t time.Time)
}

// Users tells what the user store says of a key's user (userinfo.Directory in production).
type Users interface {
	Lookup(ctx context.Context, name string) (userinfo.Info, error)
}

// Options configure the server.
type Options struct {
	// Users, when set, judges every user's key by what the user store says of its user now
	// (disabled, deleted, re-created, an external identity's name now in the store) and sends
	// the user's current groups upstream.
	Users    Users
	Decide   decide.Options
	Identity identity.Options
	// Activity, when set, is told of every allowed request, for status.lastActivity.
	Activity Activity
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Server implements authv3.AuthorizationServer.
type Server struct {
	authv3.UnimplementedAuthorizationServer
	keys    Keys
	opts    Options
	log     *slog.Logger
	metrics *metrics
	// grafana are the Grafana auth-proxy headers, removed from every allowed request to Grafana
	// and behind an Envoy that sends no context_extensions; grafanaLeft are those of them that
	// xds's Envoy does not strip itself (edgepath.StrippedByEdge), removed from every other
	// allowed request (none with the default headers).
	grafana, grafanaLeft []string
	// denialLogs bounds the refusal log lines, so that a flood of made-up keys cannot flood
	// the logs; the metrics keep the totals.
	denialLogs *rate.Limiter
}

// Refusal log lines: at most denialLogRate a second on average, in bursts of denialLogBurst.
const (
	denialLogRate  = 10
	denialLogBurst = 50
)

// logDenial writes a refusal's log line unless the limiter says too many came lately.
func (s *Server) logDenial(msg string, args ...any) {
	if !s.denialLogs.Allow() {
		s.metrics.logsDropped.Inc()
		return
	}
	s.log.Info(msg, args...)
}

// New returns a server that looks keys up in keys and registers its metrics with reg.
func New(keys Keys, opts Options, log *slog.Logger, reg prometheus.Registerer) *Server {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	grafana := opts.Identity.GrafanaHeaders()
	var left []string
	for _, h := range grafana {
		if !edgepath.StrippedByEdge(h) {
			left = append(left, h)
		}
	}
	return &Server{keys: keys, opts: opts, log: log, metrics: newMetrics(reg), grafana: grafana, grafanaLeft: left,
		denialLogs: rate.NewLimiter(denialLogRate, denialLogBurst)}
}

// Result labels of the checks metric.
const (
	ResultOK              = "ok"
	ResultUnauthenticated = "unauthenticated"
	ResultForbidden       = "forbidden"
	ResultError           = "error"
)

// Check judges one request. It never returns an error to Envoy: every failure is an explicit
// denial (a 503 when the key store cannot answer), so the edge fails closed with a readable body.
// The steps: the target, the key, the key's decision, its owner, then the identity to forward.
func (s *Server) Check(ctx context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	start := time.Now()
	httpReq := req.GetAttributes().GetRequest().GetHttp()
	ref, fromPath, err := s.target(req)
	if err != nil {
		s.log.Error("route carries bad target metadata: check the xds configuration", "error", err, "path", httpReq.GetPath())
		return s.refuse(start, ref, refusal{misconfigured, "the edge is misconfigured for this path", ReasonMisconfigured})
	}
	if fromPath {
		if r := unattributable(httpReq.GetPath()); r != nil {
			s.logDenial("denied: path not in normal form", "path", httpReq.GetPath())
			return s.refuse(start, ref, *r)
		}
	}
	if ref.Kind.Public() {
		return s.finish(start, ref, ResultOK, allow(ref, nil, nil, fromPath))
	}
	headers := httpReq.GetHeaders()
	key, digest, r := s.lookup(ctx, ref, headers["authorization"])
	if r != nil {
		return s.refuse(start, ref, *r)
	}
	if fromPath && ref.Kind == edgepath.KindNone {
		// Our xds routes such paths to a 404 of its own; an Envoy we do not program may route
		// them anywhere, so the check itself refuses them (after the key, as the edge does:
		// 401 before 404).
		return s.refuse(start, ref, refusal{notFound, noTarget, ReasonNoTarget})
	}
	if r := s.decide(key, ref, httpReq); r != nil {
		return s.refuse(start, ref, *r)
	}
	key, userGroups, r := s.owner(ctx, key, ref)
	if r != nil {
		return s.refuse(start, ref, *r)
	}
	if s.log.Enabled(ctx, slog.LevelDebug) { // the arguments cost more than the check, at info level
		s.log.Debug("allowed", "key", key.Name, "user", accesskey.User(key), "target", ref.String())
	}
	if s.opts.Activity != nil {
		// Only allowed requests count as use: a refused request must not keep a key with
		// ttlAfterLastActivity alive.
		s.opts.Activity.Record(digest, s.opts.Now())
	}
	set := identity.Headers(key, userGroups, ref.Kind, s.opts.Identity)
	return s.finish(start, ref, ResultOK, allow(ref, set, s.headersToRemove(headers, set, ref.Kind, fromPath), fromPath))
}

// outcome is one way a check can refuse: the result it is counted under and the HTTP answer.
type outcome struct {
	result string
	code   int
	reason metav1.StatusReason
}

// The ways a check refuses, each with its one answer.
var (
	// misconfigured: the route's target metadata is unreadable, a fault of the edge.
	misconfigured = outcome{ResultError, http.StatusInternalServerError, metav1.StatusReasonInternalError}
	// unauthenticated: the key does not work at all.
	unauthenticated = outcome{ResultUnauthenticated, http.StatusUnauthorized, metav1.StatusReasonUnauthorized}
	// forbidden: the key works, but not for this request.
	forbidden = outcome{ResultForbidden, http.StatusForbidden, metav1.StatusReasonForbidden}
	// unavailable: a store cannot answer, so the check fails closed.
	unavailable = outcome{ResultError, http.StatusServiceUnavailable, metav1.StatusReasonServiceUnavailable}
	// notNormal: a Check without context extensions whose path is not in the normal form our
	// xds's Envoy gives every path, so it cannot be tied to one target (unattributable).
	notNormal = outcome{ResultForbidden, http.StatusBadRequest, metav1.StatusReasonBadRequest}
	// notFound: a Check without context extensions whose path names no target.
	notFound = outcome{ResultForbidden, http.StatusNotFound, metav1.StatusReasonNotFound}
)

// noTarget is what the client is told for a path that names no target (as xds's 404 route).
const noTarget = "the path names no target on this edge"

// decided answers decide's refusals.
var decided = map[decide.Outcome]outcome{decide.Unauthenticated: unauthenticated, decide.Forbidden: forbidden}

// refusal is an outcome with the message the client is told and the reason it is counted under
// in keygate_extauthz_denials_total (one of denialReasons).
type refusal struct {
	outcome
	message string
	cause   string
}

// storesDown is what the client is told when Redis cannot answer.
const storesDown = "access keys cannot be checked right now; try again later"

func (s *Server) refuse(start time.Time, ref edgepath.Ref, r refusal) (*authv3.CheckResponse, error) {
	s.metrics.denial(r.cause).Inc()
	return s.finish(start, ref, r.result, deny(r.code, r.reason, r.message))
}

// lookup reads the access key of the Authorization header and finds it in the key store.
func (s *Server) lookup(ctx context.Context, ref edgepath.Ref, authorization string) (*v1.OwnedAccessKey, string, *refusal) {
	plain, err := accesskey.Bearer(authorization)
	if err != nil {
		s.log.Debug("request without a usable access key", "target", ref.String(), "error", err)
		return nil, "", &refusal{unauthenticated, err.Error(), ReasonNoKey}
	}
	digest := store.Digest(plain)
	key, err := s.keys.LookupDigest(ctx, digest)
	switch {
	case errors.Is(err, store.ErrNotFound):
		s.logDenial("denied: unknown access key", "target", ref.String())
		return nil, "", &refusal{unauthenticated, "invalid access key", ReasonUnknownKey}
	case err != nil:
		s.metrics.storeErrors.Inc()
		s.log.Error("key store unavailable: failing closed", "error", err)
		return nil, "", &refusal{unavailable, storesDown, ReasonStoreUnavailable}
	}
	return key, digest, nil
}

// decide judges the key itself (disabled, expired) and its scope against the request.
func (s *Server) decide(key *v1.OwnedAccessKey, ref edgepath.Ref, httpReq *authv3.AttributeContext_HttpRequest) *refusal {
	// Only a scope looks at the request's attributes; unscoped keys skip parsing them.
	var attrs attributes.Attributes
	if key.Spec.Scope != nil {
		var err error
		// The headers matter too: an Upgrade makes a subresource request a stream (attributes).
		if attrs, err = attributes.FromRequest(strings.ToUpper(httpReq.GetMethod()), upstreamPath(ref, httpReq.GetPath()), httpReq.GetHeaders()); err != nil {
			// Unparsed attributes fail a scoped key's check closed (decide).
			s.logDenial("request attributes unreadable", "key", key.Name, "error", err)
		}
	}
	d := decide.Decide(key, ref, attrs, s.opts.Now(), s.opts.Decide)
	o, refused := decided[d.Outcome]
	if !refused {
		return nil
	}
	s.logDenial("denied", "key", key.Name, "reason", d.Reason, "target", ref.String())
	return &refusal{o, d.Message, d.Reason}
}

// owner applies what the user store says of the key's user now (accesskey.CheckOwner): it
// refuses a key of a disabled, deleted or re-created user, or of an external identity whose name
// the store has since given to a user; and returns the key as its owner lets it act (a store
// user's groups are the store's, accesskey.AsOwned) with the user's groups. Looked up only for
// requests the key may make: refusals cost no extra round trip. Team keys act as their team,
// whoever holds them, and have no user to look up.
func (s *Server) owner(ctx context.Context, key *v1.OwnedAccessKey, ref edgepath.Ref) (*v1.OwnedAccessKey, []string, *refusal) {
	if s.opts.Users == nil || key.Spec.User == "" {
		return key, nil, nil
	}
	info, err := s.opts.Users.Lookup(ctx, key.Spec.User)
	if err != nil {
		s.metrics.storeErrors.Inc()
		s.log.Error("user store unavailable: failing closed", "error", err)
		return nil, nil, &refusal{unavailable, storesDown, ReasonStoreUnavailable}
	}
	if p := accesskey.CheckOwner(key, info); p != accesskey.OwnerOK {
		s.logDenial("denied", "key", key.Name, "reason", string(p), "user", key.Spec.User, "target", ref.String())
		return nil, nil, &refusal{unauthenticated, p.Message(key), ownerReasons[p]}
	}
	return accesskey.AsOwned(key, info), info.Groups, nil
}

// target is the route's target from its context extensions, or from the path when the Check
// comes from an Envoy our xds does not program (fromPath).
func (s *Server) target(req *authv3.CheckRequest) (ref edgepath.Ref, fromPath bool, err error) {
	ref, ok, err := edgepath.FromContextExtensions(req.GetAttributes().GetContextExtensions())
	if err != nil || ok {
		return ref, false, err
	}
	ref, _ = edgepath.Parse(req.GetAttributes().GetRequest().GetHttp().GetPath())
	return ref, true, nil
}

// unattributable refuses a path that another Envoy might route to another target than the one
// it names: anything our xds's Envoy would have normalised or rejected (edgepath.Normal). Without
// context extensions, the path is all extauthz knows of where the request goes, and an Envoy
// without merge_slashes or with escaped slashes kept may read //, /../ or %2F differently.
func unattributable(path string) *refusal {
	if err := edgepath.Normal(path); err != nil {
		return &refusal{notNormal, "the edge cannot tell which target this path is for: " + err.Error(), ReasonNotNormal}
	}
	return nil
}

// upstreamPath is the path (with query) that the upstream of ref sees for a request to path:
// the route strips the target's prefix; a prefix without its trailing slash reaches "/".
func upstreamPath(ref edgepath.Ref, path string) string {
	prefix := ref.Prefix()
	if prefix == "" {
		return path
	}
	if rest, ok := strings.CutPrefix(path, prefix); ok {
		return "/" + rest
	}
	if rest, ok := strings.CutPrefix(path, strings.TrimSuffix(prefix, "/")); ok && (rest == "" || rest[0] == '?') {
		return "/" + rest
	}
	return path
}

// headersToRemove lists what Envoy removes from an allowed request before forwarding it: the
// client's Authorization header (xds's routes remove it too), every header that could claim an
// identity upstream which the client sent and Envoy passed in the check, and Grafana's
// auth-proxy headers whether sent or not (Envoy does not send them: xds/translate's allowed
// headers). Of those, all go on Grafana's routes and behind an Envoy that sends no
// context_extensions (fromPath); behind xds's Envoy, which strips the default ones from every
// request itself (edgepath.StrippedByEdge), the others only: none with the defaults, so the
// answer for a Kubernetes route removes Authorization alone. Headers we set are overwritten
// instead, so the result does not depend on whether Envoy applies removals before or after
// additions.
func (s *Server) headersToRemove(reqHeaders map[string]string, set []identity.Header, kind edgepath.Kind, fromPath bool) []string {
	ours := func(n string) bool {
		for _, h := range set {
			if strings.EqualFold(h.Name, n) {
				return true
			}
		}
		return false
	}
	remove := onlyAuthorization[:1:1] // shared; an append copies it
	grafana := s.grafanaLeft
	if fromPath || kind == edgepath.KindGrafana {
		grafana = s.grafana
	}
	for _, n := range grafana {
		if !ours(n) {
			remove = append(remove, n)
		}
	}
	for name := range reqHeaders {
		if n := strings.ToLower(name); identity.IsIdentityHeader(n, s.opts.Identity) && !ours(n) && !slices.Contains(remove, n) {
			remove = append(remove, n)
		}
	}
	return remove
}

// onlyAuthorization is what most allowed requests remove (headersToRemove); never modified.
var onlyAuthorization = []string{"authorization"}

func (s *Server) finish(start time.Time, ref edgepath.Ref, result string, resp *authv3.CheckResponse) (*authv3.CheckResponse, error) {
	kind := string(ref.Kind)
	if kind == "" {
		kind = "unknown"
	}
	s.metrics.check(result, kind).Inc()
	s.metrics.latency(result).Observe(time.Since(start).Seconds())
	return resp, nil
}

// allow builds an OK response. Each header name's first value overwrites whatever the client
// sent under that name. A name with several values (one Impersonate-Group per group) also goes
// into the dynamic metadata, from which the edge's Lua filter writes one header line per value:
// Envoy's ext_authz can only append by joining values with commas, which Kubernetes would read
// as a single group (see edgepath.MetadataHeaderLists). The response names the target it was
// judged for (TargetHeader) only for an Envoy that sends no context_extensions: xds's routes
// add that header themselves.
func allow(ref edgepath.Ref, set []identity.Header, remove []string, targetHeader bool) *authv3.CheckResponse {
	var buf [4]headerName
	names, multi := distinctNames(set, buf[:0])
	// Every message of a kind in one allocation, rather than one per header and value: this is
	// most of what an allowed check allocates.
	ok := &authv3.OkHttpResponse{HeadersToRemove: remove, Headers: make([]*corev3.HeaderValueOption, len(names))}
	options, values := make([]corev3.HeaderValueOption, len(names)), make([]corev3.HeaderValue, len(names))
	lists := 0
	for i, n := range names {
		values[i].Key, values[i].Value = n.name, n.first
		options[i].Header, options[i].AppendAction = &values[i], corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD
		ok.Headers[i] = &options[i]
		if n.values > 1 {
			lists++
		}
	}
	if targetHeader {
		// Tells the client which target its request was judged for; the edge forwards to
		// exactly that target (the route carried it), which tests and operators can check.
		ok.ResponseHeadersToAdd = []*corev3.HeaderValueOption{{
			Header:       &corev3.HeaderValue{Key: TargetHeader, Value: ref.Name()},
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
		}}
	}
	resp := &authv3.CheckResponse{
		Status:       &rpcstatus.Status{Code: int32(codes.OK)},
		HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: ok},
	}
	if lists == 0 {
		return resp
	}
	resp.DynamicMetadata = &structpb.Struct{Fields: map[string]*structpb.Value{
		edgepath.MetadataHeaderLists: structpb.NewStructValue(&structpb.Struct{Fields: headerLists(set, names, multi, lists)}),
	}}
	return resp
}

// headerName is one distinct header name of an answer, with its first value and how many
// values it has.
type headerName struct {
	name, first string
	values      int
}

// distinctNames appends set's distinct names, in order, to names (a handful: user, groups,
// extra), and counts the values of the names that have several (multi).
func distinctNames(set []identity.Header, names []headerName) (_ []headerName, multi int) {
	for _, h := range set {
		if i := slices.IndexFunc(names, func(n headerName) bool { return n.name == h.Name }); i >= 0 {
			if names[i].values++; names[i].values == 2 {
				multi += 2
			} else {
				multi++
			}
			continue
		}
		names = append(names, headerName{h.Name, h.Value, 1})
	}
	return names, multi
}

// headerLists is the dynamic metadata's lists: each name with several values, to all its values
// (multi of them over lists names), every message of a kind in one allocation.
func headerLists(set []identity.Header, names []headerName, multi, lists int) map[string]*structpb.Value {
	strs, kinds, items := make([]structpb.Value, multi), make([]structpb.Value_StringValue, multi), make([]*structpb.Value, multi)
	listValues, listKinds, listMsgs := make([]structpb.Value, lists), make([]structpb.Value_ListValue, lists), make([]structpb.ListValue, lists)
	fields := make(map[string]*structpb.Value, lists)
	v, l := 0, 0
	for _, n := range names {
		if n.values < 2 {
			continue
		}
		start := v
		for _, h := range set {
			if h.Name == n.name {
				kinds[v].StringValue = h.Value
				strs[v].Kind = &kinds[v]
				items[v] = &strs[v]
				v++
			}
		}
		listMsgs[l].Values = items[start:v:v]
		listKinds[l].ListValue = &listMsgs[l]
		listValues[l].Kind = &listKinds[l]
		fields[n.name] = &listValues[l]
		l++
	}
	return fields
}

// TargetHeader is the response header naming the target a request was judged for.
const TargetHeader = edgepath.TargetHeader

// deny builds a denial whose body is a Kubernetes Status, so that kubectl prints its message.
func deny(code int, reason metav1.StatusReason, message string) *authv3.CheckResponse {
	body, _ := json.Marshal(kubestatus.Failure(code, reason, message)) // a Status always marshals
	grpcCode := codes.PermissionDenied
	if code == http.StatusUnauthorized {
		grpcCode = codes.Unauthenticated
	} else if code >= 500 {
		grpcCode = codes.Unavailable
	}
	headers := []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "Content-Type", Value: "application/json"}}}
	if code == http.StatusUnauthorized {
		headers = append(headers, &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: "WWW-Authenticate", Value: `Bearer realm="keygate"`}})
	}
	return &authv3.CheckResponse{
		Status: &rpcstatus.Status{Code: int32(grpcCode), Message: message},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status:  &typev3.HttpStatus{Code: typev3.StatusCode(code)},
			Headers: headers,
			Body:    string(body),
		}},
	}
}
