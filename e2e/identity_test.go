package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"

	"github.com/keygate-dev/keygate/keystore/accesskey"
	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
	"github.com/keygate-dev/keygate/keystore/users"
)

// identityBound is how long a test waits for an identity change to show at the edge. The edge's
// bound is one event delivery (milliseconds), never more than extauthz's --key-cache-ttl (30 s);
// the tests log what they measured and assert only that the change shows.
const identityBound = 40 * time.Second

// keystoreCmd runs the keystore command against the platform's Redis and fails the test if it
// fails.
func keystoreCmd(t *testing.T, stdin string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := platform.RunKeystore(ctx, strings.NewReader(stdin), append(args, "--redis-address", platform.RedisAddr)...); err != nil {
		t.Fatalf("keystore %s: %v", args[0], err)
	}
}

// person is a user of the user store with the two kinds of keys a person has: one from a
// password login, and one they made themselves with kubectl through the management API.
type person struct {
	name, password       string
	loginKey, kubectlKey string
}

// newPerson creates a store user with groups and teams (keystore create-user), logs them in and
// has them create their own key with kubectl, copying their first group into it.
func newPerson(t *testing.T, groups, teams []string) person {
	t.Helper()
	p := person{name: unique("person"), password: "pw-" + randomHex(t, 12)}
	keystoreCmd(t, p.password+"\n", "create-user", p.name, "--password-stdin", "--bcrypt-cost", "4",
		"--groups", strings.Join(groups, ","), "--teams", strings.Join(teams, ","))
	resp, body := login(t, p.name, p.password)
	var lr loginResponse
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &lr) != nil {
		t.Fatalf("login of %s: HTTP %d %s", p.name, resp.StatusCode, body)
	}
	p.loginKey = lr.AccessKey
	manifest := writeManifest(t, fmt.Sprintf("apiVersion: management.loft.sh/v1\nkind: OwnedAccessKey\nmetadata:\n  name: %s\nspec:\n  user: %s\n  groups: [%s]\n",
		unique("own"), p.name, groups[0]))
	p.kubectlKey = mustKubectl(t, kubeconfig(t, p.loginKey), "create", "-f", manifest, "-o", "jsonpath={.spec.key}")
	if !strings.HasPrefix(p.kubectlKey, "kgk_") {
		t.Fatalf("kubectl create printed %q, want the new key", p.kubectlKey)
	}
	return p
}

// keys are the person's keys by kind, for messages.
func (p person) keys() map[string]string {
	return map[string]string{"login key": p.loginKey, "kubectl key": p.kubectlKey}
}

// upstreamIdentity asks the demo cluster through the edge who key makes the caller, with one
// HTTP request (kubectl auth whoami's SelfSubjectReview), so that polling stays quick.
func upstreamIdentity(t *testing.T, key string) (authnv1.UserInfo, error) {
	t.Helper()
	review := map[string]any{"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
	resp, body := send(t, key, http.MethodPost, demo.Prefix()+"apis/authentication.k8s.io/v1/selfsubjectreviews", contentJSON, review)
	if resp.StatusCode != http.StatusCreated {
		return authnv1.UserInfo{}, fmt.Errorf("HTTP %d: %s", resp.StatusCode, body)
	}
	var r authnv1.SelfSubjectReview
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatalf("not a SelfSubjectReview: %v: %s", err, body)
	}
	return r.Status.UserInfo, nil
}

// untilShown polls shows for every key of p until it holds for each, and logs how long after
// since each key showed the change.
func untilShown(t *testing.T, p person, what string, since time.Time, shows func(key string) error) {
	t.Helper()
	for kind, key := range p.keys() {
		eventually(t, identityBound, what+" shows on the "+kind, func() error { return shows(key) })
		t.Logf("%s: the %s showed it %d ms after the keystore command returned", what, kind, time.Since(since).Milliseconds())
	}
}

