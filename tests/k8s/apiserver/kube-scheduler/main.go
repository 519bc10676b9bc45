// Command kube-scheduler is the upstream scheduler, built from k8s.io/kubernetes for the real
// single-node cluster (scripts/dev-cluster.sh). Nothing here is shipped.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kube-scheduler/app"
)

func main() {
	os.Exit(cli.Run(app.NewSchedulerCommand()))
}
