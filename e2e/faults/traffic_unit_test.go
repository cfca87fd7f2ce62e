package faults

import (
	"net/http"
	"testing"
	"time"
)

// The classifier is what makes a false allow fail the test, so it is checked on its own: a 200
// for a refused key, or for a revoked key after the edge was seen refusing it, is a false allow.
func TestClassify(t *testing.T) {
	t0 := time.Now()
	r := &revocation{}
	p := &probe{name: "revoked", revoked: r}
	if got := classify(p.want(t0), http.StatusOK); got != correct {
		t.Errorf("before the revocation, 200: %s", outcomeNames[got])
	}
	if got := classify(p.want(t0), http.StatusUnauthorized); got != falseDeny {
		t.Errorf("before the revocation, 401: %s", outcomeNames[got])
	}
	r.start()
	sent := time.Now()
	if got := classify(p.want(sent), http.StatusOK); got != correct {
		t.Errorf("while the revocation travels, 200: %s", outcomeNames[got])
	}
	p.observe(sent, sent.Add(time.Millisecond), http.StatusUnauthorized)
	later := sent.Add(2 * time.Millisecond)
	if got := classify(p.want(later), http.StatusOK); got != falseAllow {
		t.Errorf("after the edge refused it once, 200: %s; want a false allow", outcomeNames[got])
	}
	refused := &probe{name: "unknown", refuse: true}
	for status, want := range map[int]outcome{200: falseAllow, 401: correct, 403: correct, 503: unavailable, 500: otherAnswer, 0: otherAnswer} {
		if got := classify(refused.want(t0), status); got != want {
			t.Errorf("refused key, %d: %s, want %s", status, outcomeNames[got], outcomeNames[want])
		}
	}
}
