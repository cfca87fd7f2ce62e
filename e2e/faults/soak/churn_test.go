//go:build soak

package soak

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/keygate-dev/keygate/e2e/faults/faultload"
	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
	"github.com/keygate-dev/keygate/localdev"
)

// accessKeysPath is keystore's access keys collection through the edge.
const accessKeysPath = "/kubernetes/management/apis/management.loft.sh/v1/ownedaccesskeys"

// churn makes, uses and revokes keys through keystore's API, one cycle after another: a key
// created (POST), used, disabled (PATCH), deleted (DELETE); a password login, its key used, a
// logout. Every use of a key is classified as the load's answers are: a revoked key that passes
// after every extauthz replica applied its revocation is a false allow. Writes that keystore refuses as
// unavailable (during a failover) are counted, not failures.
type churn struct {
	user, password string
	// hold is held through each cycle; a fault takes it to pause churn between two (pause).
	hold sync.Mutex

	mu                                       sync.Mutex
	cycles, created, disabled, deleted       int
	logins, logouts, unavailable, otherWrite int
	answers                                  [faultload.Outcomes]int
	worst                                    []string
}

// run churns until ctx ends, pausing pause between cycles.
func (c *churn) run(ctx context.Context, pause time.Duration) {
	for ctx.Err() == nil {
		c.hold.Lock()
		c.keyCycle(ctx)
		c.loginCycle(ctx)
		c.hold.Unlock()
		c.mu.Lock()
		c.cycles++
		c.mu.Unlock()
		select {
		case <-ctx.Done():
		case <-time.After(pause):
		}
	}
}

// pause waits for the cycle under way to end and keeps churn from starting another until resume.
func (c *churn) pause() { c.hold.Lock() }

// resume lets churn go on after pause.
func (c *churn) resume() { c.hold.Unlock() }

// keyCycle creates a key, uses it, disables it, deletes it.
func (c *churn) keyCycle(ctx context.Context) {
	name := "soak-" + strings.ToLower(rand.Text()[:10])
	obj := &v1.OwnedAccessKey{TypeMeta: metav1.TypeMeta{APIVersion: v1.GroupName + "/" + v1.Version, Kind: "OwnedAccessKey"},
		ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1.OwnedAccessKeySpec{User: localdev.AdminUser}}
	status, body := call(ctx, platform.AdminKey, http.MethodPost, accessKeysPath, "application/json", obj)
	if !c.wrote(status, http.StatusCreated, "create", body) {
		return
	}
	var created v1.OwnedAccessKey
	if err := json.Unmarshal(body, &created); err != nil || created.Spec.Key == "" {
		c.note("create %s: no key in the answer: %v", name, err)
		return
	}
	c.count(&c.created)
	r := &faultload.Revocation{}
	p := &faultload.Probe{Name: "churned key", Key: created.Spec.Key, Path: faultload.DemoPath + "/version", Revoked: r}
	c.use(ctx, p, 3)
	r.Start()
	status, body = call(ctx, platform.AdminKey, http.MethodPatch, accessKeysPath+"/"+name, "application/merge-patch+json", `{"spec":{"disabled":true}}`)
	if c.wrote(status, http.StatusOK, "disable", body) {
		c.count(&c.disabled)
		c.inForce(ctx, p)
		c.use(ctx, p, 3)
	}
	// Deleted whether or not the disable went through: a failed write leaves the key to the next
	// attempt rather than to chance.
	for range 10 {
		status, body = call(ctx, platform.AdminKey, http.MethodDelete, accessKeysPath+"/"+name, "", nil)
		if status != http.StatusServiceUnavailable || ctx.Err() != nil {
			break
		}
		c.wrote(status, http.StatusOK, "delete", body)
		time.Sleep(time.Second)
	}
	if c.wrote(status, http.StatusOK, "delete", body) {
		c.count(&c.deleted)
		c.inForce(ctx, p)
		c.use(ctx, p, 3)
	}
}

