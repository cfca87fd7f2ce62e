// Command keygate is the user's CLI of a keygate edge: login, list, use (kubeconfig contexts
// whose credentials it supplies as a kubectl exec plugin), logout. Installed as kubectl-keygate
// it is also `kubectl keygate`. See README.md's quick start.
package main

import (
	"os"

	"github.com/keygate-dev/keygate/keystore/cli/user"
)

func main() {
	os.Exit(user.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
