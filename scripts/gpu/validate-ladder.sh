#!/usr/bin/env bash
# Device call for docs/validation/ladder.md (issue #22). Prepare here (.device is git-ignored):
#   rm -rf .device/ladder && mkdir -p .device/ladder/node_modules; node scripts/bundle.mjs .device/ladder/dist
#   cp -r node_modules/koffi node_modules/@koromix .device/ladder/node_modules/
#   /work/shared/tools/device-node && cp .device/node.xz .device/ladder/
# Device:  OUT=$OUT bash scripts/gpu/validate-ladder.sh        (carry .device/ladder; runs in the repository root,
#          where the bundled CLI finds images/pytorch)
# One llem run of docs/validation/ladder.yaml (a concurrency ladder on the PyTorch backend); the whole
# results directory comes back under $OUT, with `llem results show` and nvidia-smi before/after.
set -u
OUT=${OUT:-/tmp/llem-ladder-out}
G=$PWD/.device/ladder
mkdir -p "$G/bin" "$OUT" && xz -dc "$G/node.xz" > "$G/bin/node" && chmod +x "$G/bin/node" && export PATH=$G/bin:$PATH
LLEM="node $G/dist/llem.mjs"
nvidia-smi --query-gpu=name,driver_version,power.limit,power.default_limit,clocks.max.sm --format=csv > "$OUT/gpu.csv" 2>&1
python3 -c "import torch, transformers, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, 'transformers', transformers.__version__)" > "$OUT/versions.txt" 2>&1
LLEM_LOG_LEVEL=info timeout -s TERM "${LADDER_TIMEOUT_S:-330}" $LLEM run docs/validation/ladder.yaml --out "$OUT/results" > "$OUT/llem-run.log" 2>&1
echo "llem run exit code $?" | tee -a "$OUT/llem-run.log"
$LLEM results show "$OUT/results" > "$OUT/results-show.txt" 2>&1
grep -v '"level":30' "$OUT/llem-run.log" | grep -v '"stream"' | tail -30
cat "$OUT/results-show.txt" | head -40
