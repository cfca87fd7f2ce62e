package server

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/keygate-dev/keygate/extauthz/identity"
	"github.com/keygate-dev/keygate/internal/edgepath"
)

// envoyCheck is a CheckRequest as Envoy sends one (bench/authz's, every field Envoy fills).
func envoyCheck() *authv3.CheckRequest {
	addr := func(port uint32) *authv3.AttributeContext_Peer {
		return &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: "127.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port}}}}}
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: addr(38696), Destination: addr(41415),
		Request: &authv3.AttributeContext_Request{Time: timestamppb.Now(), Http: &authv3.AttributeContext_HttpRequest{
			Id: "210572014286681744", Method: "GET", Path: "/kubernetes/cluster/bench/api/v1/namespaces/default/pods",
			Host: "bench", Scheme: "http", Protocol: "HTTP/1.1", Size: 12,
			Headers: map[string]string{"authorization": "Bearer kgk_x", "upgrade": "SPDY/3.1", "connection": "Upgrade"},
		}},
		ContextExtensions: edgepath.Ref{Kind: edgepath.KindCluster, Cluster: "bench"}.ContextExtensions(),
		MetadataContext:   &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{"x": {}}},
	}}
}

// read is what Check reads of a CheckRequest.
func read(r *authv3.CheckRequest) map[string]any {
	h := r.GetAttributes().GetRequest().GetHttp()
	return map[string]any{"method": h.GetMethod(), "path": h.GetPath(), "headers": h.GetHeaders(),
		"extensions": r.GetAttributes().GetContextExtensions()}
}

// checkDecode: wherever proto.Unmarshal reads b, decodeCheckRequest reads the same of it.
func checkDecode(t *testing.T, b []byte) {
	var want, got authv3.CheckRequest
	if err := proto.Unmarshal(b, &want); err != nil {
		return // decodeCheckRequest may be more lenient with fields it skips
	}
	if err := decodeCheckRequest(b, &got); err != nil {
		t.Fatalf("decodeCheckRequest: %v; proto.Unmarshal read %v", err, read(&want))
	}
	// An empty map and no map read the same (Check looks keys up); proto.Unmarshal makes the
	// map of a map field it then finds with another wire type, and skips the field, while
	// decodeCheckRequest skips it whole (the fuzzer's seed 5bbf7f0ffc8398fb).
	if d := cmp.Diff(read(&want), read(&got), cmpopts.EquateEmpty()); d != "" {
		t.Errorf("decodeCheckRequest reads otherwise than proto.Unmarshal (-proto +ours):\n%s", d)
	}
}

func TestDecodeCheckRequest(t *testing.T) {
	b, err := proto.Marshal(envoyCheck())
	if err != nil {
		t.Fatal(err)
	}
	checkDecode(t, b)
	// Fields repeated: messages merge, strings and map keys take the last value.
	second, _ := proto.Marshal(&authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Path: "/other", Headers: map[string]string{"authorization": "Bearer kgk_y", "accept": "*/*"}}},
		ContextExtensions: map[string]string{edgepath.ExtCluster: "other"},
	}})
	checkDecode(t, append(b, second...))
	// A field Check reads, with another wire type; a map entry without its value.
	odd := protowire.AppendTag(nil, fieldCheckAttributes, protowire.BytesType)
	inner := protowire.AppendTag(nil, fieldAttrContextExtensions, protowire.VarintType)
	inner = protowire.AppendVarint(inner, 7)
	entry := protowire.AppendString(protowire.AppendTag(nil, fieldMapKey, protowire.BytesType), "k")
	inner = protowire.AppendBytes(protowire.AppendTag(inner, fieldAttrContextExtensions, protowire.BytesType), entry)
	odd = protowire.AppendBytes(odd, inner)
	checkDecode(t, odd)
	// Broken framing and bad UTF-8 in a field Check reads are errors.
	for name, bad := range map[string][]byte{
		"truncated": b[:len(b)-3],
		"bad utf-8": protowire.AppendBytes(protowire.AppendTag(nil, fieldCheckAttributes, protowire.BytesType),
			protowire.AppendBytes(protowire.AppendTag(nil, fieldAttrRequest, protowire.BytesType),
				protowire.AppendBytes(protowire.AppendTag(nil, fieldRequestHTTP, protowire.BytesType),
					protowire.AppendBytes(protowire.AppendTag(nil, fieldHTTPPath, protowire.BytesType), []byte{0xff})))),
	} {
		if err := decodeCheckRequest(bad, &authv3.CheckRequest{}); err == nil {
			t.Errorf("%s: decoded without an error", name)
		}
	}
}

func FuzzDecodeCheckRequest(f *testing.F) {
	b, _ := proto.Marshal(envoyCheck())
	f.Add(b)
	f.Add(b[:len(b)/2])
	f.Fuzz(checkDecode)
}

