#!/usr/bin/env bash
# From a CSV of pairs to a fine-tuned model, its report and its evaluation: three commands, offline.
# Run from the repository root. Uses `anycl` when installed (pip install -e .), else `python -m anycl`.
set -euo pipefail
cd "$(dirname "$0")/.."
if command -v anycl >/dev/null; then ANYCL=(anycl); else ANYCL=(python -m anycl); export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"; fi
OUT="${1:-anycl-runs/cli-quickstart}"

"${ANYCL[@]}" fit examples/data/pydoc_train.csv --modality text --epochs 1 \
    --eval-dataset examples/data/pydoc_test.csv --output-dir "$OUT" --overwrite
"${ANYCL[@]}" eval "$OUT" examples/data/pydoc_test.csv
"${ANYCL[@]}" embed "$OUT" examples/data/pydoc_test.csv --column positive -o "$OUT/docs.parquet" --overwrite

echo "open $OUT/report.html in a browser; the model card is $OUT/model/README.md"
