#!/usr/bin/env bash
# Installs (once, cached) every outside program the tests start: nats-server, chromium,
# kube-apiserver + etcd and the OpenTelemetry Collector built from Go modules, helm, the Python test
# packages, and the real single-node cluster's parts (as root on Linux, unless LLEM_REAL_NODE=0).
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${LLEM_CACHE:-$HOME/.cache/llem}"
mkdir -p "$CACHE"
apt_pkgs=()
command -v nats-server >/dev/null || apt_pkgs+=(nats-server)
command -v chromium >/dev/null || apt_pkgs+=(chromium)
# The fake libnvidia-ml (tests/support/fake-libnvml.c) is compiled by the NVML end-to-end tests.
command -v cc >/dev/null || apt_pkgs+=(gcc libc6-dev)
if [ ${#apt_pkgs[@]} -gt 0 ]; then
  echo "== installing ${apt_pkgs[*]}"
  t0=$(date +%s)
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${apt_pkgs[@]}" >/dev/null
  echo "== set-up: apt packages in $(( $(date +%s) - t0 ))s"
fi
# The real node (tests/e2e-node) needs root on Linux; LLEM_REAL_NODE=0 turns it off. Decided once here,
# so k8s.sh builds the node's binaries in the same `go build` as the control plane's.
if [ "${LLEM_REAL_NODE:-}" = 0 ]; then
  export LLEM_REAL_NODE_WHY="LLEM_REAL_NODE=0"
elif [ "$(uname -s)" != Linux ]; then
  export LLEM_REAL_NODE=0 LLEM_REAL_NODE_WHY="not Linux"
elif [ "$(id -u)" != 0 ]; then
  export LLEM_REAL_NODE=0 LLEM_REAL_NODE_WHY="not root"
else
  export LLEM_REAL_NODE=1
fi
# Each step prints its own time (a cached step takes a second or less).
for f in scripts/ensure-deps.d/*.sh; do
  [ -e "$f" ] || continue
  t0=$(date +%s)
  bash "$f"
  echo "== set-up: $(basename "$f" .sh) in $(( $(date +%s) - t0 ))s"
done
true
