#!/usr/bin/env bash
# Device call for docs/validation/multi-gpu.md (issue #24) on a machine with 2 GPUs (nvidia-h100-x2 or
# nvidia-h200-x2). NOT RUN yet: no 2-GPU machine kind was lent when this was written. Prepare here (the
# folder is git-ignored):
#   git archive HEAD | tar -x -C .device/multi/src; node scripts/bundle.mjs .device/multi/dist;
#   mkdir -p .device/multi/node_modules/@koromix; cp -r node_modules/koffi .device/multi/node_modules/;
#   cp -r node_modules/@koromix/koffi-linux-x64 .device/multi/node_modules/@koromix/; cp /work/main/.device/node.xz .device/multi/
# Device:  OUT=$OUT bash .device/multi/src/scripts/gpu/validate-multi-gpu.sh tp         (carry .device/multi; ~8 min)
#          OUT=$OUT bash .device/multi/src/scripts/gpu/validate-multi-gpu.sh replicas   (~5 min)
# tp: docs/validation/multi-gpu-tp1.yaml (one GPU) then multi-gpu-tp2.yaml (tensorParallelSize 2 on both GPUs).
# replicas: docs/validation/multi-gpu-replicas.yaml (placement.replicas 2: one server per GPU, started together).
# Beside llem, scripts/gpu/nvml_logger.py (pynvml, its own process, shares no code with the agent) logs every
# GPU's energy counter at 100 Hz; then locally:
#   node --import tsx scripts/gpu/analyse-multi-gpu.ts <unpacked multi-gpu-MODE.tgz>
# compares every window of every GPU with that log (pass: within 0.5%) and checks each run's energy is the sum of
# its GPUs'. The GPUs' settings are never changed here (no power limits, no clocks).
set -u
MODE=${1:-tp}
OUT=${OUT:-/tmp/llem-multi-out}
G=$PWD/.device/multi
WORK=$(mktemp -d)
mkdir -p "$G/bin" "$OUT" && xz -dc "$G/node.xz" > "$G/bin/node" && chmod +x "$G/bin/node" && export PATH=$G/bin:$PATH
cd "$G/src" || exit 1
LLEM="node $G/dist/llem.mjs"
# index -> UUID for the log (nvml_logger writes indices), and what the machine is.
nvidia-smi --query-gpu=index,uuid,name,driver_version,power.limit,clocks.max.sm --format=csv,noheader > "$WORK/gpus.csv"
nvidia-smi topo -m > "$WORK/topology.txt" 2>&1
GPUS=$(wc -l < "$WORK/gpus.csv")
if [ "$GPUS" -lt 2 ]; then echo "validate-multi-gpu.sh: needs 2 GPUs, this machine has $GPUS" | tee "$WORK/refused.txt"; tar czf "$OUT/multi-gpu-$MODE.tgz" -C "$WORK" .; exit 2; fi
python3 scripts/gpu/nvml_logger.py --out "$WORK/nvml-log.jsonl" --hz 100 & LOGGER=$!
finish() {
  kill "$LOGGER" 2>/dev/null; wait "$LOGGER" 2>/dev/null
  python3 -c "import torch, transformers, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, 'transformers', transformers.__version__, 'nccl', torch.cuda.nccl.version())" > "$WORK/versions.txt" 2>&1
  tar czf "$OUT/multi-gpu-$MODE.tgz" -C "$WORK" .
}
trap finish EXIT
run() { # name manifest seconds
  # Both GPUs visible, in index order: llem run resolves them to UUIDs once, for the servers and the samplers.
  # Who holds which GPU while it runs, every 2 s (a TP=2 server: two processes, one per GPU; replicas: one each).
  ( while :; do nvidia-smi --query-compute-apps=pid,process_name,gpu_uuid,used_memory --format=csv,noheader \
      | sed "s/^/$(date +%s),/"; sleep 2; done > "$WORK/apps-$1.csv" 2>&1 ) & APPS=$!
  CUDA_VISIBLE_DEVICES=0,1 LLEM_LOG_LEVEL=info timeout -s TERM "$3" $LLEM run "$2" --out "$WORK/results-$1" > "$WORK/llem-$1.log" 2>&1
  echo "llem run $1 exit code $?" | tee -a "$WORK/llem-$1.log"
  kill "$APPS" 2>/dev/null; wait "$APPS" 2>/dev/null
}
if [ "$MODE" = tp ]; then
  run tp1 docs/validation/multi-gpu-tp1.yaml 250
  run tp2 docs/validation/multi-gpu-tp2.yaml 270
else
  run replicas docs/validation/multi-gpu-replicas.yaml 290
fi
for f in "$WORK"/llem-*.log; do echo "== $f"; grep -v '"stream"' "$f" | grep -v '"agent phase"' | grep -v '"level":30' | tail -8; done
