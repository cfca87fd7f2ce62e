package model

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/keygate-dev/keygate/internal/edgepath"
)

// The rules every target follows, whichever source it comes from (xds/README.md). Each source
// hands over what it read and words the errors in its own terms (a targets file's fields, a
// Secret's keys), since that is what an operator fixes; the rules themselves live here only.

// NewTarget is the one way a source's data becomes a target: ref must follow edgepath's grammar
// (else a *RefError, and upstream is not called: a source need not read the credentials of a
// target it cannot serve), then upstream reads what the source holds (its errors are returned
// as they are), and the upstream must follow the rules of Upstream.Validate (else
// UpstreamErrors).
func NewTarget(ref edgepath.Ref, upstream func() (Upstream, error)) (Target, error) {
	if err := ref.Validate(); err != nil {
		return Target{}, &RefError{Err: err}
	}
	u, err := upstream()
	if err != nil {
		return Target{}, err
	}
	if err := u.Validate(); err != nil {
		return Target{}, err
	}
	return Target{Ref: ref, Upstream: u}, nil
}

// RefError is a target's Ref that edgepath refuses.
type RefError struct{ Err error }

func (e *RefError) Error() string { return e.Err.Error() }
func (e *RefError) Unwrap() error { return e.Err }

// Field is the part of an Upstream a rule is about.
type Field string

// The fields of an Upstream, as UpstreamError names them.
const (
	FieldCA         Field = "CA"
	FieldClientCert Field = "ClientCert"
	FieldClientKey  Field = "ClientKey"
	FieldServerName Field = "ServerName"
	FieldToken      Field = "Token"
)

// Rule is one rule of upstreams.
type Rule int

// The rules of Upstream.Validate, in the order it checks them.
const (
	// RuleNeedsCA: an https upstream has a CA (the edge always verifies upstream certificates).
	RuleNeedsCA Rule = iota + 1
	// RuleCA: a CA bundle holds certificates only, at least one (Err says what is wrong).
	RuleCA
	// RuleServerName: a server name is an IP address or a DNS name (Err says why not).
	RuleServerName
	// RuleNoTLSOverHTTP: an http upstream has no TLS material and no credential (Field says
	// which is set): it would travel in clear, or be ignored, and most likely the URL is wrong.
	RuleNoTLSOverHTTP
	// RuleCertNeedsKey and RuleKeyNeedsCert: a client certificate and its key come together.
	RuleCertNeedsKey
	RuleKeyNeedsCert
	// RuleKeyPair: the client certificate and key form a pair (Err is tls.X509KeyPair's).
	RuleKeyPair
	// RuleCertOrToken: a client certificate or a token, not both (the API server would pick one).
	RuleCertOrToken
)

// UpstreamError is one rule an upstream breaks. Its Error words it neutrally; sources that name
// the field their way switch on Rule and Field.
type UpstreamError struct {
	Rule  Rule
	Field Field
	// Err is the detail, for the rules that have one.
	Err error
}

func (e *UpstreamError) Error() string {
	switch e.Rule {
	case RuleNeedsCA:
		return "no CA: an https upstream needs one (the edge always verifies upstream certificates)"
	case RuleCA:
		return "CA: " + e.Err.Error()
	case RuleServerName:
		return "tlsServerName " + e.Err.Error()
	case RuleNoTLSOverHTTP:
		return "TLS settings or a credential for an http upstream; use an https URL"
	case RuleCertNeedsKey:
		return "a client certificate without its key"
	case RuleKeyNeedsCert:
		return "a client key without its certificate"
	case RuleKeyPair:
		return "client certificate and key: not a matching PEM pair: " + e.Err.Error()
	case RuleCertOrToken:
		return "both a client certificate and a token: keep one"
	}
	return fmt.Sprintf("rule %d: %v", e.Rule, e.Err)
}

func (e *UpstreamError) Unwrap() error { return e.Err }

// UpstreamErrors are every rule an upstream breaks, in the order Validate checks them.
type UpstreamErrors []*UpstreamError

func (es UpstreamErrors) Error() string {
	msgs := make([]string, len(es))
	for i, e := range es {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "\n")
}

