package localdev

import (
	"github.com/keygate-dev/keygate/internal/proc"
)

// Component is one of the platform's long-running processes, for measuring it (the soak test
// samples their memory, goroutines and open files).
type Component struct {
	Name string
	Pid  int
	// MetricsURL is its Prometheus /metrics, "" for Envoy (whose admin stats have no Go runtime).
	MetricsURL string
}

// Components are keygate's own processes and Envoy, as they run now: a component restarted
// since has a new Pid. The Redis servers are RedisServers.
func (p *Platform) Components() []Component {
	var list []Component
	add := func(name string, q *proc.Process, metrics string) {
		if q != nil {
			list = append(list, Component{Name: name, Pid: q.Pid(), MetricsURL: metrics})
		}
	}
	add("xds", p.xds, p.XDSMetricsURL)
	add("extauthz", p.extauthz, "http://"+p.extauthzHTTP+"/metrics")
	add("keystore", p.keystore, "http://"+p.keystoreAddrs.http+"/metrics")
	add("envoy", p.envoy, "")
	return list
}
