package cli

import (
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/keygate-dev/keygate/keystore/config"
)

func TestHashSecret(t *testing.T) {
	const secret = "s3cret-of-the-argocd-client-0123"
	code, out, errOut := runIO(secret+"\n", "hash-secret", "--bcrypt-cost", "4")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	hash := strings.TrimSpace(out)
	if bcrypt.CompareHashAndPassword([]byte(hash), []byte(secret)) != nil {
		t.Fatalf("stdout %q is not the secret's bcrypt hash", out)
	}
	if strings.Contains(out+errOut, secret) {
		t.Error("the secret is echoed")
	}
	// What it prints is what the configuration file takes.
	if _, err := config.Parse([]byte("oidc:\n  clients:\n  - {name: Argo CD, clientId: argocd, clientSecretHash: '" + hash + "', redirectURIs: [https://argocd.example.com/cb]}\n")); err != nil {
		t.Errorf("the hash does not load as clientSecretHash: %v", err)
	}

	tests := []struct {
		name, stdin string
		args        []string
		code        int
		msg         string
	}{
		{"empty stdin", "", nil, 2, "no secret on stdin"},
		{"short secret", "short\n", nil, 2, "use at least 16"},
		{"too long for bcrypt", strings.Repeat("x", 80) + "\n", nil, 2, "longer than 72 bytes"},
		{"secret as an argument", "", []string{secret}, 2, "takes no arguments"},
		{"bad cost", secret + "\n", []string{"--bcrypt-cost", "99"}, 2, "--bcrypt-cost 99"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runIO(tc.stdin, append([]string{"hash-secret"}, tc.args...)...)
			if code != tc.code || !strings.Contains(errOut, tc.msg) || out != "" {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit %d saying %q", code, out, errOut, tc.code, tc.msg)
			}
			if strings.Contains(errOut, secret) {
				t.Errorf("stderr repeats the secret: %q", errOut)
			}
		})
	}
}
