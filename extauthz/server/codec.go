package server

import (
	"errors"
	"unicode/utf8"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	_ "google.golang.org/grpc/encoding/proto" // registers the proto codec the others fall back to
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/types/known/structpb"
)

// GRPCServerOptions are the gRPC server options of the ext_authz service: each check's
// CheckRequest decoded for the fields Check reads only and its OK answer encoded by hand
// (checkCodec), and streams served by a pool of goroutines. Both cut the CPU of a check (bench/README.md, "where the time goes").
func GRPCServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ForceServerCodecV2(checkCodec{base: encoding.GetCodecV2("proto")}),
		// A stream is served by a worker whose stack has grown already, rather than by a new
		// goroutine whose stack grows (and is copied) during every check; a stream that finds
		// no worker free gets its own goroutine, as without the option.
		grpc.NumStreamWorkers(streamWorkers),
	}
}

// streamWorkers covers the checks one replica has in flight at once on a busy edge: Envoy sends
// a check's headers and then its message, and a worker holds the stream from the one to its
// answer.
const streamWorkers = 64

// checkCodec is gRPC's proto codec, but for the OK answers of Check, which it encodes by hand
// (encodeOK), and for a CheckRequest, which it decodes partially: only
// what Check reads (attributes.request.http's method, path and headers, and
// attributes.context_extensions), skipping the rest (the peers' addresses, the request's time,
// id, host, scheme, protocol, metadata), whose decoding with the generic proto decoder, maps and
// nested messages each allocated, cost more than the check itself. A Check that comes to read
// another field must add it to decodeCheckRequest (TestDecodeCheckRequest compares the two).
type checkCodec struct {
	base encoding.CodecV2
}

func (c checkCodec) Name() string { return c.base.Name() }

func (c checkCodec) Marshal(v any) (mem.BufferSlice, error) {
	if resp, ok := v.(*authv3.CheckResponse); ok {
		if b, ok := encodeOK(resp); ok {
			return mem.BufferSlice{mem.SliceBuffer(b)}, nil
		}
	}
	return c.base.Marshal(v)
}

func (c checkCodec) Unmarshal(data mem.BufferSlice, v any) error {
	req, ok := v.(*authv3.CheckRequest)
	if !ok {
		return c.base.Unmarshal(data, v)
	}
	buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
	defer buf.Free()
	return decodeCheckRequest(buf.ReadOnlyData(), req) // copies what it keeps: buf is reused
}

// Field numbers of envoy.service.auth.v3's CheckRequest and AttributeContext.
const (
	fieldCheckAttributes       = 1  // CheckRequest.attributes
	fieldAttrRequest           = 4  // AttributeContext.request
	fieldAttrContextExtensions = 10 // AttributeContext.context_extensions
	fieldRequestHTTP           = 2  // AttributeContext.Request.http
	fieldHTTPMethod            = 2  // AttributeContext.HttpRequest.method
	fieldHTTPHeaders           = 3  // AttributeContext.HttpRequest.headers
	fieldHTTPPath              = 4  // AttributeContext.HttpRequest.path
	fieldMapKey, fieldMapValue = 1, 2
)

var (
	errMalformed   = errors.New("malformed CheckRequest")
	errInvalidUTF8 = errors.New("CheckRequest: a string field holds invalid UTF-8")
)

// decodeCheckRequest decodes b into req as proto.Unmarshal would, for the fields Check reads:
// a message field that appears twice is merged, a string's last value wins, map entries add up
// (a key's last value wins), strings must be UTF-8, and a field of the wrong wire type is
// skipped (proto.Unmarshal keeps it as an unknown field). Other fields are skipped, checked only
// for their framing.
func decodeCheckRequest(b []byte, req *authv3.CheckRequest) error {
	return fields(b, func(num protowire.Number, v []byte) error {
		if num != fieldCheckAttributes {
			return nil
		}
		if req.Attributes == nil {
			req.Attributes = &authv3.AttributeContext{}
		}
		return decodeAttributes(v, req.Attributes)
	})
}

