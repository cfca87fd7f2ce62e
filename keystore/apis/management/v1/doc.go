// +k8s:deepcopy-gen=package
// +k8s:openapi-gen=true
// +k8s:openapi-model-package=sh.loft.management.v1
// +groupName=management.loft.sh

// Package v1 holds the management.loft.sh/v1 API types that the edge stores and serves. Field
// names and JSON names follow Loft's public API exactly, so that objects written for Loft work
// here unchanged.
//
// The same Go types also serve as the group's internal version (see register.go), so there are
// no conversion functions.
//
// Every list is tagged +listType=atomic: server-side apply already treats untagged lists as
// atomic, so the tags change no behaviour and only state it in the OpenAPI, as openapi-gen's
// list_type_missing rule asks.
//
// The OpenAPI model names are sh.loft.management.v1.<Type>, the names kube-apiserver would give
// the group's schemas as CRDs: they belong to the API, not to this Go module's path.
// k8s.io/apiserver finds a kind's schema (and adds x-kubernetes-group-version-kind, which
// server-side apply and kubectl need) through the OpenAPIModelName methods in
// zz_generated.model_name.go; without them the names would not match.
//
// zz_generated.*.go and the openapi package are generated: run `make generate`
// (scripts/codegen.sh) after changing a type.
package v1
