#!/usr/bin/env bash
# The GPU rows of benchmarks/results/throughput.md and memory.md (about 6 minutes on one
# H100/H200): throughput of hpo vs plain Lightning vs a raw loop, fp32 and bf16-mixed, per workload,
# and a worker's memory across trials. Each table goes to $OUT (default: the current folder); the
# per-run times and partial tables go to the same files, so a run cut short still leaves its rounds.
#
#     bash benchmarks/gpu_rows.sh                 # everything
#     PARTS="resnet user" bash benchmarks/gpu_rows.sh
set -u
OUT=${OUT:-.}
PY=${PYTHON:-python3}
PARTS=${PARTS:-resnet user memory}
export PYTHONUNBUFFERED=1
nvidia-smi -L || true
$PY -c "import torch, lightning, optuna; print('torch', torch.__version__, 'lightning', lightning.__version__, 'optuna', optuna.__version__, torch.cuda.get_device_name(0))"
common=(--accelerator gpu --resnet-images 8192 --resnet-batch 128 --epochs 5 --warmup 2 --repeats 2)
for part in $PARTS; do
  case $part in
    resnet|user)
      for precision in 32-true bf16-mixed; do
        timeout "${T:-100}" $PY benchmarks/throughput.py "${common[@]}" --workloads "$part" --precision "$precision" \
          > "$OUT/throughput_gpu_${part}_${precision}.txt" 2>&1
        cat "$OUT/throughput_gpu_${part}_${precision}.txt" | grep -v "^#\|Warning\|warn" | tail -8
      done ;;
    memory)
      timeout 90 $PY benchmarks/memory.py --trials 10 2>&1 | tail -20 | tee "$OUT/memory_gpu.txt" ;;
  esac
done
