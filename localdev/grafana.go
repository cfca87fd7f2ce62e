package localdev

import (
	"encoding/json"
	"net"
	"net/http"
)

// GrafanaRequest is what the Grafana stand-in saw of a request; it answers every request with
// it as JSON, so tests can see exactly what the edge forwarded.
type GrafanaRequest struct {
	Server  string              `json:"server"`
	Method  string              `json:"method"`
	Path    string              `json:"path"`
	Query   string              `json:"query"`
	Headers map[string][]string `json:"headers"`
	// User and Groups are the auth-proxy user and groups headers, the way Grafana's auth proxy
	// reads them (the first value, any letter case).
	User   string `json:"user"`
	Groups string `json:"groups"`
}

// GrafanaUserHeader is the header Grafana's auth proxy reads the user from (its default), and
// GrafanaGroupsHeader the one the local edge sends the key's groups in (Grafana's documented
// example of [auth.proxy] headers = Groups:X-WEBAUTH-GROUPS).
const (
	GrafanaUserHeader   = "X-WEBAUTH-USER"
	GrafanaGroupsHeader = "X-WEBAUTH-GROUPS"
)

// grafanaExtAuthzArgs configure extauthz for the stand-in: its groups header.
var grafanaExtAuthzArgs = []string{"--grafana-groups-header", GrafanaGroupsHeader}

// startGrafana serves a stand-in for a cluster's Grafana on a free loopback port.
func startGrafana(cluster string) (*http.Server, string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(GrafanaRequest{
			Server:  "grafana-" + cluster,
			Method:  r.Method,
			Path:    r.URL.Path,
			Query:   r.URL.RawQuery,
			Headers: r.Header,
			User:    r.Header.Get(GrafanaUserHeader),
			Groups:  r.Header.Get(GrafanaGroupsHeader),
		})
	})}
	go func() { _ = srv.Serve(l) }()
	return srv, "http://" + l.Addr().String(), nil
}
