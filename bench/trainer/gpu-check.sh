#!/usr/bin/env bash
# The trainer benchmark on a lent GPU machine (no network there; at most ~10 min per command): the training
# extra arrives as wheels in .whl/ (see bench/README.md); then ours vs the plain TRL/PEFT script on the 8B
# shape at 2048 and 4096 tokens (bench/trainer/compare.py), then the trainer tests with what time is left.
# The whole script stays under LIMIT seconds (default 530): compare.py starts no run it cannot finish.
# Logs go to $OUT; the comparison's summary is the last JSON document of $OUT/compare-8b.log.
set -uo pipefail
LIMIT=${LIMIT:-530}
OUT=${OUT:-/tmp/gpu-check}; mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD/operator:$PWD/training-jobs:$PWD/training-jobs/common:$PWD/hack PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,power.limit --format=csv 2>&1 | tee "$OUT/env.log"
python3 -c 'import torch, transformers, trl, peft, datasets, pyarrow; print("torch", torch.__version__, "cuda", torch.version.cuda, "transformers", transformers.__version__, "trl", trl.__version__, "peft", peft.__version__, "datasets", datasets.__version__, "pyarrow", pyarrow.__version__, "bf16", torch.cuda.is_bf16_supported())' 2>&1 | tee -a "$OUT/env.log"
# 6 optimizer steps per run, the first 2 left out; 32 768 tokens per step at both lengths; ours and plain
# alternate; the second repeat runs only as far as the budget allows (80 s are kept for the tests).
budget=$(( LIMIT - SECONDS - 80 ))
timeout $(( budget + 30 )) python3 bench/trainer/compare.py --shape 8b --configs 2048:4:16,4096:2:8 --repeats 2 \
  --steps 6 --warmup-steps 2 --budget "$budget" --run-timeout 240 --workdir /tmp/bench-trainer \
  > "$OUT/compare-8b.log" 2> "$OUT/compare-8b.err"
echo "compare.py exit $?"; grep -E '^\{"script"' "$OUT/compare-8b.log" | cut -c1-300
sed -n '/^{$/,$p' "$OUT/compare-8b.log"
left=$(( LIMIT - SECONDS - 5 ))
if [ "$left" -gt 20 ]; then
  timeout "$left" python3 -m pytest -q -p no:cacheprovider tests/unit/test_bench_trainer_settings.py tests/train -k "not s3" 2>&1 | tee "$OUT/train-tests.log" | tail -5
fi
echo "total ${SECONDS}s"
