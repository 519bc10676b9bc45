#!/usr/bin/env bash
# Builds the test-only Kubernetes control plane (kube-apiserver, kubectl, etcd) from the Go modules
# in tests/k8s/ into $HOME/.cache/llem/k8s/<version>/. Does nothing when the binaries are cached.
# Needs only Go and the Go module proxy; the first build takes a long while on two cores.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=/dev/null
source tests/k8s/versions.env
CACHE="${LLEM_K8S_BIN:-${LLEM_CACHE:-$HOME/.cache/llem}/k8s}"
OUT="$CACHE/$K8S_VERSION"
if [ -x "$OUT/kube-apiserver" ] && [ -x "$OUT/kubectl" ] && [ -x "$OUT/etcd" ]; then
  exit 0
fi
command -v go >/dev/null || { echo "k8s.sh: go is needed to build kube-apiserver and etcd" >&2; exit 1; }
echo "== building kube-apiserver $K8S_VERSION, kubectl and etcd $ETCD_VERSION into $OUT (slow, once)"
start=$(date +%s)
mkdir -p "$OUT"
tmp="$OUT.tmp.$$"
rm -rf "$tmp" && mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
export CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false"
(cd tests/k8s/etcd && nice go build -trimpath -ldflags=-s -o "$tmp/" ./etcd)
(cd tests/k8s/apiserver && nice go build -trimpath -ldflags=-s -o "$tmp/" ./kube-apiserver ./kubectl)
mv "$tmp"/etcd "$tmp"/kube-apiserver "$tmp"/kubectl "$OUT/"
echo "== built in $(( $(date +%s) - start ))s: $(ls "$OUT" | tr '\n' ' ')"
