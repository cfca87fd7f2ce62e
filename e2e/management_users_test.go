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

	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
)

// userManifest is a User as an admin writes it for kubectl.
func userManifest(name, email string, groups ...string) string {
	return fmt.Sprintf("apiVersion: management.loft.sh/v1\nkind: User\nmetadata:\n  name: %s\nspec:\n  displayName: %s Example\n  email: %s\n  groups: [%s]\n",
		name, name, email, strings.Join(groups, ", "))
}

// kubectlUser makes a person of a user an admin created with kubectl: a password set with
// `keystore set-password` (the API has no password field), a login, and a key the user makes
// with kubectl.
func kubectlUser(t *testing.T, name string) person {
	t.Helper()
	p := person{name: name, password: "pw-" + randomHex(t, 12)}
	keystoreCmd(t, p.password+"\n", "set-password", name, "--password-stdin", "--bcrypt-cost", "4")
	resp, body := login(t, name, p.password)
	var lr loginResponse
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &lr) != nil {
		t.Fatalf("login of %s: HTTP %d %s", name, resp.StatusCode, body)
	}
	p.loginKey = lr.AccessKey
	manifest := writeManifest(t, fmt.Sprintf("apiVersion: management.loft.sh/v1\nkind: OwnedAccessKey\nmetadata:\n  name: %s\nspec:\n  user: %s\n", unique("own"), name))
	p.kubectlKey = mustKubectl(t, kubeconfig(t, p.loginKey), "create", "-f", manifest, "-o", "jsonpath={.spec.key}")
	return p
}

// An admin manages users with plain kubectl: create -f, the table, patch and server-side apply.
// A group added with kubectl reaches the user's keys at the edge, disabling the user with
// kubectl refuses them, `keystore get-user` shows the same user, and no password shows anywhere.
func TestManagementUsersThroughKubectl(t *testing.T) {
	t.Parallel()
	_, adminKey := newKey(t, v1.OwnedAccessKeySpec{User: "admin", Groups: []string{"keygate:admins"}})
	admin := kubeconfig(t, adminKey)
	name, dev, ops := unique("kuser"), unique("dev"), unique("ops")
	if out := mustKubectl(t, admin, "create", "-f", writeManifest(t, userManifest(name, name+"@example.com", dev))); !strings.Contains(out, "user.management.loft.sh/"+name+" created") {
		t.Errorf("kubectl create -f: %q", out)
	}
	table := mustKubectl(t, admin, "get", "users")
	if header, _, _ := strings.Cut(table, "\n"); strings.Join(strings.Fields(header), " ") != "NAME DISPLAY NAME EMAIL GROUPS TEAMS DISABLED AGE" {
		t.Errorf("kubectl get users: no NAME, DISPLAY NAME, EMAIL, GROUPS, TEAMS, DISABLED columns:\n%s", table)
	}
	if !tableRowHas(table, name, name+"@example.com", dev, "false") {
		t.Errorf("kubectl get users: no row for %s with its email, group and disabled false:\n%s", name, table)
	}
	p := kubectlUser(t, name)
	warmPerson(t, p, dev)

	mustKubectl(t, admin, "patch", "user", name, "--type", "merge", "-p", fmt.Sprintf(`{"spec":{"groups":[%q,%q]}}`, dev, ops))
	untilShown(t, p, "kubectl patch (group added)", time.Now(), func(key string) error {
		who, err := upstreamIdentity(t, key)
		if err == nil && !slices.Contains(who.Groups, ops) {
			err = fmt.Errorf("upstream sees groups %v; want %s", who.Groups, ops)
		}
		return err
	})
	checkKeystoreAgrees(t, name, ops)
	checkServerSideApply(t, admin, name, dev, ops)
	checkNoPassword(t, admin, name, p.password)

	mustKubectl(t, admin, "patch", "user", name, "--type", "merge", "-p", `{"spec":{"disabled":true}}`)
	untilShown(t, p, "kubectl patch (disabled)", time.Now(), refusedSaying(t, "is disabled"))
}

// tableRowHas reports whether a row of table starts with name and has every cell.
func tableRowHas(table, name string, cells ...string) bool {
	for _, line := range strings.Split(table, "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && f[0] == name {
			for _, c := range cells {
				if !strings.Contains(line, c) {
					return false
				}
			}
			return true
		}
	}
	return false
}

