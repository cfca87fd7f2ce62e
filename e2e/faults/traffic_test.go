package faults

import (
	"net/http"
	"sync"
	"time"

	"github.com/keygate-dev/keygate/localdev"
)

// The traffic: every request is a probe whose right answer is known when it is sent, so that
// every answer can be classified, not just sampled.

// want is the right answer to a request.
type want int

const (
	mustAllow want = iota
	mustRefuse
	eitherWay // a revocation is on its way: both answers are right
)

// outcome classifies one answer.
type outcome int

const (
	correct     outcome = iota
	unavailable         // 503 from the edge: the honest answer while a backend is down
	falseAllow          // 200 for a request that must be refused: always a failure
	falseDeny           // 401/403 for a request that must pass
	otherAnswer         // any other status, or no answer at all
	outcomes
)

var outcomeNames = [outcomes]string{"correct", "unavailable", "false allow", "false deny", "other"}

// phase is where the fault stands; the test moves it on.
type phase int32

const (
	healthy phase = iota
	faulted       // from the fault's injection until the edge answers again
	recovered
	phases
)

var phaseNames = [phases]string{"before the fault", "during the fault", "after recovery"}

const demoPath = "/kubernetes/cluster/" + localdev.ClusterDemo

// probe is one kind of request.
type probe struct {
	name, key, path string
	// revoked, when set, is the revocation of the probe's key: until it starts the key must
	// pass; once the edge has been seen refusing it, it must never pass again.
	revoked *revocation
	refuse  bool // the key must always be refused on path
}

// revocation records when a key's revocation started and when the edge first refused it.
type revocation struct {
	mu            sync.Mutex
	started, seen time.Time
}

func (r *revocation) start() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.started = time.Now()
}

// want is the right answer to a request sent at sent.
func (p *probe) want(sent time.Time) want {
	if p.refuse {
		return mustRefuse
	}
	if p.revoked == nil {
		return mustAllow
	}
	r := p.revoked
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.started.IsZero() || sent.Before(r.started):
		return mustAllow
	case !r.seen.IsZero() && sent.After(r.seen):
		// The edge refused it already, deciding before that answer came back: a later request is
		// decided later, so passing it would be the revoked key working again.
		return mustRefuse
	default:
		return eitherWay
	}
}

// observe notes a refusal of a revoked key, answered at got.
func (p *probe) observe(sent, got time.Time, status int) {
	if p.revoked == nil || (status != http.StatusUnauthorized && status != http.StatusForbidden) {
		return
	}
	r := p.revoked
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.started.IsZero() && !sent.Before(r.started) && (r.seen.IsZero() || got.Before(r.seen)) {
		r.seen = got
	}
}

// refusedAt is when the edge was first seen refusing the revoked key (zero: not yet).
func (r *revocation) refusedAt() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seen
}

// classify is the outcome of status for a request whose right answer is w.
func classify(w want, status int) outcome {
	switch status {
	case http.StatusOK:
		if w == mustRefuse {
			return falseAllow
		}
		return correct
	case http.StatusUnauthorized, http.StatusForbidden:
		if w == mustAllow {
			return falseDeny
		}
		return correct
	case http.StatusServiceUnavailable:
		return unavailable
	}
	return otherAnswer
}
