"""Prompts on FOLDOC retrieval: none vs ``query: ``/``passage: `` with the prompt tokens in mean
pooling (``include_prompt=True``, the default) or excluded from it (``include_prompt=False``).

Same data and settings as ``bench_matryoshka.py`` (all-MiniLM-L6-v2, InfoNCE, batch 64, 1 epoch,
max_seq_length 64); the prompts are used in training and, through ``encode_query`` /
``encode_document``, in evaluation. Writes ``benchmarks/results/prompts.md``.

Usage: PYTHONPATH=. python benchmarks/bench_prompts.py [--seeds 0] [--train 2000]
"""
from __future__ import annotations

import datetime
import json
import shlex
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_matryoshka import common_parser, embed, fit, fmt, load_line, metrics_at  # noqa: E402
from bench_text_retrieval import build_data  # noqa: E402

PROMPTS = {"anchor": "query: ", "positive": "passage: "}
RUNS = {
    "no prompts": {},
    "prompts, include_prompt=True": {"prompts": PROMPTS},
    "prompts, include_prompt=False": {"prompts": PROMPTS, "include_prompt": False},
}


def main():
    ap = common_parser("0")
    ap.add_argument("--out", default="benchmarks/results/prompts.md")
    a = ap.parse_args()
    import torch

    torch.set_num_threads(a.threads)
    argv = "PYTHONPATH=. python " + " ".join(shlex.quote(x) for x in sys.argv)
    start_load = load_line()
    data = build_data(a.train, a.queries, a.data_seed)
    cfg = dict(batch_size=a.batch_size, lr=a.lr, max_seq_length=a.max_seq_length, eval_batch=128)
    seeds = [int(s) for s in a.seeds.split(",")]
    res = {name: [] for name in RUNS}
    for seed in seeds:
        for name, extra in RUNS.items():
            model, _ = fit(data["train"], {**cfg, "extra": extra}, seed, matryoshka=False)
            q, c = embed(model, data, cfg)
            res[name].append(metrics_at(q, c, data, q.shape[1]))
            print(seed, name, res[name][-1], flush=True)
            del model
    Path(a.out).with_suffix(".json").write_text(json.dumps(res, indent=1))
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = ["# Prompts and mean pooling on FOLDOC retrieval (anycl)", "",
             f"Date: {when}. Machine: 2 CPU cores, CPU only, shared with other jobs.",
             f"Load at start: {start_load}", f"Load at end: {load_line()}",
             "Only quality is measured (valid under load).", "",
             f"Command: `{argv}`", "",
             f"Data: FOLDOC via `bench_text_retrieval.build_data` (split seed {a.data_seed}): {len(data['train'])} "
             f"training pairs, {len(data['corpus'])} test documents, {len(data['queries'])} test queries.", "",
             f"Settings: all-MiniLM-L6-v2, InfoNCE (temperature 0.05), batch {a.batch_size}, 1 epoch, lr {a.lr}, "
             f"max_seq_length {a.max_seq_length}, training seed(s) {seeds}. Prompts {json.dumps(PROMPTS)} in "
             f"training and in evaluation (`encode_query` / `encode_document`).", "",
             "| run | nDCG@10 | MRR@10 | R@10 |", "|---|---|---|---|"]
    for name in RUNS:
        lines.append(f"| {name} | " + " | ".join(fmt([r[k] for r in res[name]]) for k in ("ndcg@10", "mrr@10",
                                                                                          "recall@10")) + " |")
    lines += ["", "Mean ± standard deviation over the seeds (± 0 with one seed: no spread measured).", ""]
    Path(a.out).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