// checkKeystoreAgrees: `keystore get-user` shows the user kubectl changed.
func checkKeystoreAgrees(t *testing.T, name, group string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := platform.RunKeystore(ctx, nil, "get-user", name, "--redis-address", platform.RedisAddr)
	if err != nil || !strings.Contains(out, group) || !strings.Contains(out, name+"@example.com") {
		t.Errorf("keystore get-user %s after kubectl patch: %v\n%s\nwant group %s and the email", name, err, out, group)
	}
}

// checkServerSideApply: an admin changes the display name with apply --server-side (taking the
// field over from kubectl create's manager, as with any object); the server keeps the field
// managers.
func checkServerSideApply(t *testing.T, admin, name, dev, ops string) {
	t.Helper()
	m := strings.Replace(userManifest(name, name+"@example.com", dev, ops), name+" Example", "Applied Name", 1)
	mustKubectl(t, admin, "apply", "--server-side", "--force-conflicts", "-f", writeManifest(t, m))
	got := mustKubectl(t, admin, "get", "user", name, "-o", "jsonpath={.spec.displayName}/{.spec.groups}/{.metadata.managedFields[*].manager}")
	if !strings.HasPrefix(got, "Applied Name/") || !strings.Contains(got, ops) || !strings.Contains(got, "/kubectl") {
		t.Errorf("after apply --server-side: %q; want the applied name, the groups and kubectl as field manager", got)
	}
}

// checkNoPassword: no output of the user, kubectl's or the keystore command's, holds the
// password or a hash of it.
func checkNoPassword(t *testing.T, admin, name, password string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	outputs := []string{
		mustKubectl(t, admin, "get", "user", name, "-o", "yaml"),
		mustKubectl(t, admin, "get", "users", "-o", "json"),
	}
	for _, args := range [][]string{{"get-user", name}, {"list-users"}} {
		out, err := platform.RunKeystore(ctx, nil, append(args, "--redis-address", platform.RedisAddr)...)
		if err != nil {
			t.Fatal(err)
		}
		outputs = append(outputs, out)
	}
	for _, out := range outputs {
		if strings.Contains(out, password) || strings.Contains(out, "$2a$") || strings.Contains(strings.ToLower(out), "passwordhash") {
			t.Errorf("an output shows the password or its hash:\n%s", out)
		}
	}
}

// A user who is not an admin reads only themselves: another user is NotFound (not Forbidden, so
// existence does not leak), a list shows only them, and every write is Forbidden. An admin's
// scoped key writes no user either, and a bad email is a 422 naming the field.
func TestManagementUsersNonAdmin(t *testing.T) {
	t.Parallel()
	_, adminKey := newKey(t, v1.OwnedAccessKeySpec{User: "admin", Groups: []string{"keygate:admins"}})
	admin := kubeconfig(t, adminKey)
	self, other := unique("self"), unique("other")
	mustKubectl(t, admin, "create", "-f", writeManifest(t, userManifest(self, self+"@example.com", "dev")))
	mustKubectl(t, admin, "create", "-f", writeManifest(t, userManifest(other, other+"@example.com", "dev")))
	me := kubeconfig(t, kubectlUser(t, self).loginKey)

	if out := mustKubectl(t, me, "get", "user", self, "-o", "jsonpath={.spec.email}"); out != self+"@example.com" {
		t.Errorf("kubectl get user %s (self): %q", self, out)
	}
	if _, errOut, err := kubectlIn(t, me, nil, "get", "user", other); err == nil || !strings.Contains(errOut, "NotFound") && !strings.Contains(errOut, "not found") {
		t.Errorf("get another user: err %v, %s; want NotFound", err, errOut)
	}
	if out := mustKubectl(t, me, "get", "users", "-o", "name"); strings.TrimSpace(out) != "user.management.loft.sh/"+self {
		t.Errorf("a non-admin's list: %q; want only themselves", out)
	}
	newUser := writeManifest(t, userManifest(unique("new"), "new@example.com"))
	if _, errOut, err := kubectlIn(t, me, nil, "create", "-f", newUser); err == nil || !strings.Contains(errOut, "Forbidden") && !strings.Contains(errOut, "forbidden") {
		t.Errorf("a non-admin creates a user: err %v, %s; want Forbidden", err, errOut)
	}
	if _, errOut, err := kubectlIn(t, me, nil, "patch", "user", self, "--type", "merge", "-p", `{"spec":{"groups":["more"]}}`); err == nil || !strings.Contains(errOut, "only admins") {
		t.Errorf("a non-admin patches themselves: err %v, %s; want Forbidden", err, errOut)
	}
	// Scoped to the management API itself: the edge lets the request through, keystore refuses.
	scope := &v1.AccessKeyScope{Rules: []v1.AccessKeyScopeRule{{RequestTargets: []v1.RequestTarget{v1.RequestTargetManagement}}}}
	_, scopedKey := newKey(t, v1.OwnedAccessKeySpec{User: "admin", Groups: []string{"keygate:admins"}, Scope: scope})
	if _, errOut, err := kubectlIn(t, kubeconfig(t, scopedKey), nil, "create", "-f", newUser); err == nil || !strings.Contains(errOut, "is scoped") {
		t.Errorf("an admin's scoped key creates a user: err %v, %s; want Forbidden", err, errOut)
	}
	bad := writeManifest(t, userManifest(unique("bad"), "not-an-email"))
	if _, errOut, err := kubectlIn(t, admin, nil, "create", "-f", bad); err == nil || !strings.Contains(errOut, "spec.email") {
		t.Errorf("a user with a bad email: err %v, %s; want 422 naming spec.email", err, errOut)
	}
}