// refusedSaying returns a check that key gets 401 with message in its Status.
func refusedSaying(t *testing.T, message string) func(key string) error {
	return func(key string) error {
		resp, body := get(t, key, clusterPath, nil)
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(body), message) {
			return fmt.Errorf("HTTP %d: %s; want 401 saying %q", resp.StatusCode, body, message)
		}
		return nil
	}
}

// warmPerson uses every key of p, so that extauthz has both the keys and the user cached
// before the change, and checks the identity the upstream sees.
func warmPerson(t *testing.T, p person, group string) {
	t.Helper()
	for kind, key := range p.keys() {
		for range 3 {
			who, err := upstreamIdentity(t, key)
			if err != nil {
				t.Fatalf("%s before the change: %v", kind, err)
			}
			if who.Username != p.name || !slices.Contains(who.Groups, group) {
				t.Fatalf("%s before the change: upstream sees %s %v, want %s with %s", kind, who.Username, who.Groups, p.name, group)
			}
		}
	}
}

// Deleting a user, disabling them, taking a group from them or removing them from a team
// reaches every key of theirs (a login key and one they made with kubectl) within the
// revocation bound, though extauthz had the keys and the user cached.
func TestIdentityChangesReachEveryKey(t *testing.T) {
	t.Parallel()
	t.Run("delete-user", func(t *testing.T) {
		t.Parallel()
		group := unique("g")
		p := newPerson(t, []string{group}, nil)
		warmPerson(t, p, group)
		keystoreCmd(t, "", "delete-user", p.name)
		untilShown(t, p, "delete-user", time.Now(), refusedSaying(t, fmt.Sprintf(`the user \"%s\"`, p.name)))
		resp, body := get(t, p.loginKey, clusterPath, nil)
		if s := status(t, resp, body); !strings.Contains(s.Message, "no longer exists") {
			t.Errorf("message for a deleted user's key: %q", s.Message)
		}
	})
	t.Run("disable-user", func(t *testing.T) {
		t.Parallel()
		group := unique("g")
		p := newPerson(t, []string{group}, nil)
		warmPerson(t, p, group)
		keystoreCmd(t, "", "set-user", p.name, "--disabled=true")
		untilShown(t, p, "set-user --disabled=true", time.Now(), refusedSaying(t, "is disabled"))
		keystoreCmd(t, "", "set-user", p.name, "--disabled=false")
		untilShown(t, p, "set-user --disabled=false", time.Now(), func(key string) error {
			_, err := upstreamIdentity(t, key)
			return err
		})
	})
	t.Run("remove-group", func(t *testing.T) {
		t.Parallel()
		kept, taken := unique("kept"), unique("taken")
		// The kubectl key copies taken (the first group) into its spec.groups.
		p := newPerson(t, []string{taken, kept}, nil)
		warmPerson(t, p, taken)
		keystoreCmd(t, "", "set-user", p.name, "--groups", kept)
		untilShown(t, p, "set-user --groups (one taken)", time.Now(), func(key string) error {
			who, err := upstreamIdentity(t, key)
			switch {
			case err != nil:
				return err
			case slices.Contains(who.Groups, taken) || !slices.Contains(who.Groups, kept):
				return fmt.Errorf("upstream sees groups %v; want %s without %s", who.Groups, kept, taken)
			}
			return nil
		})
	})
	t.Run("remove-team-member", testTeamMemberRemoved)
}

