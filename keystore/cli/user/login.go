package user

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
)

type loginFlags struct {
	username, caFile      string
	passwordStdin, keyIn  bool
	sso, noBrowser        bool
	insecureSkipTLSVerify bool
}

func newLoginCommand(o *options) *cobra.Command {
	var f loginFlags
	cmd := &cobra.Command{
		Use:   "login URL",
		Short: "Sign in at the edge with a password (prompted, or --password-stdin), in the browser (--sso) or with an access key (--access-key-stdin)",
		Example: `  keygate login https://127.0.0.1:8443 --username admin --certificate-authority .run/pki/edge-ca.crt
  keygate login https://edge.example.com --sso
  printf '%s\n' "$KEY" | keygate login https://edge.example.com --access-key-stdin`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return o.runLogin(cmd.Context(), args[0], f) },
	}
	cmd.Flags().StringVar(&f.username, "username", "", "user name; prompted for when missing")
	cmd.Flags().BoolVar(&f.passwordStdin, "password-stdin", false, "read the password from standard input")
	cmd.Flags().BoolVar(&f.keyIn, "access-key-stdin", false, "read an access key from standard input instead of logging in; logout only forgets it")
	cmd.Flags().BoolVar(&f.sso, "sso", false, "sign in through the browser (the edge's login page and its single sign-on); the CLI listens on a loopback port for the result")
	cmd.Flags().BoolVar(&f.noBrowser, "no-browser", false, "with --sso: only print the URL to open, do not start a browser")
	cmd.MarkFlagsMutuallyExclusive("sso", "access-key-stdin")
	cmd.MarkFlagsMutuallyExclusive("sso", "username")
	cmd.MarkFlagsMutuallyExclusive("sso", "password-stdin")
	cmd.Flags().StringVar(&f.caFile, "certificate-authority", "", "CA (PEM) to check the edge's certificate with; default: the system's")
	cmd.Flags().BoolVar(&f.insecureSkipTLSVerify, "insecure-skip-tls-verify", false, "do not check the edge's certificate (insecure)")
	return cmd
}

func (o *options) runLogin(ctx context.Context, server string, f loginFlags) error {
	u, err := url.Parse(server)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("URL %q: want the edge's https://host[:port]", server)
	}
	l := &Login{Server: u.Scheme + "://" + u.Host, InsecureSkipTLSVerify: f.insecureSkipTLSVerify}
	prev, _ := loadLogin(o.configPath) // none, or unreadable: nothing to retire
	if f.caFile != "" {
		if l.CertificateAuthorityData, err = os.ReadFile(f.caFile); err != nil {
			return fmt.Errorf("--certificate-authority: %w", err)
		}
	}
	switch {
	case f.noBrowser && !f.sso:
		return errors.New("--no-browser goes with --sso")
	case f.sso:
		err = o.loginWithSSO(ctx, l, !f.noBrowser)
	case f.keyIn:
		err = o.loginWithKey(ctx, l)
	default:
		err = o.loginWithPassword(ctx, l, f)
	}
	if err != nil {
		return err
	}
	if err := saveLogin(o.configPath, l); err != nil {
		return err
	}
	o.retire(ctx, prev, l)
	fmt.Fprintf(o.err, "Logged in at %s as %s (access key %q). Next: keygate list clusters; keygate use cluster NAME\n", l.Server, l.User, l.AccessKeyName)
	return nil
}

// retire deletes at the edge the login key that the new login l replaced in the configuration,
// as logout does: nothing holds it any more, so it should not live on until its ttl. A key
// given with --access-key-stdin is its owner's and is only forgotten, as logout does; so is a
// key of another edge, which this login has no business calling. A failure only warns: the new
// login stands.
func (o *options) retire(ctx context.Context, prev, l *Login) {
	if prev == nil || !prev.LoginKey || prev.Server != l.Server || prev.AccessKey == l.AccessKey {
		return
	}
	e, err := newEdge(prev)
	if err == nil {
		err = e.do(ctx, "POST", "/auth/logout", nil, nil)
	}
	var st *statusError
	if err != nil && !(errors.As(err, &st) && st.code == 401) { // 401: it had already stopped working
		fmt.Fprintf(o.err, "keygate: the previous login key %q could not be deleted at %s (%v); it stops working when its ttl runs out\n", prev.AccessKeyName, prev.Server, err)
	}
}

// loginWithPassword asks /auth/password/login for a Login key.
func (o *options) loginWithPassword(ctx context.Context, l *Login, f loginFlags) error {
	user, password, err := o.credentials(f)
	if err != nil {
		return err
	}
	e, err := newEdge(l)
	if err != nil {
		return err
	}
	var resp struct {
		AccessKey, Name, User string
		ExpiresAt             *time.Time
	}
	if err := e.do(ctx, "POST", "/auth/password/login", map[string]string{"username": user, "password": password}, &resp); err != nil {
		var st *statusError
		if errors.As(err, &st) && st.code == 401 {
			return errors.New("wrong username or password")
		}
		return fmt.Errorf("login: %w", err)
	}
	l.AccessKey, l.AccessKeyName, l.User, l.ExpiresAt, l.LoginKey = resp.AccessKey, resp.Name, resp.User, resp.ExpiresAt, true
	return nil
}

// credentials reads the user name and the password: from the flags and standard input, or
// prompted for on the terminal, the password without echo.
func (o *options) credentials(f loginFlags) (user, password string, err error) {
	user = f.username
	if f.passwordStdin {
		if user == "" {
			return "", "", errors.New("--password-stdin needs --username")
		}
		password, err = readLine(o.in)
		return user, password, err
	}
	tty, ok := o.in.(*os.File)
	if !ok || !term.IsTerminal(int(tty.Fd())) {
		return "", "", errors.New("no terminal to prompt for the password: use --password-stdin (or --access-key-stdin)")
	}
	if user == "" {
		fmt.Fprint(o.err, "Username: ")
		if user, err = readLine(tty); err != nil {
			return "", "", err
		}
	}
	fmt.Fprint(o.err, "Password: ")
	pw, err := term.ReadPassword(int(tty.Fd()))
	fmt.Fprintln(o.err)
	return user, string(pw), err
}

func readLine(r io.Reader) (string, error) {
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		return "", fmt.Errorf("read standard input: %w", err)
	}
	return strings.TrimRight(line, "\r\n"), nil
}

// loginWithKey checks a given key by asking the management API who it is.
func (o *options) loginWithKey(ctx context.Context, l *Login) error {
	key, err := readLine(o.in)
	if err != nil || key == "" {
		return errors.New("--access-key-stdin: no key on standard input")
	}
	l.AccessKey = key
	e, err := newEdge(l)
	if err != nil {
		return err
	}
	var self v1.Self
	in := v1.Self{TypeMeta: typeMeta("Self")}
	if err := e.do(ctx, "POST", managementPath+"selves", in, &self); err != nil {
		var st *statusError
		if errors.As(err, &st) && st.code == 401 {
			return errors.New("the edge refused this key (unknown, deleted, disabled or expired)")
		}
		return fmt.Errorf("check the key: %w", err)
	}
	l.AccessKeyName = self.Status.AccessKey
	if self.Status.User != nil {
		l.User = self.Status.User.Name
	} else if self.Status.Team != nil {
		l.User = "team " + self.Status.Team.Name
	}
	return nil
}
