#!/usr/bin/env bash
# Device calls for docs/validation/power-caps.md (issue #21). Prepare here (the folder is git-ignored):
#   git archive HEAD | tar -x -C .device/power/src; node scripts/bundle.mjs .device/power/dist;
#   cp -r node_modules/koffi node_modules/@koromix .device/power/node_modules/; cp /work/main/.device/node.xz .device/power/
# Device:  OUT=$OUT bash .device/power/src/scripts/gpu/validate-power-caps.sh caps        (carry .device/power)
#          OUT=$OUT bash .device/power/src/scripts/gpu/validate-power-caps.sh kill-split
# caps: 4 power caps x 3 cycles + 2 locked SM clocks x 3 cycles, one llem run (examples/power-caps.yaml
#   with the caps this GPU accepts). kill-split: SIGKILL of llem run inside a capped window, the limit
#   read back, llem run again (restores from the marker, completes), then examples/prefill-decode-split.yaml.
# Whatever happens, the EXIT trap resets clocks and puts the default power limit back.
set -u
MODE=${1:-caps}
OUT=${OUT:-/tmp/llem-power-out}
G=$PWD/.device/power
WORK=$(mktemp -d)
mkdir -p "$G/bin" "$OUT" && xz -dc "$G/node.xz" > "$G/bin/node" && chmod +x "$G/bin/node" && export PATH=$G/bin:$PATH
cd "$G/src" || exit 1
LLEM="node $G/dist/llem.mjs"
export LLEM_GPU_STATE_DIR=/var/lib/llem/gpu-state
q() { nvidia-smi --query-gpu=timestamp,power.limit,enforced.power.limit,power.default_limit,clocks.sm,power.draw --format=csv,noheader; }
python3 scripts/gpu/power_constraints.py examples/power-caps.yaml "$WORK/power-caps.yaml" "$WORK/constraints.json" || exit 1
DEFAULT_W=$(python3 -c "import json;print(int(json.load(open('$WORK/constraints.json'))['defaultPowerLimitW']))")
LOWEST_W=$(python3 -c "import json;print(min(json.load(open('$WORK/constraints.json'))['caps']))")
finish() {
  nvidia-smi -rgc > "$WORK/final-reset.txt" 2>&1; nvidia-smi -rmc >> "$WORK/final-reset.txt" 2>&1
  nvidia-smi -pl "$DEFAULT_W" >> "$WORK/final-reset.txt" 2>&1
  kill "$POLL" 2>/dev/null
  tar czf "$OUT/power-$MODE.tgz" -C "$WORK" .
}
# An independent record of the limit and clocks every 500 ms (nvidia-smi, not llem).
nvidia-smi --query-gpu=timestamp,power.limit,enforced.power.limit,clocks.sm,clocks.mem,power.draw --format=csv -lms 500 > "$WORK/nvidia-smi-poll.csv" 2>&1 & POLL=$!
trap finish EXIT
echo "before: $(q)" | tee "$WORK/limits.txt"
if [ "$MODE" = caps ]; then
  LLEM_LOG_LEVEL=info timeout -s TERM 520 $LLEM run "$WORK/power-caps.yaml" --out "$WORK/results-caps" > "$WORK/llem-caps.log" 2>&1
  echo "llem run exit code $?" | tee -a "$WORK/llem-caps.log"
  echo "after caps: $(q)" | tee -a "$WORK/limits.txt"
else
  sed "s/powerLimitWatts: 250/powerLimitWatts: $LOWEST_W/" docs/validation/power-caps-kill.yaml > "$WORK/kill.yaml"
  LLEM_LOG_LEVEL=info $LLEM run "$WORK/kill.yaml" --out "$WORK/results-kill" > "$WORK/llem-kill-1.log" 2>&1 & KPID=$!
  for _ in $(seq 1 240); do grep -q '"phase":"measuring"' "$WORK/llem-kill-1.log" && break; sleep 0.5; done
  sleep 3
  echo "in window: $(q)" | tee -a "$WORK/limits.txt"
  kill -9 "$KPID"; wait "$KPID" 2>/dev/null; echo "llem run SIGKILLed (PID $KPID) at $(date -u +%T.%N)" | tee -a "$WORK/limits.txt"
  sleep 1
  echo "after SIGKILL: $(q)" | tee -a "$WORK/limits.txt"
  ls -la "$LLEM_GPU_STATE_DIR" > "$WORK/markers-after-kill.txt" 2>&1; cat "$LLEM_GPU_STATE_DIR"/*.json >> "$WORK/markers-after-kill.txt" 2>&1
  LLEM_LOG_LEVEL=info timeout -s TERM 150 $LLEM run "$WORK/kill.yaml" --out "$WORK/results-kill" > "$WORK/llem-kill-2.log" 2>&1
  echo "llem run (resume) exit code $?" | tee -a "$WORK/llem-kill-2.log"
  echo "after resume: $(q)" | tee -a "$WORK/limits.txt"
  ls -la "$LLEM_GPU_STATE_DIR" > "$WORK/markers-after-resume.txt" 2>&1
  LLEM_LOG_LEVEL=info timeout -s TERM 330 $LLEM run examples/prefill-decode-split.yaml --out "$WORK/results-split" > "$WORK/llem-split.log" 2>&1
  echo "llem run split exit code $?" | tee -a "$WORK/llem-split.log"
  echo "after split: $(q)" | tee -a "$WORK/limits.txt"
fi
python3 -c "import torch, transformers, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, 'transformers', transformers.__version__)" > "$WORK/versions.txt" 2>&1
nvidia-smi -q > "$WORK/nvidia-smi-after.txt" 2>&1
for f in "$WORK"/llem-*.log; do echo "== $f"; grep -v '"stream"' "$f" | grep -v '"agent phase"' | grep -v '"level":30' | tail -8; done
cat "$WORK/limits.txt"
