package credential

import (
	"fmt"
	"net"
	"net/url"
	"strings"
)

// The addresses a virtual cluster's server must not have. A virtual cluster's server is often
// copied from what a tenant wrote (vcluster's kubeconfig Secret, exportKubeConfig.server), and
// the edge would forward every request, with a CA the same tenant supplied, to whatever it
// names: its own host (Envoy's admin port, xds, extauthz), the node's link-local services, or a
// cloud's metadata service, which hands out the node's credentials.

// metadataIPs are cloud metadata services outside the link-local ranges net.IP already knows:
// AWS's IPv6 endpoint and Alibaba Cloud's.
var metadataIPs = []net.IP{net.ParseIP("fd00:ec2::254"), net.ParseIP("100.100.100.200")}

// metadataNames are the DNS names of cloud metadata services (GCP's, AWS's), which resolve to
// link-local addresses only inside the cloud: the name has to be refused, not its address.
var metadataNames = map[string]bool{
	"metadata": true, "metadata.google.internal": true, "metadata.goog": true,
	"instance-data": true, "instance-data.ec2.internal": true,
}

// nat64 is the well-known NAT64 prefix (RFC 6052): 64:ff9b::a9fe:a9fe reaches 169.254.169.254
// through a NAT64 gateway.
var nat64 = &net.IPNet{IP: net.ParseIP("64:ff9b::"), Mask: net.CIDRMask(96, 128)}

// CheckServer refuses a server the edge must never be sent to: anything but https, a
// loopback, unspecified, link-local or multicast address, a cloud metadata service (by address
// or name), and names a resolver would read as an IPv4 address (127.1, 2130706433, 0x7f.1).
// It is the one check of a virtual cluster's server; it cannot see what a DNS name resolves to,
// which is why discovery takes no names from tenants at all (xds/README.md, "Trust").
func CheckServer(u *url.URL) error {
	if u.Scheme != "https" {
		return fmt.Errorf("%q: scheme must be https (the edge's credential must not travel in clear)", u.String())
	}
	host := strings.ToLower(strings.TrimSuffix(u.Hostname(), "."))
	if strings.Contains(host, "%") {
		return fmt.Errorf("%q: an IPv6 zone names a link-local address", u.String())
	}
	if ip := net.ParseIP(host); ip != nil {
		if why := refusedIP(ip); why != "" {
			return fmt.Errorf("%q: %s", u.String(), why)
		}
		return nil
	}
	switch {
	case host == "localhost" || strings.HasSuffix(host, ".localhost"):
		return fmt.Errorf("%q: a loopback name (the edge's own host)", u.String())
	case metadataNames[host]:
		return fmt.Errorf("%q: a cloud metadata service", u.String())
	case numericTLD(host):
		return fmt.Errorf("%q: not a DNS name (a resolver reads it as an IP address)", u.String())
	}
	return nil
}

// refusedIP says why the edge must not be sent to ip, or "".
func refusedIP(ip net.IP) string {
	if nat64.Contains(ip) {
		ip = ip[12:16]
	}
	for _, m := range metadataIPs {
		if m.Equal(ip) {
			return "a cloud metadata service"
		}
	}
	switch {
	case ip.IsLoopback():
		return "a loopback address (the edge's own host)"
	case ip.IsUnspecified() || (ip.To4() != nil && ip.To4()[0] == 0):
		return "an unspecified address (the edge's own host)"
	case ip.IsLinkLocalUnicast():
		return "a link-local address (the node's own services, cloud metadata such as 169.254.169.254)"
	case ip.IsMulticast():
		return "a multicast address"
	}
	return ""
}

// numericTLD reports whether host's last label is a number (decimal, or hex with 0x): no DNS
// top-level domain is, and inet_aton-style resolvers read such names as IPv4 addresses.
func numericTLD(host string) bool {
	last := host[strings.LastIndex(host, ".")+1:]
	digits := strings.TrimPrefix(last, "0x")
	if digits == "" {
		return false
	}
	hex := digits != last
	for _, r := range digits {
		isDigit := r >= '0' && r <= '9'
		if !isDigit && !(hex && r >= 'a' && r <= 'f') {
			return false
		}
	}
	return true
}
