package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
	"github.com/keygate-dev/keygate/keystore/users"
)

// The team column of the ownership matrix: a member (teams in the user store) sees and manages
// the team's keys, a non-member does not; and nobody but an admin gives a key groups that their
// own request does not carry.
func TestTeamMembersManageTeamKeys(t *testing.T) {
	t.Parallel()
	team, member := unique("team"), unique("member")
	storeUser(t, users.User{Name: member, Teams: []string{team}, Groups: []string{"dev"}})
	teamKeyName, _ := newKey(t, v1.OwnedAccessKeySpec{Team: team})
	_, memberKey := newOwnedKey(t, v1.OwnedAccessKeySpec{User: member})
	_, outsiderKey := newKey(t, v1.OwnedAccessKeySpec{User: unique("outsider")})
	memberCfg, outsiderCfg := kubeconfig(t, memberKey), kubeconfig(t, outsiderKey)

	if out, errOut, err := kubectlIn(t, memberCfg, nil, "get", "ownedaccesskeys", "-o", "name"); err != nil || !strings.Contains(out, teamKeyName) {
		t.Errorf("member's list lacks the team's key (%v %s):\n%s", err, errOut, out)
	}
	if _, errOut, err := kubectlIn(t, outsiderCfg, nil, "get", "ownedaccesskeys", teamKeyName); err == nil || !strings.Contains(errOut, "not found") {
		t.Errorf("outsider gets the team's key: %v %s; want not found", err, errOut)
	}
	if _, errOut, err := kubectlIn(t, outsiderCfg, nil, "delete", "ownedaccesskeys", teamKeyName); err == nil {
		t.Errorf("outsider deleted the team's key: %s", errOut)
	}

	dir := t.TempDir()
	write := func(name, spec string) string {
		p := filepath.Join(dir, name+".yaml")
		if err := os.WriteFile(p, []byte("apiVersion: management.loft.sh/v1\nkind: OwnedAccessKey\nmetadata:\n  name: "+name+"\nspec:\n"+spec), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	newTeamKey := unique("team-key")
	if _, errOut, err := kubectlIn(t, memberCfg, nil, "create", "-f", write(newTeamKey, "  team: "+team+"\n")); err != nil {
		t.Errorf("member creates a team key: %v %s", err, errOut)
	}
	if _, errOut, err := kubectlIn(t, outsiderCfg, nil, "create", "-f", write(unique("not-mine"), "  team: "+team+"\n")); err == nil || !strings.Contains(errOut, "members of team") {
		t.Errorf("outsider creates a team key: %v %s; want Forbidden", err, errOut)
	}
	// Groups: the member's request carries "dev" (the user's group), not "ops".
	if _, errOut, err := kubectlIn(t, memberCfg, nil, "create", "-f", write(unique("own-dev"), "  user: "+member+"\n  groups: [dev]\n")); err != nil {
		t.Errorf("member creates a key with a group they have: %v %s", err, errOut)
	}
	if _, errOut, err := kubectlIn(t, memberCfg, nil, "create", "-f", write(unique("own-ops"), "  user: "+member+"\n  groups: [ops]\n")); err == nil || !strings.Contains(errOut, `group "ops"`) {
		t.Errorf("member creates a key with a group they lack: %v %s; want Forbidden naming the group", err, errOut)
	}
	if _, errOut, err := kubectlIn(t, memberCfg, nil, "delete", "ownedaccesskeys", teamKeyName); err != nil {
		t.Errorf("member deletes the team's key: %v %s", err, errOut)
	}
}

// status.lastActivity shows in kubectl get -o yaml once the key was used through the edge.
func TestLastActivityInKubectl(t *testing.T) {
	t.Parallel()
	name, key := newKey(t, v1.OwnedAccessKeySpec{User: unique("active")})
	before := time.Now().Truncate(time.Second)
	warmKey(t, key)
	waitForActivity(t, name, before)
	out, errOut, err := kubectlIn(t, kubeconfig(t, key), nil, "get", "ownedaccesskeys.management.loft.sh", name, "-o", "yaml")
	if err != nil {
		t.Fatalf("kubectl get -o yaml: %v %s", err, errOut)
	}
	var got v1.OwnedAccessKey
	if err := yaml.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	if la := got.Status.LastActivity; la == nil || la.Time.Before(before) {
		t.Errorf("status.lastActivity = %v in kubectl's output, want at or after %v:\n%s", la, before, out)
	}
}
