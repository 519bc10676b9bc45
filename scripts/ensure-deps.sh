#!/usr/bin/env bash
# Installs (once, cached) every outside program the tests start: nats-server, chromium,
# kube-apiserver + etcd built from Go modules, helm, and the Python test packages.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${LLEM_CACHE:-$HOME/.cache/llem}"
mkdir -p "$CACHE"
apt_pkgs=()
command -v nats-server >/dev/null || apt_pkgs+=(nats-server)
command -v chromium >/dev/null || apt_pkgs+=(chromium)
if [ ${#apt_pkgs[@]} -gt 0 ]; then
  echo "== installing ${apt_pkgs[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${apt_pkgs[@]}" >/dev/null
fi
for f in scripts/ensure-deps.d/*.sh; do [ -e "$f" ] && bash "$f"; done
true
