// Command etcd is the upstream etcd server, built for the integration tests
// (tests/support/kube.ts). Nothing here is shipped.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
