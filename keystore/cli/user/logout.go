package user

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
)

func typeMeta(kind string) metav1.TypeMeta {
	return metav1.TypeMeta{APIVersion: v1.SchemeGroupVersion.String(), Kind: kind}
}

func newLogoutCommand(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "logout",
		Short: "Delete the login key at the edge and forget it here (a key given with --access-key-stdin is only forgotten)",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return o.runLogout(cmd.Context()) },
	}
}

func (o *options) runLogout(ctx context.Context) error {
	l, err := o.login()
	if errors.Is(err, errNotLoggedIn) {
		fmt.Fprintln(o.err, "Not logged in.")
		return nil
	}
	if err != nil {
		return err
	}
	if l.LoginKey {
		e, err := newEdge(l)
		if err != nil {
			return err
		}
		// A key that already stopped working (401) needs no deleting.
		var st *statusError
		if err := e.do(ctx, "POST", "/auth/logout", nil, nil); err != nil && !(errors.As(err, &st) && st.code == 401) {
			return fmt.Errorf("logout at %s: %w (nothing forgotten; run it again)", l.Server, err)
		}
	}
	if err := forgetLogin(o.configPath); err != nil {
		return err
	}
	fmt.Fprintf(o.err, "Logged out of %s.\n", l.Server)
	return nil
}
