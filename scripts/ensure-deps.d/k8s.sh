#!/usr/bin/env bash
# Builds the Kubernetes binaries from the Go modules in tests/k8s/ into
# $HOME/.cache/llem/k8s/<version>/ (does nothing when they are cached):
#   always: kube-apiserver, kubectl, etcd (the integration tests' control plane);
#   with LLEM_REAL_NODE=1 (scripts/dev-cluster.sh sets it): also kubelet, kube-scheduler,
#   kube-controller-manager and kube-proxy, for the real single-node cluster.
# Everything missing from the apiserver module is built in ONE `go build`, so the packages the
# components share compile once. Needs only Go and the Go module proxy; prints each step's time.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=/dev/null
source tests/k8s/versions.env
CACHE="${LLEM_K8S_BIN:-${LLEM_CACHE:-$HOME/.cache/llem}/k8s}"
OUT="$CACHE/$K8S_VERSION"
control=(kube-apiserver kubectl)
node=(kubelet kube-scheduler kube-controller-manager kube-proxy)
want=("${control[@]}")
[ "${LLEM_REAL_NODE:-0}" = "1" ] && want+=("${node[@]}")
# The cache is keyed by the Kubernetes version (the directory) and by the Go toolchain and the files
# under tests/k8s/ that built it (a stamp file): a new Go or a module change rebuilds everything.
# Binaries from before the stamp existed are adopted once as built by this Go.
stamp=""
if command -v go >/dev/null; then
  stamp="$(go env GOVERSION) $(find tests/k8s/apiserver tests/k8s/etcd -type f | sort | xargs cat | sha256sum | cut -c1-16)"
  if [ -f "$OUT/.built-with" ] && [ "$(cat "$OUT/.built-with")" != "$stamp" ]; then
    echo "== k8s binaries in $OUT were built with $(cat "$OUT/.built-with"), now $stamp: rebuilding"
    rm -f "$OUT"/kube-* "$OUT/kubectl" "$OUT/kubelet" "$OUT/etcd" "$OUT/.built-with"
  fi
  [ -d "$OUT" ] && [ ! -f "$OUT/.built-with" ] && [ -n "$(ls "$OUT" 2>/dev/null)" ] && echo "$stamp" > "$OUT/.built-with"
fi
missing=()
for b in "${want[@]}"; do [ -x "$OUT/$b" ] || missing+=("$b"); done
need_etcd=0
[ -x "$OUT/etcd" ] || need_etcd=1
if [ ${#missing[@]} -eq 0 ] && [ $need_etcd -eq 0 ]; then
  exit 0
fi
command -v go >/dev/null || { echo "k8s.sh: go is needed to build ${missing[*]} etcd" >&2; exit 1; }
mkdir -p "$OUT"
tmp="$OUT.tmp.$$"
rm -rf "$tmp" && mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
export CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false"
if [ $need_etcd -eq 1 ]; then
  echo "== building etcd $ETCD_VERSION into $OUT (slow, once)"
  start=$(date +%s)
  (cd tests/k8s/etcd && nice go build -trimpath -ldflags=-s -o "$tmp/" ./etcd)
  mv "$tmp/etcd" "$OUT/"
  echo "== setup step: etcd built in $(( $(date +%s) - start ))s"
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "== building ${missing[*]} $K8S_VERSION into $OUT (one go build; slow, once)"
  start=$(date +%s)
  # Without these the binaries call themselves v0.0.0-master, which kubectl and the kubelet's
  # version checks cannot parse.
  v="${K8S_VERSION#v}"
  major="${v%%.*}"
  minor="${v#*.}"; minor="${minor%%.*}"
  ldflags="-s"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags="$ldflags -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
    ldflags="$ldflags -X $pkg.gitTreeState=clean"
  done
  pkgs=()
  for b in "${missing[@]}"; do pkgs+=("./$b"); done
  (cd tests/k8s/apiserver && nice go build -trimpath -ldflags="$ldflags" -o "$tmp/" "${pkgs[@]}")
  for b in "${missing[@]}"; do mv "$tmp/$b" "$OUT/"; done
  echo "== setup step: ${missing[*]} built in $(( $(date +%s) - start ))s"
fi
echo "$stamp" > "$OUT/.built-with"
