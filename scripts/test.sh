#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs and starts what the tests need, then runs
# typecheck, lint and every test file in one node:test run (one closing summary for CI).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/node-env.sh
bash scripts/ensure-deps.sh
[ -d node_modules ] || npm ci --no-audit --no-fund
echo "== typecheck" && npx tsc -p tsconfig.json --noEmit
echo "== lint" && npx eslint . && npx prettier --check .
echo "== tests"
export LLEM_K8S_BIN="${LLEM_K8S_BIN:-$HOME/.cache/llem/k8s}"
export LLEM_HELM_BIN="${LLEM_HELM_BIN:-$HOME/.cache/llem/helm/helm}"
# The real node's files (as root on Linux; elsewhere they skip saying why): cluster.test.ts, then the fault
# scenarios (faults.test.ts: OOM, controller/NATS pod deleted, kubelet stopped). Each brings its own node up and
# down; a file that finds the node held by another live test run waits for it (LLEM_NODE_WAIT_S).
exec node --import tsx --test --test-concurrency=1 --test-timeout=600000 \
  'tests/unit/**/*.test.ts' 'tests/integration/**/*.test.ts' 'tests/e2e/**/*.test.ts' 'tests/e2e-node/**/*.test.ts'
