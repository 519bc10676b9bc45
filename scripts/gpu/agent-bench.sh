#!/usr/bin/env bash
# bench/agent on the GPU machine's cores (issue #5's floors are stated for a real agent host):
#   node scripts/bundle.mjs .device/dist   (plus .device/node.xz and koffi, as for validate-h200.sh)
#   device: bash scripts/gpu/agent-bench.sh   (carry .device/dist .device/node.xz .device/node_modules)
set -u
OUT=${OUT:-/tmp/llem-agent-bench-out}
mkdir -p .bin "$OUT" && xz -dc .device/node.xz > .bin/node && chmod +x .bin/node && export PATH=$PWD/.bin:$PATH
echo "cores $(nproc) node $(node --version)" | tee "$OUT/agent-bench.txt"
node .device/dist/bench-agent.mjs "$@" 2>&1 | tee -a "$OUT/agent-bench.txt" | tail -2
