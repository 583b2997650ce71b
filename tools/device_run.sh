#!/usr/bin/env bash
# One-shot GPU job: install missing wheels offline, run mnist-full with NVML, copy results to $OUT.
set -u
cd "$(dirname "$0")/.."
work=$(mktemp -d)
export PYTHONPATH=$PWD FFENERGY_CACHE=$work/cache
python -c "import yaml, tqdm, serial, scipy" 2>/dev/null || pip install -q --no-index --find-links gpu-carry/wheels pyyaml tqdm pyserial scipy
nvidia-smi --query-gpu=name,driver_version,power.limit --format=csv > "$OUT/nvidia-smi.csv" 2>&1
timeout -s INT "${BUDGET_S:-250}" python tools/device_run.py "${CONFIG:-experiments/mnist-full.yaml}" "$work/runs" 2>&1 | tail -60
rc=${PIPESTATUS[0]}
for d in "$work"/runs/*/; do
  mkdir -p "$OUT/$(basename "$d")"
  cp "$d"/*.csv "$d"/*.json "$OUT/$(basename "$d")/" 2>/dev/null
done
exit $rc