func decodeAttributes(b []byte, a *authv3.AttributeContext) error {
	return fields(b, func(num protowire.Number, v []byte) error {
		switch num {
		case fieldAttrRequest:
			if a.Request == nil {
				a.Request = &authv3.AttributeContext_Request{}
			}
			return fields(v, func(num protowire.Number, v []byte) error {
				if num != fieldRequestHTTP {
					return nil
				}
				if a.Request.Http == nil {
					a.Request.Http = &authv3.AttributeContext_HttpRequest{}
				}
				return decodeHTTP(v, a.Request.Http)
			})
		case fieldAttrContextExtensions:
			if a.ContextExtensions == nil {
				a.ContextExtensions = map[string]string{}
			}
			return mapEntry(v, a.ContextExtensions)
		}
		return nil
	})
}

func decodeHTTP(b []byte, h *authv3.AttributeContext_HttpRequest) error {
	return fields(b, func(num protowire.Number, v []byte) error {
		var err error
		switch num {
		case fieldHTTPMethod:
			h.Method, err = str(v)
		case fieldHTTPPath:
			h.Path, err = str(v)
		case fieldHTTPHeaders:
			if h.Headers == nil {
				h.Headers = map[string]string{}
			}
			err = mapEntry(v, h.Headers)
		}
		return err
	})
}

// fields calls f with the number and contents of each length-delimited field of the message b,
// and skips the fields of other wire types.
func fields(b []byte, f func(protowire.Number, []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return errMalformed
		}
		b = b[n:]
		if typ != protowire.BytesType {
			if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
				return errMalformed
			}
			b = b[n:]
			continue
		}
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return errMalformed
		}
		b = b[n:]
		if err := f(num, v); err != nil {
			return err
		}
	}
	return nil
}

// mapEntry adds the map<string, string> entry b to m: a missing key or value is "".
func mapEntry(b []byte, m map[string]string) error {
	var key, value string
	err := fields(b, func(num protowire.Number, v []byte) error {
		var err error
		switch num {
		case fieldMapKey:
			key, err = str(v)
		case fieldMapValue:
			value, err = str(v)
		}
		return err
	})
	if err != nil {
		return err
	}
	m[key] = value
	return nil
}

// str copies a string field out of the buffer, which gRPC reuses.
func str(b []byte) (string, error) {
	if !utf8.Valid(b) {
		return "", errInvalidUTF8
	}
	return string(b), nil
}

// encodeOK encodes an OK answer as allow builds it, by hand: the generic proto encoder walks the
// dynamic metadata's maps by reflection, twice (size, then bytes), which cost more than the check
// itself. Any other answer, or an OK answer with a field allow does not set, is left to the proto
// codec (ok false). TestEncodeOK checks that proto.Unmarshal reads the bytes back as the answer,
// and that the messages have no field this does not know of.
func encodeOK(resp *authv3.CheckResponse) (b []byte, ok bool) {
	okResp, isOK := resp.GetHttpResponse().(*authv3.CheckResponse_OkResponse)
	if !isOK || !plainOK(resp, okResp.OkResponse) {
		return nil, false
	}
	o := okResp.OkResponse
	b = make([]byte, 0, sizeOK(resp, o))
	if st := resp.GetStatus(); st != nil {
		b = protowire.AppendTag(b, 1, protowire.BytesType) // status
		b = protowire.AppendVarint(b, uint64(sizeStatus(st.GetCode(), st.GetMessage())))
		b = appendStatus(b, st.GetCode(), st.GetMessage())
	}
	b = protowire.AppendTag(b, 3, protowire.BytesType) // ok_response, present even if empty
	b = protowire.AppendVarint(b, uint64(sizeOkHTTP(o)))
	for _, h := range o.GetHeaders() {
		b = appendHeaderOption(b, 2, h)
	}
	for _, name := range o.GetHeadersToRemove() {
		b = protowire.AppendString(protowire.AppendTag(b, 5, protowire.BytesType), name)
	}
	for _, h := range o.GetResponseHeadersToAdd() {
		b = appendHeaderOption(b, 6, h)
	}
	if md := resp.GetDynamicMetadata(); md != nil {
		b = protowire.AppendTag(b, 4, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(sizeStruct(md)))
		b = appendStruct(b, md)
	}
	return b, true
}

