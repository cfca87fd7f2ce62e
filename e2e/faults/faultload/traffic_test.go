package faultload

import (
	"net/http"
	"testing"
	"time"
)

// The classifier is what makes a false allow fail the test, so it is checked on its own: a 200
// for a refused key, or for a revoked key once every replica refuses it, is a false allow.
func TestClassify(t *testing.T) {
	t0 := time.Now()
	r := &Revocation{}
	p := &Probe{Name: "revoked", Revoked: r}
	if got := Classify(p.Want(t0, t0), http.StatusOK); got != Correct {
		t.Errorf("before the revocation, 200: %s", OutcomeNames[got])
	}
	if got := Classify(p.Want(t0, t0), http.StatusUnauthorized); got != FalseDeny {
		t.Errorf("before the revocation, 401: %s", OutcomeNames[got])
	}
	r.Start()
	sent := time.Now()
	if got := Classify(p.Want(sent, sent), http.StatusOK); got != Correct {
		t.Errorf("while the revocation travels, 200: %s", OutcomeNames[got])
	}
	p.Observe(sent, sent.Add(time.Millisecond), http.StatusUnauthorized)
	later := sent.Add(2 * time.Millisecond)
	if got := Classify(p.Want(later, later), http.StatusOK); got != Correct {
		t.Errorf("after one replica refused it, before every one applied the revocation, 200: %s", OutcomeNames[got])
	}
	r.InForce(later)
	latest := later.Add(time.Millisecond)
	if got := Classify(p.Want(latest, latest), http.StatusOK); got != FalseAllow {
		t.Errorf("after every replica applied the revocation, 200: %s; want a false allow", OutcomeNames[got])
	}
	expiring := &Probe{Name: "expiring", Expires: t0, Skew: time.Minute}
	for sent, want := range map[time.Duration]Want{-61 * time.Second: MustAllow, -59 * time.Second: EitherWay, 59 * time.Second: EitherWay, 61 * time.Second: MustRefuse} {
		if got := expiring.Want(t0.Add(sent), t0.Add(sent)); got != want {
			t.Errorf("a key expiring at t0 with a skew of 1m, sent at t0%+v: want %d, got %d", sent, want, got)
		}
	}
	if got := Classify(expiring.Want(t0.Add(61*time.Second), t0.Add(61*time.Second)), http.StatusOK); got != FalseAllow {
		t.Errorf("a key expired more than the skew ago, 200: %s; want a false allow", OutcomeNames[got])
	}
	refused := &Probe{Name: "unknown", Refuse: true}
	for status, want := range map[int]Outcome{200: FalseAllow, 401: Correct, 403: Correct, 503: Unavailable, 500: OtherAnswer, 0: OtherAnswer} {
		if got := Classify(refused.Want(t0, t0), status); got != want {
			t.Errorf("refused key, %d: %s, want %s", status, OutcomeNames[got], OutcomeNames[want])
		}
	}
}

// A key Redis lost with its data, then restored: refused for good once the edge refused it,
// until the restore; answers that arrive after the restore began may go either way, until the
// edge passed a request sent after it, and then every later request must pass.
func TestRestoredKey(t *testing.T) {
	t0 := time.Now()
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	r := &Revocation{started: t0} // Start at t0
	p := &Probe{Name: "lost, then restored", Revoked: r}
	p.Observe(at(1), at(2), http.StatusUnauthorized) // the edge noticed the loss
	r.InForce(at(2))                                 // every replica had
	restored := at(10)
	r.restored = restored                    // Restore
	p.Observe(at(11), at(12), http.StatusOK) // the edge passed it again
	for _, c := range []struct {
		name      string
		sent, got time.Time
		status    int
		want      Outcome
	}{
		{"after the first refusal, answered before the restore, 200", at(3), at(4), http.StatusOK, FalseAllow},
		{"sent before the restore, answered after it, 200", at(3), restored.Add(time.Millisecond), http.StatusOK, Correct},
		{"sent after the restore, before the edge passed it, 401", restored, restored.Add(time.Millisecond), http.StatusUnauthorized, Correct},
		{"sent after the edge passed it again, 401", restored.Add(3 * time.Millisecond), restored.Add(4 * time.Millisecond), http.StatusUnauthorized, FalseDeny},
		{"sent after the edge passed it again, 200", restored.Add(3 * time.Millisecond), restored.Add(4 * time.Millisecond), http.StatusOK, Correct},
	} {
		if got := Classify(p.Want(c.sent, c.got), c.status); got != c.want {
			t.Errorf("%s: %s, want %s", c.name, OutcomeNames[got], OutcomeNames[c.want])
		}
	}
	if n := r.Refusals(); n != 1 {
		t.Errorf("%d refusals counted, want the 1 during the loss", n)
	}
	r.Start()
	if r.started.Before(at(0)) || !r.RefusedAt().IsZero() || !r.BackAt().IsZero() || r.Refusals() != 0 {
		t.Error("Start again kept the last loss's start, refusal, return or count")
	}
}

// A revoked key (or one lost with Redis's data): one replica's refusal does not make another's
// pass a false allow (each applies a revocation, or notices a loss, on its own); once every
// replica did, a pass is one.
func TestInForce(t *testing.T) {
	r := &Revocation{}
	p := &Probe{Name: "lost", Revoked: r}
	r.Start()
	t0 := time.Now()
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	p.Observe(at(1), at(2), http.StatusUnauthorized) // a replica that noticed
	if got := Classify(p.Want(at(3), at(4)), http.StatusOK); got != Correct {
		t.Errorf("after one refusal, before every replica noticed, 200: %s", OutcomeNames[got])
	}
	r.InForce(at(5))
	if got := Classify(p.Want(at(6), at(7)), http.StatusOK); got != FalseAllow {
		t.Errorf("sent after every replica noticed, 200: %s, want a false allow", OutcomeNames[got])
	}
	if got := Classify(p.Want(at(4), at(7)), http.StatusOK); got != Correct {
		t.Errorf("sent before every replica noticed, 200: %s", OutcomeNames[got])
	}
	if r.RefusedAt() != at(2) {
		t.Errorf("first refusal %s, want %s", r.RefusedAt(), at(2))
	}
}
