// Command etcd is the upstream etcd server, wrapped so that it builds from the Go module proxy
// (the etcd module itself cannot be `go install`ed because of its replace directives).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
