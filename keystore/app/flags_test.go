package app

import (
	"strings"
	"testing"
	"time"

	"github.com/keygate-dev/keygate/keystore/registry"
)

// required are the flags ParseFlags insists on; the files are not read by it.
var required = []string{"--tls-cert-file", "c.pem", "--tls-private-key-file", "k.pem", "--requestheader-client-ca-file", "ca.pem"}

func TestBcryptCostFlag(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		want    int
		wantErr string
	}{
		{"default", nil, 12, ""},
		{"set", []string{"--bcrypt-cost", "11"}, 11, ""},
		{"too low", []string{"--bcrypt-cost", "3"}, 0, "--bcrypt-cost 3: want 4 to 31"},
		{"too high", []string{"--bcrypt-cost", "32"}, 0, "--bcrypt-cost 32: want 4 to 31"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, ok := parse(t, tc.args, nil, tc.wantErr)
			if !ok {
				return
			}
			// The store hashes, and makes the dummy hash for unknown users, at that cost.
			if got := newUsers(nil, c).Cost(); got != tc.want {
				t.Errorf("user store cost %d, want %d", got, tc.want)
			}
		})
	}
}

func TestQuotaFlags(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		want    registry.Quotas
		wantErr string
	}{
		{"defaults", nil, registry.Quotas{MaxKeysPerUser: 100, MaxLoginKeysPerUser: 20}, ""},
		{"set", []string{"--max-keys-per-user", "5", "--max-login-keys-per-user", "0", "--max-ttl-non-admin", "720h"},
			registry.Quotas{MaxKeysPerUser: 5, MaxTTLNonAdmin: 720 * time.Hour}, ""},
		{"negative", []string{"--max-keys-per-user", "-1"}, registry.Quotas{}, "must not be negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, ok := parse(t, tc.args, nil, tc.wantErr)
			if !ok {
				return
			}
			if c.Quotas != tc.want {
				t.Errorf("quotas %+v, want %+v", c.Quotas, tc.want)
			}
		})
	}
}

func TestOIDCFlags(t *testing.T) {
	oidcOn := []string{"--oidc-address", "127.0.0.1:19446", "--external-url", "https://127.0.0.1:8443", "--encryption-key-file", "enc.key"}
	for _, tc := range []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr string
	}{
		{"no provider needs none of it", nil, nil, ""},
		{"provider on", oidcOn, nil, ""},
		{"from the environment", nil, map[string]string{"KEYSTORE_OIDC_ADDRESS": "127.0.0.1:19446", "KEYSTORE_EXTERNAL_URL": "https://edge.example.com", "KEYSTORE_ENCRYPTION_KEY_FILE": "enc.key"}, ""},
		{"no encryption key", oidcOn[:4], nil, "--encryption-key-file is required with --oidc-address"},
		{"no external URL", append([]string{"--encryption-key-file", "k"}, oidcOn[:2]...), nil, `--external-url "": the OIDC provider needs the edge's public URL`},
		{"http external URL", append(oidcOn, "--external-url", "http://edge.example.com"), nil, "https://host[:port]"},
		{"external URL with a path", append(oidcOn, "--external-url", "https://edge.example.com/oidc"), nil, "https://host[:port]"},
		{"bad address", append(oidcOn, "--oidc-address", "nowhere"), nil, "--oidc-address \"nowhere\": want host:port"},
		{"sub-second ttl", append(oidcOn, "--oidc-access-token-ttl", "10ms"), nil, "--oidc-access-token-ttl 10ms: want at least 1s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, ok := parse(t, tc.args, tc.env, tc.wantErr)
			if !ok {
				return
			}
			if c.OIDC.AccessTokenTTL != 10*time.Minute || c.OIDC.RefreshTokenTTL != 7*24*time.Hour {
				t.Errorf("defaults: %+v", c.OIDC)
			}
		})
	}
}

func TestSSORefreshPeriodFlag(t *testing.T) {
	c, err := ParseFlags(required)
	if err != nil || c.SSORefreshPeriod != time.Minute {
		t.Fatalf("default: %s, %v; want 1m", c.SSORefreshPeriod, err)
	}
	if c, err = ParseFlags(append(append([]string{}, required...), "--sso-refresh-period", "1s")); err != nil || c.SSORefreshPeriod != time.Second {
		t.Fatalf("--sso-refresh-period 1s: %s, %v", c.SSORefreshPeriod, err)
	}
	if _, err := ParseFlags(append(append([]string{}, required...), "--sso-refresh-period", "500ms")); err == nil || !strings.Contains(err.Error(), "want at least 1s") {
		t.Fatalf("--sso-refresh-period 500ms: %v, want refused", err)
	}
}

func TestCreateReplicaWaitFlag(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		env     map[string]string
		want    time.Duration // store.Options.ReplicaWait
		wantErr string
	}{
		{name: "default", want: 2 * time.Second},
		{name: "set", args: []string{"--create-replica-wait", "500ms"}, want: 500 * time.Millisecond},
		{name: "from env", env: map[string]string{"KEYSTORE_CREATE_REPLICA_WAIT": "3s"}, want: 3 * time.Second},
		{name: "0 waits for none", args: []string{"--create-replica-wait", "0"}, want: -1},
		{name: "negative", args: []string{"--create-replica-wait", "-1s"}, wantErr: "--create-replica-wait -1s: want 0 (no wait) to 1m"},
		{name: "too long", args: []string{"--create-replica-wait", "2m"}, wantErr: "--create-replica-wait 2m0s: want 0 (no wait) to 1m"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, ok := parse(t, tc.args, tc.env, tc.wantErr)
			if !ok {
				return
			}
			if got := replicaWait(c.CreateReplicaWait); got != tc.want {
				t.Errorf("the store's ReplicaWait %s, want %s", got, tc.want)
			}
		})
	}
}

// parse parses the required flags and args with env set, and checks the error against wantErr;
// ok is false once an error was wanted (and found).
func parse(t *testing.T, args []string, env map[string]string, wantErr string) (c Config, ok bool) {
	t.Helper()
	for k, v := range env {
		t.Setenv(k, v)
	}
	c, err := ParseFlags(append(append([]string{}, required...), args...))
	if wantErr != "" {
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Fatalf("error %v, want one containing %q", err, wantErr)
		}
		return c, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return c, true
}
