#!/usr/bin/env bash
# One device call: tick-aligned windows cross-checked against an independent 2 ms counter log
# (docs/validation/tick-aligned.md), plus an NVML process/throttle probe while the backend serves.
# Prepare (here): mkdir -p .gpu-attr && git archive HEAD | tar -x -C .gpu-attr/src; node scripts/bundle.mjs .gpu-attr/dist;
#   esbuild scripts/gpu/nvml-probe.ts -> .gpu-attr/dist/nvml-probe.mjs; koffi into .gpu-attr/node_modules; node.xz into .gpu-attr/
# Device (from the checkout root): OUT=$OUT bash .gpu-attr/src/scripts/gpu/validate-ticks.sh   (carry .gpu-attr)
# Then here: node --import tsx scripts/gpu/analyse-ticks.ts <unpacked tick-aligned.tgz> docs/validation/tick-aligned
set -u
OUT=${OUT:-/tmp/llem-ticks-out}
G=$PWD/.gpu-attr
WORK=$(mktemp -d)
mkdir -p "$G/bin" "$OUT" && xz -dc "$G/node.xz" > "$G/bin/node" && chmod +x "$G/bin/node" && export PATH=$G/bin:$PATH
# koffi resolves from .gpu-attr/node_modules (ESM walks up from dist/)
cd "$G/src" || exit 1
nvidia-smi -q > "$WORK/nvidia-smi-before.txt" 2>&1
python3 scripts/gpu/counter_poll.py --out "$WORK/counter-poll.txt" --period-ms 2 & POLL=$!
( sleep 75; node "$G/dist/nvml-probe.mjs" > "$WORK/probe-serving.json" 2>&1; ps -eo pid,ppid,comm > "$WORK/ps-serving.txt" ) &
for m in 5s 25s; do
  LLEM_LOG_LEVEL=info timeout -s TERM "${LLEM_TICKS_TIMEOUT:-280}" node "$G/dist/llem.mjs" run "docs/validation/tick-aligned-$m.yaml" \
    --out "$WORK/results-$m" > "$WORK/llem-run-$m.log" 2>&1
  echo "llem run $m exit code $?" | tee -a "$WORK/llem-run-$m.log"
done
kill "$POLL"; wait "$POLL" 2>/dev/null
wait
node "$G/dist/nvml-probe.mjs" > "$WORK/probe-idle.json" 2>&1
python3 -c "import torch, transformers, pynvml, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, 'transformers', transformers.__version__)" > "$WORK/versions.txt" 2>&1
tar czf "$OUT/tick-aligned.tgz" -C "$WORK" .
for m in 5s 25s; do grep -v '"stream"' "$WORK/llem-run-$m.log" | grep -v '"agent phase"' | tail -6; done
wc -l "$WORK/counter-poll.txt"; head -c 1500 "$WORK/probe-serving.json"
