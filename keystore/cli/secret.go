package cli

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/bcrypt"
)

// groupOIDC lists the commands of the OIDC provider.
const groupOIDC = "oidc"

// minClientSecret is the shortest client secret hash-secret accepts: a secret is for machines,
// and anything shorter can be guessed offline from its hash.
const minClientSecret = 16

// newHashSecretCommand is `keystore hash-secret`: the bcrypt hash of an OIDC client's secret,
// for clientSecretHash in the --config-file. The secret comes from stdin only, never as an
// argument, which shell history and ps would show.
func newHashSecretCommand(s streams) *cobra.Command {
	var cost int
	cmd := &cobra.Command{
		Use:     "hash-secret [flags]",
		GroupID: groupOIDC,
		Short:   "print the bcrypt hash of an OIDC client secret read from stdin",
		Long: `Read an OIDC client's secret from the first line of stdin and print its bcrypt hash on stdout,
for clientSecretHash in keystore serve's --config-file. The secret is never an argument.`,
		Example: `  openssl rand -base64 32 > argocd-secret
  keystore hash-secret < argocd-secret`,
		Args: noArgs,
		RunE: func(_ *cobra.Command, _ []string) error {
			if cost < bcrypt.MinCost || cost > bcrypt.MaxCost {
				return usageError(fmt.Sprintf("--bcrypt-cost %d: want %d to %d", cost, bcrypt.MinCost, bcrypt.MaxCost))
			}
			secret, err := readSecret(s.stdin)
			if err != nil {
				return err
			}
			hash, err := bcrypt.GenerateFromPassword([]byte(secret), cost)
			if err != nil {
				return err
			}
			fmt.Fprintln(s.stdout, string(hash))
			return nil
		},
	}
	cmd.Flags().IntVar(&cost, "bcrypt-cost", 12, "bcrypt cost of the hash (4 to 31)")
	return cmd
}

// readSecret returns the first line of r without its line ending, checked.
func readSecret(r io.Reader) (string, error) {
	line, err := bufio.NewReader(io.LimitReader(r, maxPasswordLine)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read stdin: %w", err)
	}
	line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
	switch {
	case line == "":
		return "", usageError("no secret on stdin; pipe one in, e.g. `keystore hash-secret < secret-file`")
	case len(line) < minClientSecret:
		return "", usageError(fmt.Sprintf("the secret has %d characters; use at least %d (openssl rand -base64 32)", len(line), minClientSecret))
	case len(line) > 72:
		return "", usageError("the secret is longer than 72 bytes, which bcrypt ignores; use a shorter one (openssl rand -base64 32)")
	}
	return line, nil
}
