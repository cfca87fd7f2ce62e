package localdev

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// EnvoyStats reads the edge Envoy's stats whose names match filter (a regular expression, as
// Envoy's /stats?filter= takes it), zeros included.
func (p *Platform) EnvoyStats(filter string) (map[string]int64, error) {
	resp, err := http.Get(p.EnvoyAdminURL + "/stats?filter=" + url.QueryEscape(filter))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("Envoy's /stats: %s: %s", resp.Status, body)
	}
	stats := map[string]int64{}
	for _, line := range strings.Split(string(body), "\n") {
		name, value, ok := strings.Cut(line, ": ")
		var n int64
		if _, err := fmt.Sscan(value, &n); ok && err == nil {
			stats[name] = n
		}
	}
	return stats, nil
}
