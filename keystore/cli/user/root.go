package user

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
	"k8s.io/client-go/tools/clientcmd"
)

// Version is set at build time (-ldflags "-X .../user.Version=…").
var Version = "dev"

// streams are the command's standard input and outputs.
type streams struct {
	in       io.Reader
	out, err io.Writer
}

// options are the flags every command shares.
type options struct {
	streams
	configPath string
	kubeconfig string
}

// login reads the saved login.
func (o *options) login() (*Login, error) { return loadLogin(o.configPath) }

// pathOptions is where kubeconfigs are read and written: --kubeconfig, else KUBECONFIG's list,
// else ~/.kube/config, exactly as kubectl has it.
func (o *options) pathOptions() *clientcmd.PathOptions {
	po := clientcmd.NewDefaultPathOptions()
	po.LoadingRules.ExplicitPath = o.kubeconfig
	return po
}

// Main runs the command and returns its exit code.
func Main(args []string, in io.Reader, out, errOut io.Writer) int {
	root := NewCommand(streams{in: in, out: out, err: errOut})
	root.SetArgs(args)
	if err := root.Execute(); err != nil {
		fmt.Fprintln(errOut, "keygate:", err)
		return 1
	}
	return 0
}

// NewCommand is the keygate command.
func NewCommand(s streams) *cobra.Command {
	o := &options{streams: s}
	root := &cobra.Command{
		Use:   "keygate",
		Short: "Sign in at a keygate edge, list what you can reach, and write kubeconfig contexts for it",
		Long: `keygate signs in at a keygate edge and writes kubeconfig contexts, named as Loft names them,
whose credentials it supplies itself (a kubectl exec credential plugin): the key is kept in
one file readable by you only, never in a kubeconfig. Also a kubectl plugin: kubectl keygate.`,
		SilenceUsage: true, SilenceErrors: true,
		PersistentPreRunE: func(*cobra.Command, []string) error { return o.defaults() },
	}
	root.SetIn(s.in)
	root.SetOut(s.out)
	root.SetErr(s.err)
	root.PersistentFlags().StringVar(&o.configPath, "config", os.Getenv("KEYGATE_CONFIG"), "file of the saved login (env KEYGATE_CONFIG; default $XDG_CONFIG_HOME/keygate/config.json)")
	root.PersistentFlags().StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig file to write; default: KUBECONFIG's first file, else ~/.kube/config, as kubectl")
	root.AddCommand(newLoginCommand(o), newLogoutCommand(o), newListCommand(o), newUseCommand(o),
		newCreateCommand(o), newDeleteCommand(o), newCredentialCommand(o), newVersionCommand(o))
	return root
}

func newVersionCommand(o *options) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use: "version", Short: "Print the version", Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			if output != "" {
				return o.print(map[string]string{"version": Version}, output)
			}
			_, err := fmt.Fprintln(o.out, "keygate", Version)
			return err
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "json or yaml; default: one line")
	return cmd
}

func (o *options) defaults() error {
	if o.configPath != "" {
		return nil
	}
	p, err := DefaultConfigPath()
	o.configPath = p
	return err
}