// A team's key acts as the team whoever holds it; what membership gives a person is managing
// the team's keys through the management API. Removing them from the team ends that for every
// key of theirs, and the team's key keeps working for the team.
func testTeamMemberRemoved(t *testing.T) {
	t.Parallel()
	team := unique("team")
	group := unique("g")
	p := newPerson(t, []string{group}, []string{team})
	teamKeyName, teamKey := newKey(t, v1.OwnedAccessKeySpec{Team: team})
	for kind, key := range p.keys() {
		if resp, body := get(t, key, accessKeysPath+"/"+teamKeyName, nil); resp.StatusCode != http.StatusOK {
			t.Fatalf("member's %s before removal: GET the team's key: HTTP %d %s", kind, resp.StatusCode, body)
		}
	}
	keystoreCmd(t, "", "set-user", p.name, "--teams", "")
	untilShown(t, p, "set-user --teams ''", time.Now(), func(key string) error {
		if resp, body := get(t, key, accessKeysPath+"/"+teamKeyName, nil); resp.StatusCode != http.StatusNotFound {
			return fmt.Errorf("GET the team's key: HTTP %d %s; want 404", resp.StatusCode, body)
		}
		return nil
	})
	if who, err := upstreamIdentity(t, teamKey); err != nil || who.Username != "loft:team:"+team {
		t.Errorf("the team's key after a member left: %v %v; want it to act as the team", who.Username, err)
	}
}

// A user deleted and created again under the same name is another user: the first one's keys
// stay refused, and the new user's own login works.
func TestRecreatedUserOldKeysStayRefused(t *testing.T) {
	t.Parallel()
	group := unique("g")
	p := newPerson(t, []string{group}, nil)
	warmPerson(t, p, group)
	keystoreCmd(t, "", "delete-user", p.name)
	keystoreCmd(t, p.password+"\n", "create-user", p.name, "--password-stdin", "--bcrypt-cost", "4", "--groups", group)
	untilShown(t, p, "delete-user and create-user", time.Now(), refusedSaying(t, "was made for an earlier user"))
	resp, body := login(t, p.name, p.password)
	var lr loginResponse
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &lr) != nil {
		t.Fatalf("login of the new user: HTTP %d %s", resp.StatusCode, body)
	}
	if who, err := upstreamIdentity(t, lr.AccessKey); err != nil || who.Username != p.name {
		t.Errorf("the new user's login key: %s %v", who.Username, err)
	}
	// The old keys are still refused, now that the new user is cached too.
	for kind, key := range p.keys() {
		if err := refusedSaying(t, "was made for an earlier user")(key); err != nil {
			t.Errorf("the old %s: %v", kind, err)
		}
	}
}

// A key made for a user of an external identity provider (never in the user store) works with
// its own groups, as before. Once the store gets a user of that name, the key is refused: it
// was not made for them.
func TestExternalIdentityKey(t *testing.T) {
	t.Parallel()
	name, group := unique("sso"), unique("sso-group")
	manifest := writeManifest(t, fmt.Sprintf("apiVersion: management.loft.sh/v1\nkind: OwnedAccessKey\nmetadata:\n  name: %s\nspec:\n  user: %s\n  groups: [%s]\n",
		unique("ext"), name, group))
	key := mustKubectl(t, kubeconfig(t, platform.AdminKey), "create", "-f", manifest, "-o", "jsonpath={.spec.key}")
	who, err := upstreamIdentity(t, key)
	if err != nil || who.Username != name || !slices.Contains(who.Groups, group) {
		t.Fatalf("external identity's key: %s %v %v; want %s with %s", who.Username, who.Groups, err, name, group)
	}
	keystoreCmd(t, "", "create-user", name, "--bcrypt-cost", "4")
	start := time.Now()
	eventually(t, identityBound, "the external identity's key refused once the name is a store user",
		func() error { return refusedSaying(t, "create a new key")(key) })
	t.Logf("create-user of an external identity's name: its key refused %d ms after the command returned", time.Since(start).Milliseconds())
}

// newOwnedKey creates a key for the store user named user as keystore does, recording the
// user's UID (the store's own Create records none, as for an external identity).
func newOwnedKey(t *testing.T, spec v1.OwnedAccessKeySpec) (name, key string) {
	t.Helper()
	rdb := redisClient(t)
	defer rdb.Close()
	u, err := users.New(rdb, users.Options{}).Get(context.Background(), spec.User)
	if err != nil {
		t.Fatal(err)
	}
	return newKey(t, spec, func(k *v1.OwnedAccessKey) { accesskey.SetOwnerUID(k, u.UID) })
}
