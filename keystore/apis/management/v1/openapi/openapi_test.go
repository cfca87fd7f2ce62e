package openapi_test

import (
	"reflect"
	"slices"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/managedfields"
	openapinamer "k8s.io/apiserver/pkg/endpoints/openapi"
	"k8s.io/kube-openapi/pkg/builder3"
	"k8s.io/kube-openapi/pkg/common"
	"k8s.io/kube-openapi/pkg/util"
	"k8s.io/kube-openapi/pkg/validation/spec"

	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
	"github.com/keygate-dev/keygate/keystore/apis/management/v1/openapi"
)

// TestDefinitionsServeServerSideApply builds the definitions the way k8s.io/apiserver does for
// server-side apply (GenericAPIServer.getOpenAPIModels) and types real objects with them: a
// missing referenced definition or a schema that does not fit the Go type fails here rather than
// when the server starts or when the first apply arrives.
func TestDefinitionsServeServerSideApply(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := v1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	config := &common.OpenAPIV3Config{
		Info:              &spec.Info{InfoProps: spec.InfoProps{Title: "management", Version: "v1"}},
		GetDefinitions:    openapi.GetOpenAPIDefinitions,
		GetDefinitionName: openapinamer.NewDefinitionNamer(scheme).GetDefinitionName,
	}
	objects := []runtime.Object{
		&v1.OwnedAccessKey{
			TypeMeta:   metav1.TypeMeta{APIVersion: "management.loft.sh/v1", Kind: "OwnedAccessKey"},
			ObjectMeta: metav1.ObjectMeta{Name: "ci"},
			Spec: v1.OwnedAccessKeySpec{User: "alice", Groups: []string{"dev"}, Scope: &v1.AccessKeyScope{
				Rules: []v1.AccessKeyScopeRule{{Verbs: []string{"get"}, NonResourceURLs: []string{"/version"}}},
			}},
		},
		&v1.Self{
			TypeMeta: metav1.TypeMeta{APIVersion: "management.loft.sh/v1", Kind: "Self"},
			Status:   v1.SelfStatus{User: &v1.UserInfo{EntityInfo: v1.EntityInfo{Name: "alice"}}, Groups: []string{"dev"}},
		},
	}
	var names []string
	for _, obj := range objects {
		names = append(names, util.GetCanonicalTypeName(obj))
	}
	defs, err := builder3.BuildOpenAPIDefinitionsForResources(config, names...)
	if err != nil {
		t.Fatal(err)
	}
	for i, name := range names {
		def := defs[common.EscapeJsonPointer(name)]
		if def == nil {
			t.Fatalf("no definition %s", name)
		}
		want := map[string]interface{}{"group": "management.loft.sh", "version": "v1", "kind": objects[i].GetObjectKind().GroupVersionKind().Kind}
		// The list also holds the __internal version, because the same Go type is registered
		// there; apply and kubectl look kinds up by their served version, so only v1 matters.
		gvks, _ := def.Extensions["x-kubernetes-group-version-kind"].([]interface{})
		if !slices.ContainsFunc(gvks, func(g interface{}) bool { return reflect.DeepEqual(g, want) }) {
			t.Errorf("%s: x-kubernetes-group-version-kind %v lacks %v", name, gvks, want)
		}
	}
	converter, err := managedfields.NewTypeConverter(defs, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, obj := range objects {
		if _, err := converter.ObjectToTyped(obj); err != nil {
			t.Errorf("%T: %v", obj, err)
		}
	}
}