// loginCycle logs in with a password, uses the login's key on the management API, and logs
// out, after which the key must be refused.
func (c *churn) loginCycle(ctx context.Context) {
	status, body := call(ctx, "", http.MethodPost, "/auth/password/login", "application/json",
		map[string]string{"username": c.user, "password": c.password})
	if !c.wrote(status, http.StatusOK, "login", body) {
		return
	}
	var lr struct{ AccessKey, Name string }
	if err := json.Unmarshal(body, &lr); err != nil || lr.AccessKey == "" {
		c.note("login: no key in the answer: %v", err)
		return
	}
	c.count(&c.logins)
	r := &faultload.Revocation{}
	p := &faultload.Probe{Name: "login key", Key: lr.AccessKey, Path: accessKeysPath + "/" + lr.Name, Revoked: r}
	c.use(ctx, p, 2)
	r.Start()
	status, body = call(ctx, lr.AccessKey, http.MethodPost, "/auth/logout", "", nil)
	if c.wrote(status, http.StatusOK, "logout", body) {
		c.count(&c.logouts)
		c.inForce(ctx, p)
		c.use(ctx, p, 2)
	}
}

// use sends p n times, classifying every answer.
func (c *churn) use(ctx context.Context, p *faultload.Probe, n int) {
	for range n {
		c.send(ctx, p)
	}
}

// send sends p once and classifies its answer; it returns the status.
func (c *churn) send(ctx context.Context, p *faultload.Probe) int {
	sent := time.Now()
	status, detail := faultload.Request(ctx, p)
	if ctx.Err() != nil {
		return status
	}
	got := time.Now()
	p.Observe(sent, got, status)
	o := faultload.Classify(p.Want(sent, got), status)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.answers[o]++
	if o != faultload.Correct && o != faultload.Unavailable && len(c.worst) < 10 {
		c.worst = append(c.worst, fmt.Sprintf("%s: %s (%s): %d %s", sent.Format("15:04:05.000"), faultload.OutcomeNames[o], p.Name, status, detail))
	}
	return status
}

// inForce waits until every extauthz replica applied the revocation of p's key that keystore
// acknowledged (faultload.WaitApplied), ten seconds at most, and marks it in force: from then on
// a pass is a false allow. Before then one replica may refuse the key while another still
// passes it, for as long as its lag: a pass then is no false allow.
func (c *churn) inForce(ctx context.Context, p *faultload.Probe) {
	at, err := faultload.WaitApplied(ctx, 10*time.Second)
	if err != nil {
		if ctx.Err() == nil {
			c.note("%s: its revocation not applied by every extauthz replica: %v", p.Name, err)
		}
		return
	}
	p.Revoked.InForce(at)
}

// wrote counts a write's answer: true when it is want.
func (c *churn) wrote(status, want int, what string, body []byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch status {
	case want:
		return true
	case http.StatusServiceUnavailable:
		c.unavailable++
	default:
		c.otherWrite++
		if len(c.worst) < 10 {
			c.worst = append(c.worst, fmt.Sprintf("%s: %s answered %d: %.200s", time.Now().Format("15:04:05.000"), what, status, body))
		}
	}
	return false
}

// unavailableSoFar is how many of churn's writes and uses were answered 503 so far.
func (c *churn) unavailableSoFar() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.unavailable + c.answers[faultload.Unavailable]
}

func (c *churn) count(n *int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	*n++
}

func (c *churn) note(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.worst) < 10 {
		c.worst = append(c.worst, time.Now().Format("15:04:05.000")+": "+fmt.Sprintf(format, args...))
	}
}

// summary is one line of what churn did.
func (c *churn) summary() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "%d cycles: %d keys created, %d disabled, %d deleted; %d logins, %d logouts; writes answered 503: %d, otherwise refused: %d; uses:",
		c.cycles, c.created, c.disabled, c.deleted, c.logins, c.logouts, c.unavailable, c.otherWrite)
	for o := range faultload.Outcomes {
		fmt.Fprintf(&b, " %s %d;", faultload.OutcomeNames[o], c.answers[o])
	}
	return b.String()
}

// call sends method path through the edge with key (none if empty) and body (a string as is,
// anything else as JSON): the status and the body, or 0 and the error.
func call(ctx context.Context, key, method, path, contentType string, body any) (int, []byte) {
	var data []byte
	switch b := body.(type) {
	case nil:
	case string:
		data = []byte(b)
	default:
		data, _ = json.Marshal(b)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, platform.EdgeURL+path, bytes.NewReader(data))
	if err != nil {
		return 0, []byte(err.Error())
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := faultload.Client.Do(req)
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, out
}
