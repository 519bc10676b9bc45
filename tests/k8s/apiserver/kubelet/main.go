// Command kubelet is the upstream node agent, built from k8s.io/kubernetes for the real single-node
// cluster (scripts/dev-cluster.sh, tests/e2e-node). Nothing here is shipped.
package main

import (
	"context"
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kubelet/app"
)

func main() {
	os.Exit(cli.Run(app.NewKubeletCommand(context.Background())))
}
