// Command xds is the keygate control plane; see xds/README.md.
package main

import (
	"os"

	"github.com/keygate-dev/keygate/xds/app"
)

func main() { os.Exit(app.Main(os.Args[1:])) }
