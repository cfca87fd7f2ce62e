package faultload

import (
	"net/http"
	"sync"
	"time"

	"github.com/keygate-dev/keygate/localdev"
)

// The traffic: every request is a probe whose right answer is known when it is sent, so that
// every answer can be classified, not just sampled.

// Want is the right answer to a request.
type Want int

const (
	MustAllow Want = iota
	MustRefuse
	EitherWay // a revocation is on its way: both answers are right
)

// Outcome classifies one answer.
type Outcome int

const (
	Correct     Outcome = iota
	Unavailable         // 503 from the edge: the honest answer while a backend is down
	FalseAllow          // 200 for a request that must be refused: always a failure
	FalseDeny           // 401/403 for a request that must pass
	OtherAnswer         // any other status, or no answer at all
	Outcomes
)

var OutcomeNames = [Outcomes]string{"correct", "unavailable", "false allow", "false deny", "other"}

// Phase is where the fault stands; the test moves it on.
type Phase int32

const (
	Healthy Phase = iota
	Faulted       // from the fault's injection until the edge answers again
	Recovered
	Phases
)

var PhaseNames = [Phases]string{"before the fault", "during the fault", "after recovery"}

// DemoPath is the demo cluster's path prefix at the edge.
const DemoPath = "/kubernetes/cluster/" + localdev.ClusterDemo

// Probe is one kind of request.
type Probe struct {
	Name, Key, Path string
	// Revoked, when set, is the revocation of the probe's key: until it starts the key must
	// pass; once the edge has been seen refusing it, it must never pass again.
	Revoked *Revocation
	Refuse  bool // the key must always be refused on Path
	// Expires, when set, is when the key expires by the true clock, and Skew how far the clock
	// of the replica that decides may be off (extauthz/README.md, "Clocks": an expiry decision
	// is off by the deciding replica's skew and no more): the key must pass until Skew before
	// Expires and be refused from Skew after it; in between either answer is right.
	Expires time.Time
	Skew    time.Duration
}

// Revocation records when a key's revocation started and when the edge first refused it.
type Revocation struct {
	mu            sync.Mutex
	started, seen time.Time
}

// Start notes that the revocation starts now: call it right before the delete or disable.
func (r *Revocation) Start() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.started = time.Now()
}

// Want is the right answer to a request sent at sent.
func (p *Probe) Want(sent time.Time) Want {
	if p.Refuse {
		return MustRefuse
	}
	if !p.Expires.IsZero() {
		switch {
		case sent.After(p.Expires.Add(p.Skew)):
			return MustRefuse
		case sent.Before(p.Expires.Add(-p.Skew)):
			return MustAllow
		}
		return EitherWay
	}
	if p.Revoked == nil {
		return MustAllow
	}
	r := p.Revoked
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.started.IsZero() || sent.Before(r.started):
		return MustAllow
	case !r.seen.IsZero() && sent.After(r.seen):
		// The edge refused it already, deciding before that answer came back: a later request is
		// decided later, so passing it would be the revoked key working again.
		return MustRefuse
	default:
		return EitherWay
	}
}

// Observe notes a refusal of a revoked key, answered at got.
func (p *Probe) Observe(sent, got time.Time, status int) {
	if p.Revoked == nil || (status != http.StatusUnauthorized && status != http.StatusForbidden) {
		return
	}
	r := p.Revoked
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.started.IsZero() && !sent.Before(r.started) && (r.seen.IsZero() || got.Before(r.seen)) {
		r.seen = got
	}
}

// RefusedAt is when the edge was first seen refusing the revoked key (zero: not yet).
func (r *Revocation) RefusedAt() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seen
}

// Classify is the outcome of status for a request whose right answer is w.
func Classify(w Want, status int) Outcome {
	switch status {
	case http.StatusOK:
		if w == MustRefuse {
			return FalseAllow
		}
		return Correct
	case http.StatusUnauthorized, http.StatusForbidden:
		if w == MustAllow {
			return FalseDeny
		}
		return Correct
	case http.StatusServiceUnavailable:
		return Unavailable
	}
	return OtherAnswer
}
