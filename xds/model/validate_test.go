package model

import (
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/keygate-dev/keygate/internal/edgepath"
	"github.com/keygate-dev/keygate/internal/pki"
)

func TestUpstreamValidate(t *testing.T) {
	ca, err := pki.NewCA("test CA")
	if err != nil {
		t.Fatal(err)
	}
	a, err := ca.Client("a")
	if err != nil {
		t.Fatal(err)
	}
	b, err := ca.Client("b")
	if err != nil {
		t.Fatal(err)
	}
	https := &url.URL{Scheme: "https", Host: "10.0.0.1:6443"}
	http := &url.URL{Scheme: "http", Host: "10.0.0.1:80"}
	type broken struct {
		Rule  Rule
		Field Field
	}
	tests := map[string]struct {
		u    Upstream
		want []broken
	}{
		"good https":         {Upstream{URL: https, CA: ca.CertPEM, ClientCert: a.CertPEM, ClientKey: a.KeyPEM}, nil},
		"good http":          {Upstream{URL: http}, nil},
		"https without a CA": {Upstream{URL: https}, []broken{{RuleNeedsCA, FieldCA}}},
		"a key as CA, bad name": {Upstream{URL: https, CA: a.KeyPEM, ServerName: "not a name"},
			[]broken{{RuleCA, FieldCA}, {RuleServerName, FieldServerName}}},
		// Given but empty is still given: an http upstream has nothing of TLS.
		"http with TLS items": {Upstream{URL: http, CA: []byte{}, ServerName: "x", Token: "t"},
			[]broken{{RuleNoTLSOverHTTP, FieldCA}, {RuleNoTLSOverHTTP, FieldServerName}, {RuleNoTLSOverHTTP, FieldToken}}},
		"certificate alone": {Upstream{URL: https, CA: ca.CertPEM, ClientCert: a.CertPEM}, []broken{{RuleCertNeedsKey, FieldClientKey}}},
		"key alone":         {Upstream{URL: https, CA: ca.CertPEM, ClientKey: a.KeyPEM}, []broken{{RuleKeyNeedsCert, FieldClientCert}}},
		"another's key and a token": {Upstream{URL: https, CA: ca.CertPEM, ClientCert: a.CertPEM, ClientKey: b.KeyPEM, Token: "t"},
			[]broken{{RuleKeyPair, FieldClientCert}, {RuleCertOrToken, FieldToken}}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var got []broken
			var errs UpstreamErrors
			if err := tc.u.Validate(); errors.As(err, &errs) {
				for _, e := range errs {
					got = append(got, broken{e.Rule, e.Field})
				}
			} else if err != nil {
				t.Fatalf("Validate = %v, not UpstreamErrors", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("rules broken (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNewTarget(t *testing.T) {
	called := false
	_, err := NewTarget(edgepath.Ref{Kind: edgepath.KindCluster, Cluster: "Bad_Name"}, func() (Upstream, error) {
		called = true
		return Upstream{}, nil
	})
	var refErr *RefError
	if !errors.As(err, &refErr) || called {
		t.Errorf("bad ref: error %v, upstream read %v; want a RefError and no read", err, called)
	}
	_, err = NewTarget(edgepath.Ref{Kind: edgepath.KindCluster, Cluster: "demo"}, func() (Upstream, error) {
		return Upstream{URL: &url.URL{Scheme: "https", Host: "demo"}}, nil
	})
	var errs UpstreamErrors
	if !errors.As(err, &errs) || len(errs) != 1 || errs[0].Rule != RuleNeedsCA {
		t.Errorf("https without CA: error %v, want RuleNeedsCA", err)
	}
}

func TestParseURL(t *testing.T) {
	for raw, want := range map[string]string{
		"":                         "is required",
		"ftp://x":                  `"ftp://x": scheme must be http or https`,
		"https:///x":               "has no host",
		"https://u:p@x":            "must not carry credentials",
		"https://x/base":           "must not have a path",
		"https://x:0":              `port "0" is not a number from 1 to 65535`,
		"https://x:6443/":          "",
		"http://10.0.0.1:8080":     "",
		"https://[2001:db8::1]:44": "",
	} {
		u, err := ParseURL(raw, "http", "https")
		switch {
		case want == "" && err != nil:
			t.Errorf("ParseURL(%q) = %v", raw, err)
		case want == "" && u.Path != "":
			t.Errorf("ParseURL(%q) kept path %q", raw, u.Path)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Errorf("ParseURL(%q) = %v, want an error containing %q", raw, err, want)
		}
	}
	if _, err := ParseURL("http://x", "https"); err == nil || !strings.Contains(err.Error(), "scheme must be https") {
		t.Errorf("http where only https is allowed: %v", err)
	}
}
