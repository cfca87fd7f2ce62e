// Command keystore serves the management API and the login endpoints (keystore serve), and
// manages access keys and users in Redis from the command line (create-key, create-user, …);
// `keystore help` lists every command. See keystore/README.md.
package main

import (
	"os"

	"github.com/keygate-dev/keygate/keystore/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
}
