// Command run is `make run`: it starts the whole platform locally and prints how to use it.
package main

import (
	"fmt"
	"os"

	"github.com/keygate-dev/keygate/localdev/run"
)

func main() {
	if err := run.Main(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}
