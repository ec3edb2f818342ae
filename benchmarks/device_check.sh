#!/usr/bin/env bash
# The GPU-machine checks, as one script (run by hand through the device tool; writes under $OUT):
#   1. benchmarks/avmnist_vs_reference.py pinned to 2 CPU cores (the targets are stated for 2 cores),
#   2. benchmarks/small_jobs.py pinned to 2 other cores (per-job overhead, demo beside a busy process),
#   3. benchmarks/avmnist_vs_reference.py on the GPU at batch 40 and 256, with nvidia-smi sampling,
#   4. (when .device/avmnist.tgz is carried) benchmarks/avmnist_presets.sh: Table 1 under both presets.
# The machine has no package index: jsonargparse and its two helpers travel as wheels in .whl/.
set -uo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1 CI=true
FINAL=$OUT
OUT=/tmp/device-results  # everything goes here, then into one archive: few files come back
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total --format=csv > "$OUT/gpu.txt" 2>&1

if [ -f .device/avmnist.tgz ]; then
  OUT=$OUT/presets BUDGET_S=${BUDGET_S:-520} taskset -c 6-15 bash benchmarks/avmnist_presets.sh \
    > "$OUT/presets.log" 2>&1 &
  presets=$!
fi
taskset -c 2,3 python3 benchmarks/avmnist_vs_reference.py --scale "${CPU_SCALE:-0.25}" --threads 2 \
  --out "$OUT/cpu" > "$OUT/cpu.log" 2>&1 &
cpu=$!
taskset -c 4,5 python3 benchmarks/small_jobs.py --out "$OUT/small" > "$OUT/small.log" 2>&1 &
small=$!
nvidia-smi dmon -s u -d 1 > "$OUT/gpu_util.log" 2>&1 &
dmon=$!
taskset -c 0,1 python3 benchmarks/avmnist_vs_reference.py --accelerator gpu --batch-size 40 256 --threads 2 \
  --out "$OUT/gpu" > "$OUT/gpu.log" 2>&1
kill $dmon 2>/dev/null
wait $cpu $small ${presets:-}
tail -n 25 "$OUT"/*.log
tar czf "$FINAL/device-results.tgz" -C "$OUT" .
