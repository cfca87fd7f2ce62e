package user

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	clientauthv1 "k8s.io/client-go/pkg/apis/clientauthentication/v1"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// newCredentialCommand is the exec credential plugin the written contexts run: it prints the
// saved key as an ExecCredential. kubectl runs it; people need not.
func newCredentialCommand(o *options) *cobra.Command {
	return &cobra.Command{
		Use:    "credential",
		Short:  "Print the saved key as a kubectl exec credential (client.authentication.k8s.io/v1)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			l, err := o.login()
			if errors.Is(err, errNotLoggedIn) {
				return errors.New("not logged in to the keygate edge: run `keygate login URL` (this context's credentials come from it)")
			}
			if err != nil {
				return err
			}
			if l.ExpiresAt != nil && !time.Now().Before(*l.ExpiresAt) {
				return fmt.Errorf("the login at %s expired at %s: run `keygate login %s` again", l.Server, l.ExpiresAt.Format(time.RFC3339), l.Server)
			}
			cred := clientauthv1.ExecCredential{
				TypeMeta: metav1.TypeMeta{APIVersion: ExecAPIVersion, Kind: "ExecCredential"},
				Status:   &clientauthv1.ExecCredentialStatus{Token: l.AccessKey},
			}
			if l.ExpiresAt != nil {
				t := metav1.NewTime(*l.ExpiresAt)
				cred.Status.ExpirationTimestamp = &t
			}
			return json.NewEncoder(o.out).Encode(cred)
		},
	}
}
