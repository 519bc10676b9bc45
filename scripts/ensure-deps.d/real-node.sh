#!/usr/bin/env bash
# The real single-node cluster's parts (tests/e2e-node, scripts/dev-cluster.sh), where npm test runs as
# root on Linux and LLEM_REAL_NODE is not 0: the Debian packages (containerd, runc, CNI plugins,
# buildah, debootstrap...), the node's Kubernetes binaries (built with the control plane's by k8s.sh,
# which runs first with LLEM_REAL_NODE=1 from scripts/ensure-deps.sh) and the images built from
# images/*/Dockerfile (cached by a hash of what goes into each: scripts/build-images.sh). Prints each
# step's time; a cached step takes about a second.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ "${LLEM_REAL_NODE:-}" != 1 ]; then
  echo "== real node: not set up (${LLEM_REAL_NODE_WHY:-LLEM_REAL_NODE is not 1})"
  exit 0
fi
t0=$(date +%s)
bash scripts/dev-cluster.sh packages
echo "== set-up: real-node packages in $(( $(date +%s) - t0 ))s"
t0=$(date +%s)
bash scripts/ensure-deps.d/k8s.sh
echo "== set-up: real-node Kubernetes binaries in $(( $(date +%s) - t0 ))s"
t0=$(date +%s)
# The same build arguments as tests/support/real-node.ts, so the tests find these archives cached.
LLEM_IMAGE_ARGS_PYTORCH="${LLEM_IMAGE_ARGS_PYTORCH:-INSTALL_TORCH=0}" \
  bash scripts/build-images.sh controller agent pytorch nats | awk '{ print "== set-up: image " $1 " " ($4 == 0 ? "cached" : "built in " $4 "s") }'
echo "== set-up: real-node images in $(( $(date +%s) - t0 ))s"
