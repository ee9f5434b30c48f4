"""Encode speed on CPU: ONNX Runtime vs torch for the text tower (all-MiniLM-L6-v2), same inputs.

Both encode the same texts in the same batches (sorted by length, as ``model.encode`` does), tokenized by
the same adapter; the repeats alternate torch, ONNX Runtime, torch, … so that a change in the machine's
load hits both. Both use the same number of threads. Also checks the largest difference of the
embeddings.

Usage: PYTHONPATH=. python benchmarks/bench_onnx.py [--repeats 5] [--threads 2]
"""

from __future__ import annotations

import argparse
import csv
import datetime
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from idle import load_line  # noqa: E402


def texts_from_examples():
    out = []
    for name in ("pydoc_test.csv", "pydoc_train.csv"):
        with open(ROOT / "examples" / "data" / name, newline="") as f:
            for row in csv.DictReader(f):
                out += [row["anchor"], row["positive"]]
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--texts", type=int, default=512)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-seq-length", type=int, default=128)
    ap.add_argument("--out", default="benchmarks/results/onnx.md")
    a = ap.parse_args()
    import numpy as np
    import torch

    import anycl  # noqa: F401
    from anycl.api import build_model
    from anycl.export.to_onnx import features_for, onnx_session, run_onnx

    torch.set_num_threads(a.threads)
    before = load_line()
    texts = texts_from_examples()[: a.texts]
    model = build_model(
        {s: "text" for s in ("anchor", "positive", "negative")}, adapter_options={"max_seq_length": a.max_seq_length}
    )
    tmp = tempfile.mkdtemp(prefix="anycl_onnx_bench_")
    t0 = time.perf_counter()
    model.export_onnx(tmp)
    export_s = time.perf_counter() - t0
    session = onnx_session(tmp, threads=a.threads)
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    batches = [[texts[i] for i in order[s : s + a.batch_size]] for s in range(0, len(texts), a.batch_size)]

    def run_torch():
        return torch.cat([model.encode(b, batch_size=a.batch_size) for b in batches]).numpy()

    def run_ort():
        return np.concatenate([run_onnx(session, features_for(model, b)) for b in batches])

    ref, got = run_torch(), run_ort()  # warm-up, and the parity of the two
    max_diff = float(np.abs(ref - got).max())
    times = {"torch": [], "onnxruntime": []}
    for _ in range(a.repeats):
        for name, fn in (("torch", run_torch), ("onnxruntime", run_ort)):
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    after = load_line()
    med = {k: statistics.median(v) for k, v in times.items()}
    rate = {k: len(texts) / v for k, v in med.items()}
    busy = not (before.startswith("idle") and after.startswith("idle"))
    import onnxruntime

    lines = [
        "# ONNX Runtime vs torch: text tower encode speed on CPU",
        "",
        f"Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC. Machine: {platform.machine()}, "
        f"{os.cpu_count()} CPU cores; torch {torch.__version__}, onnxruntime {onnxruntime.__version__}; "
        f"{a.threads} threads each.",
        "",
        "Load before (`../shared/tools/idle-check`):",
        "",
        "```",
        before,
        "```",
        "",
        "Load after:",
        "",
        "```",
        after,
        "```",
        "",
        f"Command: `PYTHONPATH=. python benchmarks/bench_onnx.py {shlex.join(sys.argv[1:])}`",
        "",
        f"Model: all-MiniLM-L6-v2 (packaged), exported with `model.export_onnx` (opset 17, {export_s:.0f} s). "
        f"Inputs: {len(texts)} texts from `examples/data/pydoc_*.csv` (anchors and positives), sorted by length, "
        f"batches of {a.batch_size}, max_seq_length {a.max_seq_length}; tokenization by the same adapter for "
        f"both (included in the times). {a.repeats} interleaved repeats after one warm-up each; medians.",
        "",
        "| engine | median s | texts/s | all runs (s) |",
        "|---|---|---|---|",
    ]
    for k in ("torch", "onnxruntime"):
        lines.append(f"| {k} | {med[k]:.2f} | {rate[k]:.1f} | {', '.join(f'{t:.2f}' for t in times[k])} |")
    lines += [
        "",
        f"Speed ratio ONNX Runtime / torch: {rate['onnxruntime'] / rate['torch']:.2f}×.",
        "",
        f"Largest absolute difference of the (L2-normalised) embeddings: {max_diff:.2e} (the parity target "
        f"is 1e-4: {'met' if max_diff <= 1e-4 else 'not met'}).",
        "",
    ]
    if busy:
        lines += [
            "**The machine was busy (other jobs running), so these speed numbers are void as measurements** "
            "— the interleaving keeps the comparison fairer but not valid; rerun on an idle machine.",
            "",
        ]
    Path(a.out).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
