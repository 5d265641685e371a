#!/usr/bin/env bash
# The trial runner on a lent GPU machine (no network there): the training extra arrives as wheels in .whl/
# (see bench/README.md), then the trainer tests and the 1B DPO / 8B SFT benchmark runs. Logs go to $OUT.
set -uo pipefail
OUT=${OUT:-/tmp/gpu-check}; mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD/operator:$PWD/training-jobs:$PWD/training-jobs/common:$PWD/hack PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | tee "$OUT/env.log"
python3 -c 'import torch, transformers, trl, peft, datasets, pyarrow; print("torch", torch.__version__, "cuda", torch.version.cuda, "transformers", transformers.__version__, "trl", trl.__version__, "peft", peft.__version__, "datasets", datasets.__version__, "pyarrow", pyarrow.__version__, "bf16", torch.cuda.is_bf16_supported())' 2>&1 | tee -a "$OUT/env.log"
timeout 240 python3 -m pytest -q -p no:cacheprovider tests/train -k "not s3" 2>&1 | tee "$OUT/train-tests.log" | tail -25
for run in "1b dpo" "8b sft"; do
  set -- $run
  timeout 300 python3 bench/trainer/run.py --shape "$1" --method "$2" --steps 20 2>&1 | tee "$OUT/bench-$1-$2.log" | grep -E '^\{"shape"|Error|error' | tail -5
done
