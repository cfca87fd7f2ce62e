package faultload

import (
	"net/http"
	"testing"
	"time"
)

// The classifier is what makes a false allow fail the test, so it is checked on its own: a 200
// for a refused key, or for a revoked key after the edge was seen refusing it, is a false allow.
func TestClassify(t *testing.T) {
	t0 := time.Now()
	r := &Revocation{}
	p := &Probe{Name: "revoked", Revoked: r}
	if got := Classify(p.Want(t0), http.StatusOK); got != Correct {
		t.Errorf("before the revocation, 200: %s", OutcomeNames[got])
	}
	if got := Classify(p.Want(t0), http.StatusUnauthorized); got != FalseDeny {
		t.Errorf("before the revocation, 401: %s", OutcomeNames[got])
	}
	r.Start()
	sent := time.Now()
	if got := Classify(p.Want(sent), http.StatusOK); got != Correct {
		t.Errorf("while the revocation travels, 200: %s", OutcomeNames[got])
	}
	p.Observe(sent, sent.Add(time.Millisecond), http.StatusUnauthorized)
	later := sent.Add(2 * time.Millisecond)
	if got := Classify(p.Want(later), http.StatusOK); got != FalseAllow {
		t.Errorf("after the edge refused it once, 200: %s; want a false allow", OutcomeNames[got])
	}
	expiring := &Probe{Name: "expiring", Expires: t0, Skew: time.Minute}
	for sent, want := range map[time.Duration]Want{-61 * time.Second: MustAllow, -59 * time.Second: EitherWay, 59 * time.Second: EitherWay, 61 * time.Second: MustRefuse} {
		if got := expiring.Want(t0.Add(sent)); got != want {
			t.Errorf("a key expiring at t0 with a skew of 1m, sent at t0%+v: want %d, got %d", sent, want, got)
		}
	}
	if got := Classify(expiring.Want(t0.Add(61*time.Second)), http.StatusOK); got != FalseAllow {
		t.Errorf("a key expired more than the skew ago, 200: %s; want a false allow", OutcomeNames[got])
	}
	refused := &Probe{Name: "unknown", Refuse: true}
	for status, want := range map[int]Outcome{200: FalseAllow, 401: Correct, 403: Correct, 503: Unavailable, 500: OtherAnswer, 0: OtherAnswer} {
		if got := Classify(refused.Want(t0), status); got != want {
			t.Errorf("refused key, %d: %s, want %s", status, OutcomeNames[got], OutcomeNames[want])
		}
	}
}