// checkEncodeOK: an answer encodeOK takes is read back by proto.Unmarshal as the same answer.
func checkEncodeOK(t *testing.T, resp *authv3.CheckResponse) {
	t.Helper()
	b, ok := encodeOK(resp)
	if !ok {
		t.Fatalf("encodeOK left %v to the proto codec", resp)
	}
	var got authv3.CheckResponse
	if err := proto.Unmarshal(b, &got); err != nil {
		t.Fatalf("proto.Unmarshal of encodeOK's bytes: %v", err)
	}
	if !proto.Equal(resp, &got) {
		t.Errorf("encodeOK's bytes read back as\n%v\nwant\n%v", &got, resp)
	}
	if want, err := proto.Marshal(resp); err != nil || len(want) != len(b) {
		t.Errorf("encodeOK wrote %d bytes, proto.Marshal %d (%v)", len(b), len(want), err)
	}
}

func TestEncodeOK(t *testing.T) {
	demo := edgepath.Ref{Kind: edgepath.KindCluster, Cluster: "demo"}
	groups := []identity.Header{hdr("Impersonate-User", "alice"), hdr("Impersonate-Group", "dev"), hdr("Impersonate-Group", "a,b c"),
		hdr("Impersonate-Group", ""), hdr("Impersonate-Group", "grüne"), hdr("Impersonate-Extra-Loft-Access-Key", "k")}
	for name, resp := range map[string]*authv3.CheckResponse{
		"kubernetes, groups":        allow(demo, groups, []string{"authorization"}, false),
		"no context extensions":     allow(demo, groups, []string{"authorization", "x-webauth-user", "impersonate-uid"}, true),
		"public":                    allow(edgepath.Ref{Kind: edgepath.KindAuth}, nil, nil, false),
		"public, target named":      allow(edgepath.Ref{Kind: edgepath.KindAuth}, nil, nil, true),
		"grafana":                   allow(edgepath.Ref{Kind: edgepath.KindGrafana, Cluster: "demo"}, []identity.Header{hdr("X-WEBAUTH-USER", "bob")}, []string{"authorization", "x-webauth-role"}, false),
		"status with a message":     {Status: &rpcstatus.Status{Code: 0, Message: "fine"}, HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{}}},
		"no status, nested structs": {HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{}}, DynamicMetadata: nested()},
	} {
		t.Run(name, func(t *testing.T) { checkEncodeOK(t, resp) })
	}
	// What encodeOK does not write goes to the proto codec.
	for name, resp := range map[string]*authv3.CheckResponse{
		"denial":         deny(403, "Forbidden", "no"),
		"query":          {Status: &rpcstatus.Status{}, HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{QueryParametersToRemove: []string{"x"}}}},
		"number in data": {Status: &rpcstatus.Status{}, HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{}}, DynamicMetadata: &structpb.Struct{Fields: map[string]*structpb.Value{"n": structpb.NewNumberValue(1)}}},
		"raw value":      {Status: &rpcstatus.Status{}, HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{Headers: []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "k", RawValue: []byte("v")}}}}}},
	} {
		if _, ok := encodeOK(resp); ok {
			t.Errorf("%s: encodeOK wrote it", name)
		}
	}
}

func hdr(name, value string) identity.Header { return identity.Header{Name: name, Value: value} }

func nested() *structpb.Struct {
	inner, _ := structpb.NewStruct(map[string]any{"a": "b", "l": []any{"x", map[string]any{"y": "z"}}})
	return &structpb.Struct{Fields: map[string]*structpb.Value{"s": structpb.NewStructValue(inner), "": structpb.NewStringValue("")}}
}

// The messages encodeOK writes have the fields it knows of, and no other: a go-control-plane
// that adds one fails here, so that encodeOK (and plainOK) learn of it.
func TestEncodeOKKnowsEveryField(t *testing.T) {
	for msg, want := range map[proto.Message]string{
		&authv3.CheckResponse{}:     "1 2 3 4 5",
		&authv3.OkHttpResponse{}:    "2 3 5 6 7 8",
		&corev3.HeaderValueOption{}: "1 2 3 4",
		&corev3.HeaderValue{}:       "1 2 3",
		&rpcstatus.Status{}:         "1 2 3",
	} {
		fields := msg.ProtoReflect().Descriptor().Fields()
		var nums []int
		for i := range fields.Len() {
			nums = append(nums, int(fields.Get(i).Number()))
		}
		slices.Sort(nums)
		got := strings.Trim(fmt.Sprint(nums), "[]")
		if got != want {
			t.Errorf("%s has fields %v; encodeOK knows %s", msg.ProtoReflect().Descriptor().FullName(), got, want)
		}
	}
}

func FuzzEncodeOK(f *testing.F) {
	f.Add("Impersonate-Group", "dev", "qa", "authorization", true)
	f.Fuzz(func(t *testing.T, name, v1, v2, remove string, target bool) {
		set := []identity.Header{hdr(name, v1), hdr(name, v2), hdr("Impersonate-User", v1)}
		resp := allow(edgepath.Ref{Kind: edgepath.KindCluster, Cluster: "demo"}, set, []string{remove}, target)
		for _, s := range []string{name, v1, v2, remove} {
			if !utf8.ValidString(s) {
				// Left to the proto codec, which refuses it (protobuf strings are UTF-8).
				if _, ok := encodeOK(resp); ok {
					t.Errorf("encodeOK wrote invalid UTF-8 (%q)", s)
				}
				return
			}
		}
		checkEncodeOK(t, resp)
	})
}
