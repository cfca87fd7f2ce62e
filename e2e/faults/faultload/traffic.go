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
	// pass; once it is in force at every extauthz replica, it must never pass again.
	Revoked *Revocation
	Refuse  bool // the key must always be refused on Path
	// Expires, when set, is when the key expires by the true clock, and Skew how far the clock
	// of the replica that decides may be off (extauthz/README.md, "Clocks": an expiry decision
	// is off by the deciding replica's skew and no more): the key must pass until Skew before
	// Expires and be refused from Skew after it; in between either answer is right.
	Expires time.Time
	Skew    time.Duration
}

// Revocation records when a key's revocation started, when every extauthz replica refused the
// key from (InForce) and when the edge first refused it. A key Redis lost with its data is
// revoked too, and may come back with a restore of that data (Restore): then it must pass again
// once the edge was first seen passing it.
//
// The proof that a revoked key must be refused is InForce, never the edge's first refusal: each
// replica applies a revocation (or notices a loss) on its own, so that one replica's refusal
// proves nothing of another's, which may still pass the key from its cache for as long as its
// lag (extauthz/README.md, "Key cache and revocation"). Until InForce both answers are right.
type Revocation struct {
	mu            sync.Mutex
	started, seen time.Time
	// restored is when the restore began, back when the edge first passed the key after it;
	// refusals counts the refusals since started that were not false denies.
	restored, back time.Time
	refusals       int
	// inForce is when every extauthz replica refused the key (InForce).
	inForce time.Time
}

// Start notes that the revocation starts now: call it right before the delete or disable (or
// the data loss). It forgets an earlier revocation and restore of the same key.
func (r *Revocation) Start() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.started, r.seen, r.restored, r.back, r.refusals, r.inForce = time.Now(), time.Time{}, time.Time{}, time.Time{}, 0, time.Time{}
}

// InForce notes that every extauthz replica refuses the key from at on: each had applied the
// revocation (WaitApplied) or noticed the loss (NoticeLoss, WaitResynced) by then. A 200 for a
// request sent later is a false allow.
func (r *Revocation) InForce(at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.inForce = at
}

// Restore notes that the key comes back now: call it right before restoring the data it was
// lost with.
func (r *Revocation) Restore() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.restored = time.Now()
}

// Want is the right answer to a request sent at sent and answered at got.
func (p *Probe) Want(sent, got time.Time) Want {
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
	return r.want(sent, got)
}

func (r *Revocation) want(sent, got time.Time) Want {
	switch {
	case r.started.IsZero() || sent.Before(r.started):
		return MustAllow
	case !r.restored.IsZero() && !got.Before(r.restored):
		// Answered after the restore began, so decided before or after it. Once the edge passed
		// a request sent after the restore began, it has the key back: a later request must pass.
		if !r.back.IsZero() && sent.After(r.back) {
			return MustAllow
		}
		return EitherWay
	case !r.inForce.IsZero() && sent.After(r.inForce):
		// Every replica refused it already: a later request is decided later, so passing it
		// would be the revoked key working again.
		return MustRefuse
	default:
		return EitherWay
	}
}

// Observe notes a refusal of a revoked key, or a pass of a restored one, answered at got.
func (p *Probe) Observe(sent, got time.Time, status int) {
	if p.Revoked == nil {
		return
	}
	r := p.Revoked
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.started.IsZero() || sent.Before(r.started) {
		return
	}
	switch status {
	case http.StatusUnauthorized, http.StatusForbidden:
		if r.want(sent, got) != MustAllow {
			r.refusals++
		}
		if r.seen.IsZero() || got.Before(r.seen) {
			r.seen = got
		}
	case http.StatusOK:
		if !r.restored.IsZero() && !sent.Before(r.restored) && (r.back.IsZero() || got.Before(r.back)) {
			r.back = got
		}
	}
}

// RefusedAt is when the edge was first seen refusing the revoked key (zero: not yet).
func (r *Revocation) RefusedAt() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seen
}

// BackAt is when the edge was first seen passing the key again after Restore (zero: not yet).
func (r *Revocation) BackAt() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.back
}

// Refusals is how many refusals of the key since Start were right (or either way): what the
// revocation, or the data loss, cost its owner.
func (r *Revocation) Refusals() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.refusals
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
