#!/usr/bin/env bash
# GPU check for maintainers (under 5 minutes on one GPU): install, run the `gpu` tests, train the
# default experiment in 16-mixed and bf16-mixed, compare samples/s of the executor with a
# hand-written CUDA loop, and (with 2 GPUs or more) train the gpt_text preset under strategy=fsdp. Usage: bash scripts/gpu_check.sh  (SKIP_INSTALL=1 to use the current
# Python environment as it is, e.g. on a machine without network access.)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [[ "${SKIP_INSTALL:-0}" != "1" ]]; then
    "$PY" -m pip install -q -e ".[dev]"
fi
"$PY" - <<'PY'
import torch
assert torch.cuda.is_available(), "no CUDA device visible"
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}")
PY
echo "== gpu tests"
"$PY" -m pytest -m gpu -q -p no:cacheprovider tests/gpu
for precision in 16-mixed bf16-mixed; do
    echo "== dtrain accelerator=gpu precision=$precision"
    workdir=$(mktemp -d)
    (cd "$workdir" && "$PY" -m declarative_train accelerator=gpu "precision=$precision" logger=none 2>&1 | tail -n 2)
    "$PY" -c "import json,glob,sys; r=json.load(open(glob.glob(sys.argv[1]+'/outputs/runs/*/results.json')[0])); print('test/acc', r['test']['test/acc'], 'wall_time_s', r['wall_time_s'])" "$workdir"
done
echo "== samples/s: executor vs hand-written CUDA loop"
"$PY" bench/bench_gpu.py --device cuda --epochs 5 --repeats 3
gpus=$("$PY" -c "import torch; print(torch.cuda.device_count())")
if [[ "$gpus" -ge 2 ]]; then
    echo "== dtrain experiment=gpt_text on 2 GPUs, strategy=fsdp (NCCL, rank-0 init, sharded background saves)"
    workdir=$(mktemp -d)
    (cd "$workdir" && "$PY" -m declarative_train experiment=gpt_text accelerator=gpu accelerator.devices=2 \
        accelerator.strategy=fsdp precision=bf16-mixed trainer.max_epochs=1 logger=none 2>&1 | tail -n 2)
    "$PY" -c "import json,glob,sys; r=json.load(open(glob.glob(sys.argv[1]+'/outputs/runs/*/results.json')[0])); print('status', r['status'], 'test', r['test'])" "$workdir"
else
    echo "== strategy=fsdp on GPUs: skipped ($gpus GPU; NCCL needs one GPU per rank)"
fi
