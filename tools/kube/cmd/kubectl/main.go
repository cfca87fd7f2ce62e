// Command kubectl is the upstream kubectl, built from k8s.io/kubernetes at the same version as
// the API servers the tests run.
package main

import (
	"k8s.io/component-base/cli"
	"k8s.io/kubectl/pkg/cmd"
	"k8s.io/kubectl/pkg/cmd/util"
)

func main() {
	// As upstream kubectl's main does: print errors the kubectl way (e.g. "error: You must be
	// logged in to the server (...)") and exit non-zero.
	if err := cli.RunNoErrOutput(cmd.NewDefaultKubectlCommand()); err != nil {
		util.CheckErr(err)
	}
}
