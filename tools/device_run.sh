#!/usr/bin/env bash
# One-shot GPU job: install missing wheels offline, run mnist-full with NVML, copy results to $OUT.
#   OUT=$OUT BUDGET_S=480 bash tools/device_run.sh      (run tool, carry ["gpu-carry"])
# BUDGET_S: seconds before the run gets SIGINT (finished windows are kept). mnist-full.yaml trains
# 60 epochs of 784-2000x4 first (the reference implementation needed 205 s for that on an H200),
# then measures 12 modes x 5 windows of >= 2 s plus idle windows (about 2.5 min).
set -u
cd "$(dirname "$0")/.."
work=$(mktemp -d)
export PYTHONPATH=$PWD FFENERGY_CACHE=$work/cache
python -c "import yaml, tqdm, serial, scipy" 2>/dev/null || pip install -q --no-index --find-links gpu-carry/wheels pyyaml tqdm pyserial scipy
nvidia-smi --query-gpu=name,driver_version,power.limit --format=csv > "$OUT/nvidia-smi.csv" 2>&1
timeout -s INT "${BUDGET_S:-480}" python tools/device_run.py "${CONFIG:-experiments/mnist-full.yaml}" "$work/runs" 2>&1 | tail -60
rc=${PIPESTATUS[0]}
for d in "$work"/runs/*/; do
  mkdir -p "$OUT/$(basename "$d")"
  cp "$d"/*.csv "$d"/*.json "$OUT/$(basename "$d")/" 2>/dev/null
done
exit $rc
