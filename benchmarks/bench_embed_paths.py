"""The embedding engines (anycl.model.engines) side by side: speed against torch float32 ``encode``, a mining
pass float32 vs the fast engines, and what each engine does to the embeddings and to retrieval quality.

- **Speed** (needs an idle machine): ``model.encode`` of the same texts (``examples/data/pydoc_*.csv``, anchors and
  positives) by each engine, interleaved (torch, torch-bf16, onnx, onnx-int8, torch, ...) so that a change of
  load hits all; the ONNX engines' export is timed apart (one export per state of the weights).
- **Mining pass** (needs an idle machine): ``mine_hard_negatives`` on FOLDOC train pairs by each engine,
  interleaved; for the ONNX engines every pass exports again (as during training, where the weights changed
  since the last pass), so the export is in the pass's time. Also how many rows get the float32 pass's negatives.
- **Quality** (any load): per engine, the largest and mean ``1 - cos`` against torch float32 over every text of
  each retrieval set, and nDCG@10 on the pydoc test pairs and the FOLDOC dev split (``textsets.py``).

Model: all-MiniLM-L6-v2 (packaged). Usage (idle machine, about 15 minutes on 2 cores)::

    PYTHONPATH=. python benchmarks/bench_embed_paths.py --threads 2

``--tiny`` runs a few texts per part (a smoke test, any load; no results file unless ``--out`` is given).
"""

from __future__ import annotations

import argparse
import csv
import datetime
import math
import os
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from idle import load_line  # noqa: E402

ENGINES = ("torch", "torch-bf16", "onnx", "onnx-int8")


def pydoc_pairs(name: str):
    with open(ROOT / "examples" / "data" / name, newline="") as f:
        return [(row["anchor"], row["positive"]) for row in csv.DictReader(f)]


def ndcg_at_10(q, c, relevant) -> float:
    """Mean nDCG@10 of queries ``q`` against corpus ``c`` (L2-normalised rows), ``relevant``: sets of indices."""
    import torch

    top = torch.topk(q @ c.T, min(10, c.shape[0]), dim=1).indices.tolist()
    total = 0.0
    for ranked, rel in zip(top, relevant):
        dcg = sum(1 / math.log2(r + 2) for r, d in enumerate(ranked) if d in rel)
        ideal = sum(1 / math.log2(r + 2) for r in range(min(len(rel), 10)))
        total += dcg / ideal
    return total / len(relevant)


