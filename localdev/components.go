package localdev

import (
	"fmt"

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
// since has a new Pid, one killed and not started again is left out. Every extauthz replica is one, named extauthz-0, extauthz-1 and so on.
// It is safe to call while a fault test restarts components: each process handle is read once,
// atomically. The Redis servers are RedisServers.
func (p *Platform) Components() []Component {
	var list []Component
	add := func(name string, q *proc.Process, metrics string) {
		if q == nil {
			return
		}
		select {
		case <-q.Exited(): // killed, not started again yet
		default:
			list = append(list, Component{Name: name, Pid: q.Pid(), MetricsURL: metrics})
		}
	}
	add("xds", p.xds.Load(), p.XDSMetricsURL)
	for i := range p.ExtAuthzReplicas() {
		add(fmt.Sprintf("extauthz-%d", i), p.extauthzProc(i).Load(), "http://"+p.ExtAuthzHTTPAddress(i)+"/metrics")
	}
	add("keystore", p.keystore.Load(), "http://"+p.keystoreAddrs.http+"/metrics")
	add("envoy", p.envoy, "")
	return list
}
