package translate

import (
	"fmt"
	"math/rand/v2"
	"net/url"
	"reflect"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/keygate-dev/keygate/internal/edgepath"
	"github.com/keygate-dev/keygate/xds/model"
)

// TestFingerprint: changing any field of a target, however deep, changes its fingerprint, so
// that a Translator never reuses the resources of a target that changed. A new field of a kind
// the test cannot vary fails it, until the test (and fingerprint) learn about it.
func TestFingerprint(t *testing.T) {
	base := model.Target{Ref: vc1, Upstream: withToken(t, "https://vc1.example.com:8443/base", "token")}
	base.Ref.Project, base.Ref.Spaces = "p", "a=p"
	base.Upstream.ClientCert, base.Upstream.ClientKey = pemFile(t, "edge.crt"), pemFile(t, "edge.key")
	base.Upstream.ServerName = "vc1.internal"
	want := fingerprint(base)
	if fingerprint(base) != want {
		t.Fatal("fingerprint is not deterministic")
	}
	var vary func(path string, v reflect.Value)
	vary = func(path string, v reflect.Value) {
		for i := range v.NumField() {
			f, name := v.Field(i), path+"."+v.Type().Field(i).Name
			if !v.Type().Field(i).IsExported() {
				continue
			}
			check := func(set func()) {
				t.Helper()
				saved := reflect.New(f.Type()).Elem()
				saved.Set(f)
				set()
				if fingerprint(base) == want {
					t.Errorf("changing %s does not change the fingerprint", name)
				}
				f.Set(saved)
			}
			switch {
			case f.Kind() == reflect.String:
				check(func() { f.SetString(f.String() + "x") })
			case f.Type() == reflect.TypeFor[[]byte]():
				check(func() { f.SetBytes(append([]byte(nil), append(f.Bytes(), 'x')...)) })
			case f.Type() == reflect.TypeFor[*url.URL]():
				// Every part of the URL counts: scheme, host, port, path.
				for _, raw := range []string{"http://vc1.example.com:8443/base", "https://vc2.example.com:8443/base", "https://vc1.example.com:9443/base", "https://vc1.example.com:8443/other"} {
					u, err := url.Parse(raw)
					if err != nil {
						t.Fatal(err)
					}
					check(func() { f.Set(reflect.ValueOf(u)) })
				}
			case f.Kind() == reflect.Struct:
				vary(name, f)
			default:
				t.Errorf("%s is a %s: make fingerprint cover it, then teach this test to vary it", name, f.Type())
			}
		}
	}
	vary("Target", reflect.ValueOf(&base).Elem())
}

// TestTranslatorReusesUnchangedTargets: a Translator's output equals Translate's, its unchanged
// targets keep the very same resources, a changed target gets new ones, and a failed
// translation changes nothing.
func TestTranslatorReusesUnchangedTargets(t *testing.T) {
	opts := goldenOptions(t)
	tr, err := NewTranslator(opts)
	if err != nil {
		t.Fatal(err)
	}
	a := model.Target{Ref: demo, Upstream: secure(t, "https://127.0.0.1:6443")}
	b := model.Target{Ref: vc1, Upstream: secure(t, "https://vc1.example.com")}
	c := model.Target{Ref: mgmt, Upstream: secure(t, "https://127.0.0.1:9443")}
	translated := func(m model.Model) Resources {
		t.Helper()
		got, err := tr.Translate(m)
		if err != nil {
			t.Fatal(err)
		}
		fresh, err := Translate(m, opts)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(fresh, got, protocmp.Transform()); diff != "" {
			t.Fatalf("Translator and Translate differ (-Translate +Translator):\n%s", diff)
		}
		return got
	}
	first := translated(model.New(a, b, c))
	moved := a
	moved.Upstream = secure(t, "https://127.0.0.1:6444")
	second := translated(model.New(moved, b, c))
	same := func(kind string, x, y any) {
		t.Helper()
		if x != y {
			t.Errorf("%s was built again, though its target did not change", kind)
		}
	}
	// Targets sort by prefix: cluster demo, management, virtual cluster vc1; the static
	// route configuration and scope come first.
	same("the listener", first.Listeners[0], second.Listeners[0])
	same("vc1's cluster", first.Clusters[2], second.Clusters[2])
	same("vc1's route configuration", first.Routes[2], second.Routes[2])
	same("vc1's scope", first.ScopedRoutes[2], second.ScopedRoutes[2])
	same("management's cluster", first.Clusters[1], second.Clusters[1])
	if first.Clusters[0] == second.Clusters[0] || first.Routes[1] == second.Routes[1] {
		t.Error("demo moved, yet its cluster or routes were reused")
	}

	// A model that cannot be translated fails and leaves the Translator as it was.
	bad := model.Target{Ref: edgepath.Ref{Kind: edgepath.KindCluster, Cluster: "bad"}, Upstream: plain(t, "https://10.0.0.1")}
	bad.Upstream.ClientCert = []byte("not a certificate")
	if _, err := tr.Translate(model.New(moved, b, c, bad)); err == nil {
		t.Fatal("a broken target translated")
	}
	third := translated(model.New(moved, b, c))
	same("demo's cluster after a failed translation", second.Clusters[0], third.Clusters[0])
}

// TestTranslatorAgreesWithTranslate: over a random walk of models (targets added, removed,
// moved, rotated, in random order), every Translator output equals Translate's and passes every
// check from scratch.
func TestTranslatorAgreesWithTranslate(t *testing.T) {
	opts := goldenOptions(t)
	tr, err := NewTranslator(opts)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	variant := func(i, v int) model.Target {
		refs := []edgepath.Ref{
			{Kind: edgepath.KindCluster, Cluster: fmt.Sprintf("c%d", i)},
			{Kind: edgepath.KindGrafana, Cluster: fmt.Sprintf("c%d", i)},
			{Kind: edgepath.KindVirtualCluster, Cluster: fmt.Sprintf("c%d", i), Namespace: "ns", VirtualCluster: "vc", Project: "p"},
		}
		u := secure(t, fmt.Sprintf("https://10.0.0.%d:%d", i+1, 6443+v%3))
		if v%2 == 1 {
			u = withToken(t, u.URL.String(), fmt.Sprintf("token-%d", v))
		}
		return model.Target{Ref: refs[i%len(refs)], Upstream: u}
	}
	for step := range 60 {
		var ts []model.Target
		for i := range 9 {
			if rng.IntN(4) > 0 {
				ts = append(ts, variant(i, rng.IntN(4)))
			}
		}
		rng.Shuffle(len(ts), func(a, b int) { ts[a], ts[b] = ts[b], ts[a] })
		m := model.New(ts...)
		got, err := tr.Translate(m)
		if err != nil {
			t.Fatalf("step %d: %v", step, err)
		}
		fresh, err := Translate(m, opts)
		if err != nil {
			t.Fatalf("step %d: %v", step, err)
		}
		if diff := cmp.Diff(fresh, got, protocmp.Transform()); diff != "" {
			t.Fatalf("step %d: Translator and Translate differ (-Translate +Translator):\n%s", step, diff)
		}
		if err := got.validate(); err != nil {
			t.Fatalf("step %d: %v", step, err)
		}
	}
}
