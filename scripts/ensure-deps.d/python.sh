#!/usr/bin/env bash
# Python test environment for the PyTorch backend server (images/pytorch/tests), in a cached venv at
# $LLEM_CACHE/venv-pytorch. A no-op when the venv already matches the requirement files.
# By default it also installs torch + transformers (CPU use of PyPI's CUDA wheel, 5.6 GB; a cold install took
# 326 s on the shared 2-core host, once: the venv is cached) so the real-runner and tensor-parallel (gloo) tests
# run in CI instead of being skipped (ADR 0032). LLEM_PYTORCH_TORCH_TESTS=0 leaves torch out (they then skip).
set -euo pipefail
cd "$(dirname "$0")/../.."
CACHE="${LLEM_CACHE:-$HOME/.cache/llem}"
VENV="$CACHE/venv-pytorch"
reqs=(images/pytorch/requirements-test.txt)
[ "${LLEM_PYTORCH_TORCH_TESTS:-1}" = "0" ] || reqs+=(images/pytorch/requirements-torch-cpu.txt)
want=$(cat "${reqs[@]}" | sha256sum | cut -d' ' -f1)
if [ -x "$VENV/bin/python" ] && [ "$(cat "$VENV/.llem-stamp" 2>/dev/null)" = "$want" ]; then
  exit 0
fi
command -v python3 >/dev/null || { echo "python.sh: python3 (3.11+) is required" >&2; exit 1; }
echo "== preparing the Python test venv ($VENV) from ${reqs[*]}"
mkdir -p "$CACHE"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
for r in "${reqs[@]}"; do
  nice -n 10 "$VENV/bin/python" -m pip install -q --disable-pip-version-check --progress-bar off -r "$r"
done
echo "$want" > "$VENV/.llem-stamp"
