package user

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
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
		RunE: func(cmd *cobra.Command, _ []string) error {
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
			if o.askedAgain() {
				if err := checkKey(cmd.Context(), l); err != nil {
					return err
				}
			}
			return json.NewEncoder(o.out).Encode(execCredential(l))
		},
	}
}

func execCredential(l *Login) clientauthv1.ExecCredential {
	cred := clientauthv1.ExecCredential{
		TypeMeta: metav1.TypeMeta{APIVersion: ExecAPIVersion, Kind: "ExecCredential"},
		Status:   &clientauthv1.ExecCredentialStatus{Token: l.AccessKey},
	}
	if l.ExpiresAt != nil {
		t := metav1.NewTime(*l.ExpiresAt)
		cred.Status.ExpirationTimestamp = &t
	}
	return cred
}

// A key deleted or disabled at the edge still looks valid here, and the plugin is never told
// why it runs. But client-go runs it once per process and caches the credential (until
// ExpirationTimestamp); it runs it again in the same process only after a 401 (exec.go's
// RoundTrip, maybeRefreshCreds), and the plugin's standard error reaches the user. So a second
// run for the same parent process is the 401 case, and only then does the plugin ask the edge:
// every other kubectl call costs no request. The parent processes are remembered in a small
// file beside the login (callersFile); a lost update under concurrent kubectl runs only means
// the plain 401 once, and a reused process ID one needless check.

// callersKept bounds the remembered parent processes.
const callersKept = 64

func (o *options) callersFile() string { return o.configPath + ".callers" }

// askedAgain records the parent process and says whether it had run the plugin before.
func (o *options) askedAgain() bool {
	ppid := strconv.Itoa(os.Getppid())
	path := o.callersFile()
	data, _ := os.ReadFile(path)
	callers := strings.Fields(string(data))
	again := slices.Contains(callers, ppid)
	if !again {
		callers = append(callers, ppid)
		if len(callers) > callersKept {
			callers = callers[len(callers)-callersKept:]
		}
		writeAtomic(path, []byte(strings.Join(callers, "\n")+"\n"))
	}
	return again
}

// writeAtomic replaces path with data, mode 0600; best effort (the callers file is a hint).
func writeAtomic(path string, data []byte) {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".callers-*")
	if err != nil {
		return
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(data)
	if err := errors.Join(err, tmp.Close()); err != nil {
		return
	}
	_ = os.Rename(tmp.Name(), path)
}

// checkKey asks the edge whether it still takes the key: only its 401 counts as a no; any other
// answer, or none within a few seconds, leaves the decision to the request kubectl retries.
func checkKey(ctx context.Context, l *Login) error {
	e, err := newEdge(l)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var st *statusError
	if err := e.do(ctx, "GET", strings.TrimSuffix(managementPath, "/"), nil, nil); errors.As(err, &st) && st.code == 401 {
		return fmt.Errorf("the edge at %s refused the saved key %q (deleted, disabled or expired there): run `keygate login %s` again", l.Server, l.AccessKeyName, l.Server)
	}
	return nil
}
