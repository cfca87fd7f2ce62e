// Command extauthz is the edge's Envoy ext_authz service. See extauthz/README.md.
package main

import (
	"os"

	"github.com/keygate-dev/keygate/extauthz/app"
)

func main() {
	os.Exit(app.Main(os.Args[1:]))
}