// Validate checks u's TLS material and credential, and returns UpstreamErrors (nil if it breaks
// no rule). A source hands over nil for a PEM item it was not given: an empty one given for an
// http upstream is still TLS material where none belongs.
func (u Upstream) Validate() error {
	var errs UpstreamErrors
	add := func(r Rule, f Field, err error) { errs = append(errs, &UpstreamError{Rule: r, Field: f, Err: err}) }
	if u.TLS() {
		if len(u.CA) == 0 {
			add(RuleNeedsCA, FieldCA, nil)
		} else if err := checkCA(u.CA); err != nil {
			add(RuleCA, FieldCA, err)
		}
		if err := checkServerName(u.ServerName); err != nil {
			add(RuleServerName, FieldServerName, err)
		}
	} else {
		for _, s := range []struct {
			f   Field
			set bool
		}{
			{FieldCA, u.CA != nil}, {FieldClientCert, u.ClientCert != nil}, {FieldClientKey, u.ClientKey != nil},
			{FieldServerName, u.ServerName != ""}, {FieldToken, u.Token != ""},
		} {
			if s.set {
				add(RuleNoTLSOverHTTP, s.f, nil)
			}
		}
	}
	switch hasCert, hasKey := len(u.ClientCert) > 0, len(u.ClientKey) > 0; {
	case hasCert && !hasKey:
		add(RuleCertNeedsKey, FieldClientKey, nil)
	case hasKey && !hasCert:
		add(RuleKeyNeedsCert, FieldClientCert, nil)
	case hasCert && hasKey:
		if _, err := tls.X509KeyPair(u.ClientCert, u.ClientKey); err != nil {
			add(RuleKeyPair, FieldClientCert, err)
		}
		if u.Token != "" {
			add(RuleCertOrToken, FieldToken, nil)
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return errs
}

// checkServerName accepts an empty name (the URL's host is verified), an IP address or a DNS name.
func checkServerName(name string) error {
	if name == "" || net.ParseIP(name) != nil {
		return nil
	}
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
		return fmt.Errorf("%q is neither an IP address nor a DNS name: %v", name, errs)
	}
	return nil
}

// checkCA makes sure a CA bundle holds at least one certificate and nothing that is not one.
func checkCA(data []byte) error {
	n := 0
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return fmt.Errorf("holds a PEM %q block; a CA bundle holds certificates only", block.Type)
		}
		if _, err := x509.ParseCertificate(block.Bytes); err != nil {
			return fmt.Errorf("certificate %d: %w", n+1, err)
		}
		n++
	}
	if n == 0 {
		return errors.New("no PEM certificate found")
	}
	return nil
}

// ErrURLCredentials is in the error of ParseURL for a URL with user information, so that a
// source can say what to use instead.
var ErrURLCredentials = errors.New("must not carry credentials")

// ParseURL accepts a URL of one of schemes with a host and an optional port, nothing else: the
// edge strips the target's prefix and forwards the rest, so a base path would be silently
// dropped.
func ParseURL(raw string, schemes ...string) (*url.URL, error) {
	if raw == "" {
		return nil, errors.New("is required")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	if !slices.Contains(schemes, u.Scheme) {
		return nil, fmt.Errorf("%q: scheme must be %s", raw, joinOr(schemes))
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("%q: has no host", raw)
	}
	if u.User != nil {
		return nil, fmt.Errorf("%q: %w", raw, ErrURLCredentials)
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("%q: must not have a path, query or fragment (the edge forwards the path after the target's prefix as it is)", raw)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("%q: port %q is not a number from 1 to 65535", raw, p)
		}
	}
	u.Path = ""
	return u, nil
}

// joinOr lists s for a message: "a", "a or b", "a, b or c".
func joinOr(s []string) string {
	if len(s) < 2 {
		return strings.Join(s, "")
	}
	return strings.Join(s[:len(s)-1], ", ") + " or " + s[len(s)-1]
}

// Space is a namespace of a connected cluster that belongs to a project.
type Space struct {
	Name    string
	Project string
}

// SpaceError is why one entry of a list of spaces is refused.
type SpaceError struct {
	// Index and Space are the entry.
	Index int
	Space Space
	// Duplicate is set if an earlier entry has the same name; otherwise Field ("name", or
	// `project "p"`) breaks the DNS-1123 label rules in Problems.
	Duplicate bool
	Field     string
	Problems  string
}

func (e *SpaceError) Error() string {
	if e.Duplicate {
		return fmt.Sprintf("spaces[%d] (%s): duplicate space", e.Index, e.Space.Name)
	}
	return fmt.Sprintf("spaces[%d] (%s): %s: %s", e.Index, e.Space.Name, e.Field, e.Problems)
}

// SpacesOf checks a cluster's spaces as edgepath.Ref.Spaces requires (names and projects are
// DNS-1123 labels, each name once) and returns the good ones as a namespace → project map, for
// edgepath.FormatSpaces, and an error for each entry that is not.
func SpacesOf(spaces []Space) (map[string]string, []*SpaceError) {
	out := map[string]string{}
	var errs []*SpaceError
	for i, sp := range spaces {
		e := &SpaceError{Index: i, Space: sp}
		if p := validation.IsDNS1123Label(sp.Name); len(p) > 0 {
			e.Field, e.Problems = "name", strings.Join(p, "; ")
		} else if p := validation.IsDNS1123Label(sp.Project); len(p) > 0 {
			e.Field, e.Problems = fmt.Sprintf("project %q", sp.Project), strings.Join(p, "; ")
		} else if _, dup := out[sp.Name]; dup {
			e.Duplicate = true
		} else {
			out[sp.Name] = sp.Project
			continue
		}
		errs = append(errs, e)
	}
	return out, errs
}
