#!/usr/bin/env bash
# One device call for docs/validation/adaptive-cycles.md (issue #22 item 4). Prepare here:
#   /work/shared/tools/device-node && node scripts/bundle.mjs .device/dist && mkdir -p .device/node_modules/@koromix \
#     && cp -r node_modules/koffi .device/node_modules/ && cp -r node_modules/@koromix/koffi-linux-x64 .device/node_modules/@koromix/
#   device: OUT=$OUT bash scripts/gpu/validate-adaptive.sh   (carry .device/dist .device/node.xz .device/node_modules)
# then locally: node --import tsx scripts/gpu/plot-adaptive.ts <unpacked adaptive-validation.tgz>/results docs/validation
set -u
OUT=${OUT:-/tmp/llem-adaptive-out}
WORK=$(mktemp -d)
mkdir -p .bin "$OUT" && xz -dc .device/node.xz > .bin/node && chmod +x .bin/node && export PATH=$PWD/.bin:$PATH
nvidia-smi --query-gpu=name,driver_version,power.limit,clocks.sm,clocks.mem,temperature.gpu,power.draw --format=csv > "$WORK/gpu-before.csv"
LLEM_LOG_LEVEL=info timeout -s TERM "${LLEM_VALIDATION_SECONDS:-300}" \
  node .device/dist/llem.mjs run docs/validation/adaptive-cycles.yaml --out "$WORK/results" > "$WORK/llem-run.log" 2>&1
echo "llem run exit code $?" | tee -a "$WORK/llem-run.log"
nvidia-smi --query-gpu=name,driver_version,power.limit,clocks.sm,clocks.mem,temperature.gpu,power.draw --format=csv > "$WORK/gpu-after.csv"
python3 -c "import torch, transformers, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, 'transformers', transformers.__version__)" > "$WORK/versions.txt" 2>&1
rm -rf "$WORK/results/.llem/scratch"
tar czf "$OUT/adaptive-validation.tgz" -C "$WORK" .
cp "$WORK/results/summary.json" "$OUT/" 2>/dev/null
grep -v '"stream"' "$WORK/llem-run.log" | grep -v '"agent phase"' | grep -v '"level":30' | tail -30
