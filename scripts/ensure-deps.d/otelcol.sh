#!/usr/bin/env bash
# Builds the test-only OpenTelemetry Collector (OTLP receiver, otlphttp and debug exporters) from the
# Go module in tests/otel/collector/ into $HOME/.cache/llem/otelcol/<version>/. Does nothing when the
# binary is cached. Needs only Go and the Go module proxy; the first build takes ~20 min on two cores.
set -euo pipefail
cd "$(dirname "$0")/../.."
# The collector's release is the otelcol module's version in go.mod: one place to change it.
OTELCOL_VERSION="$(awk '$1 == "go.opentelemetry.io/collector/otelcol" { print $2 }' tests/otel/collector/go.mod)"
[ -n "$OTELCOL_VERSION" ] || { echo "otelcol.sh: no otelcol version in tests/otel/collector/go.mod" >&2; exit 1; }
CACHE="${LLEM_OTELCOL_BIN:-${LLEM_CACHE:-$HOME/.cache/llem}/otelcol}"
OUT="$CACHE/$OTELCOL_VERSION"
if [ -x "$OUT/otelcol" ]; then
  exit 0
fi
command -v go >/dev/null || { echo "otelcol.sh: go is needed to build the OpenTelemetry Collector" >&2; exit 1; }
echo "== building otelcol $OTELCOL_VERSION into $OUT (slow, once)"
start=$(date +%s)
mkdir -p "$OUT"
tmp="$OUT.tmp.$$"
rm -rf "$tmp" && mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
export CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false"
(cd tests/otel/collector && nice go build -trimpath -ldflags=-s -o "$tmp/otelcol" .)
mv "$tmp/otelcol" "$OUT/otelcol"
echo "== built in $(( $(date +%s) - start ))s: $OUT/otelcol"
