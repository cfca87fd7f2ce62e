package translate

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/keygate-dev/keygate/internal/edgepath"
)

// StreamBounds are the longest one request may last on each long-lived target kind (cluster,
// virtualcluster, management, grafana); 0 means no bound. ext_authz judges a request when it
// starts, so a stream opened with a key outlives the key's deletion by at most its bound
// (extauthz/README.md, "Open streams"). As a flag: "30m" for every kind, or
// "cluster=30m,grafana=1h" for some, the others keeping their default.
type StreamBounds map[edgepath.Kind]time.Duration

// streamKinds are the kinds whose requests may stay open (longLived).
var streamKinds = []edgepath.Kind{edgepath.KindCluster, edgepath.KindVirtualCluster, edgepath.KindManagement, edgepath.KindGrafana}

// Default bounds. Watches: API servers end a watch after 30 to 60 minutes anyway
// (--min-request-timeout), so clients already resume them that often, and the resumed watch is
// judged again. Sessions (exec, attach, port-forward, Grafana Live; any upgraded request): an
// hour, after which kubectl must be run again; longer sessions mean a longer revocation bound.
var (
	DefaultWatchMaxDuration   = uniformBounds(30 * time.Minute)
	DefaultSessionMaxDuration = uniformBounds(time.Hour)
)

func uniformBounds(d time.Duration) StreamBounds {
	b := StreamBounds{}
	for _, k := range streamKinds {
		b[k] = d
	}
	return b
}

// String lists the bounds in kind order, as Set reads them.
func (b StreamBounds) String() string {
	var parts []string
	for _, k := range streamKinds {
		if d, ok := b[k]; ok {
			parts = append(parts, string(k)+"="+d.String())
		}
	}
	return strings.Join(parts, ",")
}

// Set reads "DURATION" (every kind) or "KIND=DURATION,..." (those kinds) over the bounds already
// there.
func (b StreamBounds) Set(s string) error {
	if d, err := time.ParseDuration(s); err == nil {
		maps.Copy(b, uniformBounds(d))
		return b.check()
	}
	for part := range strings.SplitSeq(s, ",") {
		kind, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || !slices.Contains(streamKinds, edgepath.Kind(kind)) {
			return fmt.Errorf("%q: want a duration or KIND=DURATION with KIND one of %v", part, streamKinds)
		}
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("%s: %w", kind, err)
		}
		b[edgepath.Kind(kind)] = d
	}
	return b.check()
}

func (b StreamBounds) check() error {
	for k, d := range b {
		if d < 0 {
			return fmt.Errorf("%s=%s is negative", k, d)
		}
	}
	return nil
}

// withDefaults is b over def: a kind b does not name keeps def's bound.
func (b StreamBounds) withDefaults(def StreamBounds) StreamBounds {
	out := maps.Clone(def)
	maps.Copy(out, b)
	return out
}
