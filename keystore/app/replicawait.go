package app

import (
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keygate-dev/keygate/keystore/store"
)

// leaseWatchInterval is how often keystore reads the extauthz replicas' leases: well within
// the store's memory of them (10 s), at a GET's cost.
const leaseWatchInterval = 2 * time.Second

// replicaWait is store.Options.ReplicaWait for --create-replica-wait, where 0 means no wait.
func replicaWait(flag time.Duration) time.Duration {
	if flag == 0 {
		return -1
	}
	return flag
}

// observeReplicaWait counts creates' waits for the extauthz replicas by outcome, and warns of
// a create acknowledged before a replica holding a lease applied it: that replica may refuse
// the new key until it catches up.
func observeReplicaWait(reg prometheus.Registerer, log *slog.Logger) func(outcome string, d time.Duration) {
	waits := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "keygate", Subsystem: "keystore", Name: "create_replica_wait_seconds",
		Help:    "How long access-key creates waited for every extauthz replica holding a lease to apply them, by outcome: none (no replica held one), applied, lapsed (a replica's lease ran out meanwhile: it stopped renewing), timeout (--create-replica-wait passed: a replica may refuse the new key until it catches up), error (the leases could not be read).",
		Buckets: []float64{0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5},
	}, []string{"outcome"})
	for _, o := range []string{store.WaitNone, store.WaitApplied, store.WaitLapsed, store.WaitTimeout, store.WaitError} {
		waits.WithLabelValues(o)
	}
	reg.MustRegister(waits)
	return func(outcome string, d time.Duration) {
		waits.WithLabelValues(outcome).Observe(d.Seconds())
		if outcome == store.WaitTimeout || outcome == store.WaitError {
			log.Warn("an access key was created before every extauthz replica holding a lease said it applied it; such a replica refuses the new key until it catches up",
				"outcome", outcome, "waited", d)
		}
	}
}
