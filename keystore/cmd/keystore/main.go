// Command keystore manages access keys in Redis: create-key (for bootstrap and scripts),
// get-key, list-keys, disable-key, enable-key, delete-key.
package main

import (
	"os"

	"github.com/keygate-dev/keygate/keystore/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
}
