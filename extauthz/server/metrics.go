package server

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keygate-dev/keygate/keystore/accesskey"
)

// Reasons of keygate_extauthz_denials_total besides decide's ("disabled", "expired", "scope",
// "unparsed").
const (
	ReasonNoKey            = "no_key"            // no usable Authorization: Bearer header
	ReasonUnknownKey       = "unknown_key"       // no such key in the store
	ReasonStoreUnavailable = "store_unavailable" // Redis did not answer: failed closed (503)
	ReasonMisconfigured    = "misconfigured"     // the route's target metadata is unreadable (500)
	// Without context extensions (behind an Envoy xds does not program), the path alone says
	// the target: one naming none is refused (404), and so is one not in normal form (400).
	ReasonNoTarget  = "no_target"
	ReasonNotNormal = "not_normal"
)

// ownerReasons label accesskey.CheckOwner's refusals without spaces.
var ownerReasons = map[accesskey.OwnerProblem]string{
	accesskey.OwnerDisabled: "user_disabled",
	accesskey.OwnerDeleted:  "user_deleted",
	accesskey.OwnerReplaced: "user_recreated",
	accesskey.OwnerExternal: "external_identity_taken",
}

// denialReasons are every reason, created at zero so that dashboards and alerts see them all.
var denialReasons = []string{ReasonNoKey, ReasonUnknownKey, ReasonStoreUnavailable, ReasonMisconfigured,
	"disabled", "expired", "scope", "unparsed",
	"user_disabled", "user_deleted", "user_recreated", "external_identity_taken", ReasonNoTarget, ReasonNotNormal}

type metrics struct {
	checks   *prometheus.CounterVec
	denials  *prometheus.CounterVec
	duration *prometheus.HistogramVec
	// The children of the three, resolved once per label values: a check then looks no label
	// up in a vector (hashing and validating the values each time).
	checkBy     children[[2]string, prometheus.Counter]
	denialBy    children[string, prometheus.Counter]
	durationBy  children[string, prometheus.Observer]
	storeErrors prometheus.Counter
	// logsDropped counts refusal log lines left out by the limiter (denials_total keeps every
	// refusal).
	logsDropped prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "keygate", Subsystem: "extauthz", Name: "checks_total",
			Help: "Authorization checks by result (ok, unauthenticated, forbidden, error) and target kind.",
		}, []string{"result", "target_kind"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "keygate", Subsystem: "extauthz", Name: "check_duration_seconds",
			Help:    "Time to answer a check, by result.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
		}, []string{"result"}),
		denials: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "keygate", Subsystem: "extauthz", Name: "denials_total",
			Help: "Refused checks by reason: no_key, unknown_key, disabled, expired, scope, unparsed, user_disabled, user_deleted, user_recreated, external_identity_taken (401/403), no_target (404) and not_normal (400) without context extensions, store_unavailable (503), misconfigured (500).",
		}, []string{"reason"}),
		storeErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "keygate", Subsystem: "extauthz", Name: "key_store_errors_total",
			Help: "Key look-ups that failed because the key store (Redis) did not answer.",
		}),
		logsDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "keygate", Subsystem: "extauthz", Name: "denial_logs_suppressed_total",
			Help: "Refusal log lines not written because more refusals came than the log limit lets through; keygate_extauthz_denials_total counts them all.",
		}),
	}
	m.checkBy.of = func(l [2]string) prometheus.Counter { return m.checks.WithLabelValues(l[0], l[1]) }
	m.denialBy.of = func(r string) prometheus.Counter { return m.denials.WithLabelValues(r) }
	m.durationBy.of = func(r string) prometheus.Observer { return m.duration.WithLabelValues(r) }
	for _, r := range denialReasons {
		m.denialBy.get(r)
	}
	if reg != nil {
		reg.MustRegister(m.checks, m.denials, m.duration, m.storeErrors, m.logsDropped)
	}
	return m
}

// check is the checks_total series of a result and target kind.
func (m *metrics) check(result, kind string) prometheus.Counter {
	return m.checkBy.get([2]string{result, kind})
}

// denial is the denials_total series of a reason.
func (m *metrics) denial(reason string) prometheus.Counter { return m.denialBy.get(reason) }

// latency is the check_duration_seconds series of a result.
func (m *metrics) latency(result string) prometheus.Observer { return m.durationBy.get(result) }

// children keeps a metric vector's children by label values once resolved. The label values
// come from closed sets (results, target kinds, denial reasons), so it stays small.
type children[K comparable, M any] struct {
	mu sync.RWMutex
	m  map[K]M
	of func(K) M // resolves a child in the vector (and creates its series)
}

func (c *children[K, M]) get(k K) M {
	c.mu.RLock()
	child, ok := c.m[k]
	c.mu.RUnlock()
	if ok {
		return child
	}
	child = c.of(k)
	c.mu.Lock()
	if c.m == nil {
		c.m = map[K]M{}
	}
	c.m[k] = child
	c.mu.Unlock()
	return child
}