// plainOK reports whether resp and o set only the fields encodeOK writes, and their strings are
// UTF-8 (the proto codec refuses others, and so would Envoy).
func plainOK(resp *authv3.CheckResponse, o *authv3.OkHttpResponse) bool {
	if !utf8.ValidString(resp.GetStatus().GetMessage()) {
		return false
	}
	for _, name := range o.GetHeadersToRemove() {
		if !utf8.ValidString(name) {
			return false
		}
	}
	if len(resp.GetStatus().GetDetails()) > 0 || len(resp.ProtoReflect().GetUnknown()) > 0 ||
		(resp.Status != nil && len(resp.Status.ProtoReflect().GetUnknown()) > 0) ||
		o.GetDynamicMetadata() != nil || len(o.GetQueryParametersToSet()) > 0 || len(o.GetQueryParametersToRemove()) > 0 ||
		len(o.ProtoReflect().GetUnknown()) > 0 || !structOK(resp.GetDynamicMetadata()) {
		return false
	}
	for _, list := range [][]*corev3.HeaderValueOption{o.GetHeaders(), o.GetResponseHeadersToAdd()} {
		for _, h := range list {
			if h == nil || h.GetHeader() == nil || h.GetAppend() != nil || h.GetKeepEmptyValue() || len(h.GetHeader().GetRawValue()) > 0 ||
				!utf8.ValidString(h.GetHeader().GetKey()) || !utf8.ValidString(h.GetHeader().GetValue()) ||
				len(h.ProtoReflect().GetUnknown()) > 0 || len(h.GetHeader().ProtoReflect().GetUnknown()) > 0 {
				return false
			}
		}
	}
	return true
}

// structOK reports whether s holds only strings, lists and structs (what allow puts there).
func structOK(s *structpb.Struct) bool {
	if s == nil {
		return true
	}
	if len(s.ProtoReflect().GetUnknown()) > 0 {
		return false
	}
	for k, v := range s.GetFields() {
		if !utf8.ValidString(k) || !valueOK(v) {
			return false
		}
	}
	return true
}

func valueOK(v *structpb.Value) bool {
	if v == nil || len(v.ProtoReflect().GetUnknown()) > 0 {
		return false
	}
	switch k := v.GetKind().(type) {
	case *structpb.Value_StringValue:
		return utf8.ValidString(k.StringValue)
	case *structpb.Value_StructValue:
		return k.StructValue != nil && structOK(k.StructValue)
	case *structpb.Value_ListValue:
		if k.ListValue == nil || len(k.ListValue.ProtoReflect().GetUnknown()) > 0 {
			return false
		}
		for _, x := range k.ListValue.GetValues() {
			if !valueOK(x) {
				return false
			}
		}
		return true
	}
	return false
}

// tagged is the size of a field of number num holding n bytes (length-delimited).
func tagged(num protowire.Number, n int) int {
	return protowire.SizeTag(num) + protowire.SizeBytes(n)
}

func sizeOK(resp *authv3.CheckResponse, o *authv3.OkHttpResponse) int {
	n := tagged(3, sizeOkHTTP(o))
	if st := resp.GetStatus(); st != nil {
		n += tagged(1, sizeStatus(st.GetCode(), st.GetMessage()))
	}
	if md := resp.GetDynamicMetadata(); md != nil {
		n += tagged(4, sizeStruct(md))
	}
	return n
}

// google.rpc.Status: code = 1, message = 2.
func sizeStatus(code int32, message string) int {
	n := 0
	if code != 0 {
		n += protowire.SizeTag(1) + protowire.SizeVarint(uint64(int64(code)))
	}
	if message != "" {
		n += tagged(2, len(message))
	}
	return n
}

func appendStatus(b []byte, code int32, message string) []byte {
	if code != 0 {
		b = protowire.AppendVarint(protowire.AppendTag(b, 1, protowire.VarintType), uint64(int64(code)))
	}
	if message != "" {
		b = protowire.AppendString(protowire.AppendTag(b, 2, protowire.BytesType), message)
	}
	return b
}

