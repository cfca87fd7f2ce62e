package cli

import (
	"github.com/spf13/cobra"

	"github.com/keygate-dev/keygate/keystore/app"
)

// newServeCommand is `keystore serve`. Its flags, their environment variables and its help are
// keystore/app's (app.Main), so cobra passes the arguments through unparsed.
func newServeCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "serve [flags]",
		GroupID: groupServe,
		Short:   "serve the management API (management.loft.sh/v1) and the login endpoints",
		Long: `Serve the management API (management.loft.sh/v1) and the login endpoints behind the edge,
until SIGINT or SIGTERM. Run 'keystore serve --help' for its flags.`,
		DisableFlagParsing: true,
		RunE: func(_ *cobra.Command, args []string) error {
			if code := app.Main(args); code != exitOK {
				return exitCode(code)
			}
			return nil
		},
	}
	// `keystore help serve` is `keystore serve --help`: app.Main prints it, on os.Stderr.
	cmd.SetHelpFunc(func(*cobra.Command, []string) { app.Main([]string{"--help"}) })
	return cmd
}