// An admin makes a team with kubectl; its members are the users' records (keystore get-user
// shows the team, the member's user shows it in status.teams), a member reads the team and a
// non-member gets NotFound; kubectl edit of a user works.
func TestManagementTeamsThroughKubectl(t *testing.T) {
	t.Parallel()
	_, adminKey := newKey(t, v1.OwnedAccessKeySpec{User: "admin", Groups: []string{"keygate:admins"}})
	admin := kubeconfig(t, adminKey)
	member, outsider, team := unique("member"), unique("outsider"), unique("team")
	mustKubectl(t, admin, "create", "-f", writeManifest(t, userManifest(member, member+"@example.com", "dev")))
	mustKubectl(t, admin, "create", "-f", writeManifest(t, userManifest(outsider, outsider+"@example.com", "dev")))
	mustKubectl(t, admin, "create", "-f", writeManifest(t, fmt.Sprintf(
		"apiVersion: management.loft.sh/v1\nkind: Team\nmetadata:\n  name: %s\nspec:\n  displayName: Platform\n  users: [%s]\n  groups: [platform]\n", team, member)))

	table := mustKubectl(t, admin, "get", "teams")
	if header, _, _ := strings.Cut(table, "\n"); strings.Join(strings.Fields(header), " ") != "NAME DISPLAY NAME USERS GROUPS AGE" || !tableRowHas(table, team, "Platform", member, "platform") {
		t.Errorf("kubectl get teams:\n%s", table)
	}
	if got := mustKubectl(t, admin, "get", "user", member, "-o", "jsonpath={.status.teams}"); !strings.Contains(got, team) {
		t.Errorf("the member's status.teams: %q, want %s", got, team)
	}
	checkKeystoreAgrees(t, member, team)

	me := kubeconfig(t, kubectlUser(t, member).loginKey)
	if got := mustKubectl(t, me, "get", "team", team, "-o", "jsonpath={.spec.users}"); !strings.Contains(got, member) {
		t.Errorf("a member reads the team: %q", got)
	}
	them := kubeconfig(t, kubectlUser(t, outsider).loginKey)
	if _, errOut, err := kubectlIn(t, them, nil, "get", "team", team); err == nil || !strings.Contains(errOut, "NotFound") && !strings.Contains(errOut, "not found") {
		t.Errorf("a non-member reads the team: err %v, %s; want NotFound", err, errOut)
	}

	mustKubectl(t, admin, "patch", "team", team, "--type", "merge", "-p", fmt.Sprintf(`{"spec":{"users":[%q]}}`, outsider))
	if got := mustKubectl(t, admin, "get", "user", member, "-o", "jsonpath={.status.teams}"); strings.Contains(got, team) {
		t.Errorf("after the member left the team, their status.teams: %q", got)
	}
	editor := []string{"KUBE_EDITOR=sed -i s/displayName:.*/displayName:\\ Edited/"}
	if out, errOut, err := kubectlIn(t, admin, editor, "edit", "user", member); err != nil {
		t.Fatalf("kubectl edit: %v %s %s", err, out, errOut)
	}
	if got := mustKubectl(t, admin, "get", "user", member, "-o", "jsonpath={.spec.displayName}"); got != "Edited" {
		t.Errorf("display name after kubectl edit: %q", got)
	}
}
