package e2e

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/keygate-dev/keygate/internal/edgepath"
	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
	"github.com/keygate-dev/keygate/localdev"
)

// A valid key reaches every Kubernetes target with plain kubectl, and each context reaches the
// upstream it names (each upstream has its own marker namespace).
func TestKubectlReachesEveryTarget(t *testing.T) {
	t.Parallel()
	cfg := kubeconfig(t, platform.AdminKey)
	for name, ref := range kubeTargets {
		t.Run(localdev.ContextName(ref), func(t *testing.T) {
			t.Parallel()
			out, errOut, err := runKubectl(t, cfg, ref, "get", "namespaces", "-o", "name")
			if err != nil {
				t.Fatalf("kubectl get namespaces: %v\n%s", err, errOut)
			}
			for other, marker := range markers {
				has := strings.Contains(out, "namespace/"+marker+"\n")
				if has != (other == name) {
					t.Errorf("marker %s present = %v through %s; output:\n%s", marker, has, localdev.ContextName(ref), out)
				}
			}
		})
	}
}

// The upstream sees the key's user, groups and name by impersonation.
func TestUpstreamSeesKeyIdentity(t *testing.T) {
	t.Parallel()
	user := unique("alice")
	name, key := newKey(t, v1.OwnedAccessKeySpec{User: user, Groups: []string{"dev", "qa"}})
	cfg := kubeconfig(t, key)
	for _, ref := range kubeTargets {
		t.Run(localdev.ContextName(ref), func(t *testing.T) {
			t.Parallel()
			got := whoami(t, cfg, ref)
			if got.Username != user {
				t.Errorf("username = %q, want %q", got.Username, user)
			}
			for _, g := range []string{"dev", "qa", "loft:user:" + user, "system:authenticated"} {
				if !slices.Contains(got.Groups, g) {
					t.Errorf("groups %v lack %q", got.Groups, g)
				}
			}
			if extra := got.Extra["loft-access-key"]; !slices.Equal(extra, authnv1.ExtraValue{name}) {
				t.Errorf("extra loft-access-key = %v, want [%s]", extra, name)
			}
		})
	}
}

// A team key acts as loft:team:<team>.
func TestTeamKeyIdentity(t *testing.T) {
	t.Parallel()
	team := unique("platform")
	_, key := newKey(t, v1.OwnedAccessKeySpec{Team: team})
	got := whoami(t, kubeconfig(t, key), demo)
	if got.Username != "loft:team:"+team || !slices.Contains(got.Groups, "loft:team:"+team) {
		t.Errorf("team key identity = %s %v, want loft:team:%s in both", got.Username, got.Groups, team)
	}
}

// A low-privilege key cannot borrow another identity by sending impersonation headers itself.
func TestClientImpersonationIsIgnored(t *testing.T) {
	t.Parallel()
	user := unique("mallory")
	_, key := newKey(t, v1.OwnedAccessKeySpec{User: user})
	cfg := kubeconfig(t, key)
	got := whoami(t, cfg, demo, "--as", "system:admin", "--as-group", "system:masters", "--as-uid", "0")
	if got.Username != user {
		t.Errorf("with --as system:admin the upstream saw user %q, want %q", got.Username, user)
	}
	if slices.Contains(got.Groups, "system:masters") {
		t.Errorf("with --as-group system:masters the upstream saw groups %v", got.Groups)
	}
	if got.UID != "" {
		t.Errorf("with --as-uid the upstream saw uid %q", got.UID)
	}
	// And the key has no power of its own: listing namespaces is forbidden by the upstream's RBAC.
	if _, errOut, err := runKubectl(t, cfg, demo, "get", "namespaces", "--as", "system:admin"); err == nil || !strings.Contains(errOut, "forbidden") {
		t.Errorf("kubectl get namespaces --as system:admin with a low-privilege key: err %v, stderr %q; want forbidden", err, errOut)
	}
}

// whoami asks the upstream behind ref who it thinks the caller is.
func whoami(t *testing.T, cfg string, ref edgepath.Ref, extra ...string) authnv1.UserInfo {
	t.Helper()
	out, errOut, err := runKubectl(t, cfg, ref, append([]string{"auth", "whoami", "-o", "json"}, extra...)...)
	if err != nil {
		t.Fatalf("kubectl auth whoami: %v\n%s", err, errOut)
	}
	var review authnv1.SelfSubjectReview
	if err := json.Unmarshal([]byte(out), &review); err != nil {
		t.Fatalf("kubectl auth whoami output is not a SelfSubjectReview: %v\n%s", err, out)
	}
	return review.Status.UserInfo
}

// Keys that must not work get 401 with a Status body, and kubectl prints its message.
func TestInvalidKeysAreRefused(t *testing.T) {
	t.Parallel()
	_, expired := newKey(t, v1.OwnedAccessKeySpec{User: unique("exp"), TTL: 3600}, func(k *v1.OwnedAccessKey) {
		k.CreationTimestamp = metav1.NewTime(time.Now().Add(-2 * time.Hour))
	})
	_, disabled := newKey(t, v1.OwnedAccessKeySpec{User: unique("dis"), Disabled: true})
	_, valid := newKey(t, v1.OwnedAccessKeySpec{User: unique("ok"), TTL: 3600})
	tests := map[string]struct {
		key     string
		message string
	}{
		"no key":       {"", "Authorization: Bearer"},
		"unknown key":  {"kgk_" + strings.Repeat("A", 43), "invalid access key"},
		"not a bearer": {"", "Authorization: Bearer"},
		"expired key":  {expired, "expired"},
		"disabled key": {disabled, "disabled"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			headers := map[string]string{}
			if name == "not a bearer" {
				headers["Authorization"] = "Basic YWRtaW46YWRtaW4="
			}
			for _, ref := range kubeTargets {
				resp, body := get(t, tc.key, ref.Prefix()+"api/v1/namespaces", headers)
				if resp.StatusCode != 401 {
					t.Fatalf("%s: HTTP %d, want 401: %s", ref, resp.StatusCode, body)
				}
				s := status(t, resp, body)
				if s.Reason != metav1.StatusReasonUnauthorized || !strings.Contains(s.Message, tc.message) {
					t.Errorf("%s: Status reason %q message %q; want Unauthorized mentioning %q", ref, s.Reason, s.Message, tc.message)
				}
			}
			if tc.key == "" {
				return // kubectl without any credentials prompts for a username instead
			}
			_, errOut, err := runKubectl(t, kubeconfig(t, tc.key), demo, "get", "namespaces")
			if err == nil || !strings.Contains(errOut, "You must be logged in to the server") || !strings.Contains(errOut, tc.message) {
				t.Errorf("kubectl: err %v, stderr %q; want the login error with %q", err, errOut, tc.message)
			}
		})
	}
	// The same request with a valid key passes, so the refusals above are about the keys.
	if resp, body := get(t, valid, demo.Prefix()+"api/v1/namespaces/marker-demo", nil); resp.StatusCode == 401 {
		t.Errorf("valid key refused: %s", body)
	}
}