// OkHttpResponse: headers = 2, headers_to_remove = 5, response_headers_to_add = 6.
func sizeOkHTTP(o *authv3.OkHttpResponse) int {
	n := 0
	for _, h := range o.GetHeaders() {
		n += tagged(2, sizeHeaderOption(h))
	}
	for _, name := range o.GetHeadersToRemove() {
		n += tagged(5, len(name))
	}
	for _, h := range o.GetResponseHeadersToAdd() {
		n += tagged(6, sizeHeaderOption(h))
	}
	return n
}

// HeaderValueOption: header = 1 (HeaderValue: key = 1, value = 2), append_action = 3.
func sizeHeaderValue(h *corev3.HeaderValue) int {
	n := 0
	if k := h.GetKey(); k != "" {
		n += tagged(1, len(k))
	}
	if v := h.GetValue(); v != "" {
		n += tagged(2, len(v))
	}
	return n
}

func sizeHeaderOption(h *corev3.HeaderValueOption) int {
	n := tagged(1, sizeHeaderValue(h.GetHeader()))
	if a := h.GetAppendAction(); a != 0 {
		n += protowire.SizeTag(3) + protowire.SizeVarint(uint64(a))
	}
	return n
}

func appendHeaderOption(b []byte, num protowire.Number, h *corev3.HeaderValueOption) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(sizeHeaderOption(h)))
	hv := h.GetHeader()
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(sizeHeaderValue(hv)))
	if k := hv.GetKey(); k != "" {
		b = protowire.AppendString(protowire.AppendTag(b, 1, protowire.BytesType), k)
	}
	if v := hv.GetValue(); v != "" {
		b = protowire.AppendString(protowire.AppendTag(b, 2, protowire.BytesType), v)
	}
	if a := h.GetAppendAction(); a != 0 {
		b = protowire.AppendVarint(protowire.AppendTag(b, 3, protowire.VarintType), uint64(a))
	}
	return b
}

// google.protobuf.Struct: fields = 1 (map entries: key = 1, value = 2). Value: string_value = 3,
// struct_value = 5, list_value = 6 (ListValue: values = 1).
func sizeEntry(k string, v *structpb.Value) int {
	return tagged(1, len(k)) + tagged(2, sizeValue(v))
}

func sizeStruct(s *structpb.Struct) int {
	n := 0
	for k, v := range s.GetFields() {
		n += tagged(1, sizeEntry(k, v))
	}
	return n
}

func sizeValue(v *structpb.Value) int {
	switch k := v.GetKind().(type) {
	case *structpb.Value_StringValue:
		return tagged(3, len(k.StringValue))
	case *structpb.Value_StructValue:
		return tagged(5, sizeStruct(k.StructValue))
	case *structpb.Value_ListValue:
		return tagged(6, sizeList(k.ListValue))
	}
	return 0 // structOK has ruled out the rest
}

func sizeList(l *structpb.ListValue) int {
	n := 0
	for _, v := range l.GetValues() {
		n += tagged(1, sizeValue(v))
	}
	return n
}

func appendStruct(b []byte, s *structpb.Struct) []byte {
	for k, v := range s.GetFields() {
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(sizeEntry(k, v)))
		b = protowire.AppendString(protowire.AppendTag(b, 1, protowire.BytesType), k)
		b = protowire.AppendTag(b, 2, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(sizeValue(v)))
		b = appendValue(b, v)
	}
	return b
}

func appendValue(b []byte, v *structpb.Value) []byte {
	switch k := v.GetKind().(type) {
	case *structpb.Value_StringValue:
		b = protowire.AppendString(protowire.AppendTag(b, 3, protowire.BytesType), k.StringValue)
	case *structpb.Value_StructValue:
		b = protowire.AppendTag(b, 5, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(sizeStruct(k.StructValue)))
		b = appendStruct(b, k.StructValue)
	case *structpb.Value_ListValue:
		b = protowire.AppendTag(b, 6, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(sizeList(k.ListValue)))
		for _, x := range k.ListValue.GetValues() {
			b = protowire.AppendTag(b, 1, protowire.BytesType)
			b = protowire.AppendVarint(b, uint64(sizeValue(x)))
			b = appendValue(b, x)
		}
	}
	return b
}
