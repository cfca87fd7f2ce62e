package kube

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

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/keygate-dev/keygate/xds/model"
)

// The checks below hold every upstream to the targets file's rules (xds/README.md), so that a
// target is refused the same way whichever source it comes from.

// parseURL accepts a URL of one of schemes with a host and an optional port, nothing else: the
// edge strips the target's prefix and forwards the rest, so a base path would be silently
// dropped.
func parseURL(raw string, schemes ...string) (*url.URL, error) {
	if raw == "" {
		return nil, errors.New("is empty")
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
		return nil, fmt.Errorf("%q: must not carry credentials", raw)
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

func joinOr(s []string) string {
	switch len(s) {
	case 0:
		return ""
	case 1:
		return s[0]
	}
	out := s[0]
	for _, x := range s[1 : len(s)-1] {
		out += ", " + x
	}
	return out + " or " + s[len(s)-1]
}

// checkUpstream checks an upstream's TLS material and credential. The errors name the Secret
// keys the material comes from, since that is what an operator fixes; they never quote it.
func checkUpstream(u model.Upstream) error {
	var errs []error
	if u.TLS() {
		if len(u.CA) == 0 {
			errs = append(errs, fmt.Errorf("no CA: an https upstream needs %s (the edge always verifies upstream certificates)", "ca.crt or the kubeconfig's certificate-authority-data"))
		} else if err := checkCA(u.CA); err != nil {
			errs = append(errs, fmt.Errorf("CA: %w", err))
		}
		if u.ServerName != "" && net.ParseIP(u.ServerName) == nil {
			if e := validation.IsDNS1123Subdomain(u.ServerName); len(e) > 0 {
				errs = append(errs, fmt.Errorf("tlsServerName %q is neither an IP address nor a DNS name: %v", u.ServerName, e))
			}
		}
	} else if len(u.CA)+len(u.ClientCert)+len(u.ClientKey) > 0 || u.ServerName != "" || u.Token != "" {
		// A credential over plain HTTP would travel in clear, and TLS settings would be ignored:
		// most likely the URL is wrong.
		errs = append(errs, errors.New("TLS settings or a credential for an http upstream; use an https URL"))
	}
	switch hasCert, hasKey := len(u.ClientCert) > 0, len(u.ClientKey) > 0; {
	case hasCert && !hasKey:
		errs = append(errs, errors.New("a client certificate without its key"))
	case hasKey && !hasCert:
		errs = append(errs, errors.New("a client key without its certificate"))
	case hasCert && hasKey:
		if _, err := tls.X509KeyPair(u.ClientCert, u.ClientKey); err != nil {
			errs = append(errs, fmt.Errorf("client certificate and key: not a matching PEM pair: %w", err))
		}
		if u.Token != "" {
			// The API server would pick one of the two: say which is meant.
			errs = append(errs, errors.New("both a client certificate and a token: keep one"))
		}
	}
	return errors.Join(errs...)
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
