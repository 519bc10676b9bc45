#!/usr/bin/env bash
# Builds helm v3 from the Go module proxy (no prebuilt downloads are allowed here) into
# $LLEM_CACHE/helm/helm. A no-op when the cached build matches the pinned versions.
set -euo pipefail
HELM_VERSION="${LLEM_HELM_VERSION:-v3.22.0}"
# helm's default Kubernetes version for `helm template`/`lint` without a cluster; upstream's Makefile
# sets it from its client-go (v0.37 -> 1.37). Without it helm assumes 1.20.
HELM_K8S_MINOR="${LLEM_HELM_K8S_MINOR:-37}"
CACHE="${LLEM_CACHE:-$HOME/.cache/llem}"
DEST="$CACHE/helm"
BIN="$DEST/helm"
STAMP="$DEST/.build"
WANT="helm $HELM_VERSION kube 1.$HELM_K8S_MINOR"
if [ -x "$BIN" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$WANT" ]; then
  exit 0
fi
command -v go >/dev/null || { echo "helm.sh: go is required to build helm $HELM_VERSION" >&2; exit 1; }
echo "== building $WANT from the Go module proxy (several minutes on 2 cores, once)"
mkdir -p "$DEST"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
for pkg in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
  ldflags="$ldflags -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$HELM_K8S_MINOR"
done
CGO_ENABLED=0 GOBIN="$tmp" GOFLAGS="${GOFLAGS:-} -trimpath" nice -n 10 go install -ldflags "$ldflags" \
  "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
mv "$tmp/helm" "$BIN"
echo "$WANT" > "$STAMP"
"$BIN" version --template '{{.Version}}{{"\n"}}'
