#!/usr/bin/env bash
# One device call reproduces the H200 validation (docs/validation/h200.md):
#   ../shared/tools/device-node && node scripts/bundle.mjs .device/dist && mkdir -p .device/node_modules/@koromix \
#     && cp -r node_modules/koffi .device/node_modules/ && cp -r node_modules/@koromix/koffi-linux-x64 .device/node_modules/@koromix/
#   device: LLEM_VALIDATION_SECONDS=570 OUT=$OUT bash scripts/gpu/validate-h200.sh   (~8 min; carry .device/dist .device/node.xz .device/node_modules)
#   LLEM_VALIDATION_MANIFEST picks another manifest, e.g. docs/validation/h200-experiment-graphs-25s.yaml (run G, ~8.5 min)
# then locally: node --import tsx scripts/gpu/analyse-h200.ts <unpacked h200-validation.tgz> <out prefix>
set -u
OUT=${OUT:-/tmp/llem-h200-out}
WORK=$(mktemp -d)
mkdir -p .bin "$OUT" && xz -dc .device/node.xz > .bin/node && chmod +x .bin/node && export PATH=$PWD/.bin:$PATH
nvidia-smi -q > "$WORK/nvidia-smi-before.txt" 2>&1
nvidia-smi --query-gpu=name,driver_version,power.limit,clocks.sm,clocks.mem,clocks.max.sm,temperature.gpu,power.draw --format=csv > "$WORK/gpu-before.csv"
python3 scripts/gpu/nvml_logger.py --out "$WORK/nvml-log.jsonl" --hz 10 & LOGGER=$!
# Sampler overhead runs while the model loads (separate process; it reads NVML, never the GPU's compute).
node .device/dist/sampler-overhead.mjs --seconds 3 > "$WORK/sampler-overhead.txt" 2>&1 &
LLEM_LOG_LEVEL=info timeout -s TERM "${LLEM_VALIDATION_SECONDS:-570}" \
  node .device/dist/llem.mjs run "${LLEM_VALIDATION_MANIFEST:-docs/validation/h200-experiment.yaml}" --out "$WORK/results" > "$WORK/llem-run.log" 2>&1
echo "llem run exit code $?" | tee -a "$WORK/llem-run.log"
wait %2 2>/dev/null
kill "$LOGGER"; wait "$LOGGER" 2>/dev/null
nvidia-smi --query-gpu=name,driver_version,power.limit,clocks.sm,clocks.mem,clocks.max.sm,temperature.gpu,power.draw --format=csv > "$WORK/gpu-after.csv"
python3 -c "import torch, transformers, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, 'transformers', transformers.__version__)" > "$WORK/versions.txt" 2>&1
tar czf "$OUT/h200-validation.tgz" -C "$WORK" .
grep -v '"stream"' "$WORK/llem-run.log" | grep -v '"agent phase"' | tail -25
tail -1 "$WORK/sampler-overhead.txt"