def retrieval_sets(tiny: bool):
    import textsets

    pairs = pydoc_pairs("pydoc_test.csv")
    corpus = sorted({p for _, p in pairs})
    queries = sorted({a for a, _ in pairs})
    relevant = [{corpus.index(p) for a2, p in pairs if a2 == a} for a in queries]
    sets = {"pydoc test": (queries, corpus, relevant)}
    foldoc = textsets.retrieval_set("foldoc", "dev")
    n = 60 if tiny else len(foldoc["queries"])
    sets["FOLDOC dev"] = (foldoc["queries"][:n], foldoc["corpus"][:n], [set(r) for r in foldoc["relevant"][:n]])
    return sets


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--texts", type=int, default=512, help="texts encoded per speed run")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-seq-length", type=int, default=128)
    ap.add_argument("--mine-pairs", type=int, default=1000, help="FOLDOC train pairs mined per mining pass")
    ap.add_argument("--mine-repeats", type=int, default=2)
    ap.add_argument("--skip", default="", help="comma-separated parts to skip: speed, mining, quality")
    ap.add_argument("--tiny", action="store_true", help="a smoke test: a few texts per part")
    ap.add_argument("--out", default=None, help="results file (default: benchmarks/results/embed_paths.md)")
    a = ap.parse_args()
    if a.tiny:
        a.repeats, a.texts, a.mine_pairs, a.mine_repeats = 1, 48, 40, 1
    out = a.out or (None if a.tiny else "benchmarks/results/embed_paths.md")
    skip = {s for s in a.skip.split(",") if s}

    import textsets
    import torch

    import anycl  # noqa: F401
    from anycl.api import build_model
    from anycl.mining.mine import mine_hard_negatives
    from anycl.model import engines
    from anycl.model.precision import bf16_supported, cpu_bf16_units

    torch.set_num_threads(a.threads)
    before = load_line()
    model = build_model(
        {s: "text" for s in ("anchor", "positive")}, adapter_options={"max_seq_length": a.max_seq_length}
    )
    auto = engines.resolve_engine("auto", "cpu")
    lines = [
        "# Embedding engines: speed, a mining pass, and the embeddings' tolerance",
        "",
        f"Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC. Machine: {platform.machine()}, "
        f"{os.cpu_count()} CPU cores, bf16 units: {bf16_supported('cpu')} ({cpu_bf16_units() or 'none'}: the bf16 "
        f'ratios depend on the unit, AMX or AVX512-BF16; so `engine="auto"` is {auto!r}); '
        f"torch {torch.__version__}; {a.threads} threads for every engine.",
        "",
        f"Command: `PYTHONPATH=. python benchmarks/bench_embed_paths.py {shlex.join(sys.argv[1:])}`",
        "",
        "Load before (`../shared/tools/idle-check`):",
        "",
        "```",
        before,
        "```",
        "",
        f"Model: all-MiniLM-L6-v2 (packaged), max_seq_length {a.max_seq_length}, batch {a.batch_size}.",
        "",
    ]

    def clear_sessions():
        engines._SESSIONS.clear()  # the next ONNX call exports again, as after a change of the weights

    if "speed" not in skip:
        pairs = pydoc_pairs("pydoc_test.csv") + pydoc_pairs("pydoc_train.csv")
        texts = [t for pair in pairs for t in pair][: a.texts]
        export_s = {}
        for e in ENGINES:  # warm-up, and the export timed apart
            clear_sessions()
            t = time.perf_counter()
            model.encode(texts[: a.batch_size], batch_size=a.batch_size, engine=e)
            export_s[e] = time.perf_counter() - t
        times = {e: [] for e in ENGINES}
        for _ in range(a.repeats):
            for e in ENGINES:
                t = time.perf_counter()
                model.encode(texts, batch_size=a.batch_size, engine=e)
                times[e].append(time.perf_counter() - t)
        rate = {e: len(texts) / statistics.median(v) for e, v in times.items()}
        lines += [
            "## Encode speed",
            "",
            f"{len(texts)} texts from `examples/data/pydoc_*.csv` (anchors and positives), `model.encode(texts, "
            f"batch_size={a.batch_size}, engine=...)` (tokenisation included), {a.repeats} interleaved repeats after "
            "a warm-up; medians. First call (the ONNX engines: export, and quantisation for int8, of the graph; a "
            "batch): " + ", ".join(f"{e} {export_s[e]:.1f} s" for e in ENGINES) + ".",
            "",
            "| engine | texts/s | × torch fp32 | all runs (s) |",
            "|---|---|---|---|",
        ]
        for e in ENGINES:
            runs = ", ".join(f"{t:.2f}" for t in times[e])
            lines.append(f"| {e} | {rate[e]:.1f} | {rate[e] / rate['torch']:.2f}× | {runs} |")
        lines += ["", "Target (issue 34): ≥ 2× torch fp32 encode.", ""]

    if "mining" not in skip:
        train = textsets.train_pairs("foldoc")[: a.mine_pairs]
        pairs = [(r["anchor"], r["positive"]) for r in train]
        times = {e: [] for e in ENGINES}
        found = {}
        for _ in range(a.mine_repeats):
            for e in ENGINES:
                clear_sessions()
                t = time.perf_counter()
                rows, _ = mine_hard_negatives(model, pairs, verbose=False, engine=e, batch_size=a.batch_size)
                times[e].append(time.perf_counter() - t)
                found[e] = [r["negative_1"] for r in rows]
        med = {e: statistics.median(v) for e, v in times.items()}
        lines += [
            "## A mining pass",
            "",
            f"`mine_hard_negatives(model, pairs, engine=...)` on the first {len(pairs)} FOLDOC train pairs "
            f"({len(pairs)} queries, a corpus of their {len(pairs)} documents; 1 negative each, exact search), "
            f"{a.mine_repeats} interleaved repeats; medians. Each ONNX pass exports (and for int8 quantises) the "
            "graph again, as a pass during training does after the weights changed.",
            "",
            "| engine | s per pass | × torch fp32 | rows with fp32's negative | all runs (s) |",
            "|---|---|---|---|---|",
        ]
        for e in ENGINES:
            same = sum(x == y for x, y in zip(found[e], found["torch"])) / max(len(found["torch"]), 1)
            runs = ", ".join(f"{t:.2f}" for t in times[e])
            lines.append(f"| {e} | {med[e]:.2f} | {med['torch'] / med[e]:.2f}× | {same:.1%} | {runs} |")
        lines += ["", "Target (issue 34): a mining pass ≥ 1.8× faster than today's fp32 pass.", ""]

    if "quality" not in skip:
        lines += [
            "## Tolerance and retrieval quality",
            "",
            "Per engine: the largest and the mean `1 − cos(engine, torch fp32)` over every query and document of "
            "the set, and nDCG@10 (exact search over the set's corpus). Measured values; they do not depend on the "
            "machine's load.",
            "",
            "| set | engine | max 1−cos | mean 1−cos | max abs diff | nDCG@10 | Δ nDCG@10 |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, (queries, corpus, relevant) in retrieval_sets(a.tiny).items():
            emb = {}
            for e in ENGINES:
                q = model.encode(queries, batch_size=a.batch_size, engine=e, prompt=None)
                c = model.encode(corpus, batch_size=a.batch_size, engine=e)
                emb[e] = (q, c)
            ref_q, ref_c = emb["torch"]
            ref_ndcg = ndcg_at_10(ref_q, ref_c, relevant)
            for e in ENGINES:
                q, c = emb[e]
                gap = torch.cat([1 - (q * ref_q).sum(-1), 1 - (c * ref_c).sum(-1)]).abs()
                diff = max(float((q - ref_q).abs().max()), float((c - ref_c).abs().max()))
                nd = ndcg_at_10(q, c, relevant)
                lines.append(
                    f"| {name} ({len(queries)} queries) | {e} | {float(gap.max()):.2e} | {float(gap.mean()):.2e} | "
                    f"{diff:.2e} | {nd:.4f} | {nd - ref_ndcg:+.4f} |"
                )
        lines += ["", "Targets (issue 34): nDCG@10 within 0.003 of fp32 (0.005 for int8).", ""]

    after = load_line()
    busy = not (before.startswith("idle") and after.startswith("idle"))
    lines += ["Load after:", "", "```", after, "```", ""]
    if busy and not skip >= {"speed", "mining"}:
        lines += [
            "**The machine was busy (other jobs running), so the speed numbers above are void as measurements** "
            "— the interleaving keeps the comparison fairer but not valid; rerun on an idle machine. (The quality "
            "numbers stand.)",
            "",
        ]
    text = "\n".join(lines)
    if out:
        Path(out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
