"""Text training throughput: anycl's `fit` vs the sentence-transformers trainer (MNRL), side by side.

The same training pairs (FOLDOC's, ``textsets.train_pairs``), model (all-MiniLM-L6-v2), batch 64, lr 5e-5, one
epoch, ``max_seq_length`` as given. Rows are run **interleaved** (round 1: every row, round 2: every row, ...),
each in its own process, and the report gives each row's training pairs/s per round and their mean, and the
ratio of each anycl row to ST MNRL **within each round** (mean ± std over rounds). Only training time counts
(ST: ``trainer.train()``; anycl: ``model.trainer.train_seconds``); model loading and evaluation do not.

Run it on an idle machine: ``../shared/tools/idle-check`` before and after (both lines go into the report);
if the 1-minute load passes 2.5 the run is void.

Usage: PYTHONPATH=. python benchmarks/bench_text_speed.py [--rounds 3] [--pairs 1000] [--max-seq-length 64]
       [--rows st_mnrl,anycl:default,anycl:fp32] [--out benchmarks/results/text_speed.md]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import bench_text_quality as quality  # noqa: E402
import textsets  # noqa: E402
from idle import idle_line  # noqa: E402

ROWS = {  # anycl rows: fit options on top of the new user's call (see bench_text_quality.anycl_options)
    "default": {},  # length-grouped batches (group_by_length 8) are the text default since issue 14
    "fp32": {"mixed_precision": "no"},  # the defaults in fp32 ("auto" is bf16 on a CPU with bf16 units, issue 34)
    "ungrouped": {"sampler_options": {"group_by_length": None}},  # the defaults without length grouping
    "group_by_length": {"sampler_options": {"group_by_length": 8}},
}


def run_one(row: str, n_pairs: int, seed: int) -> dict:
    import torch

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    rows = textsets.train_pairs("foldoc")[:n_pairs]
    if row.startswith("anycl:"):
        import anycl

        quality.VARIANTS.update(ROWS)
        model = anycl.fit(rows, modality="text", **quality.anycl_options(row.split(":", 1)[1], seed))
        secs, n = model.trainer.train_seconds, model.trainer.global_step * quality.COMMON["batch_size"]
    else:
        _, trained, secs = quality.st_run(row, rows, seed)
        n = len(trained)
    return {"row": row, "pairs": n, "train_s": secs, "pairs_per_s": n / secs}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--pairs", type=int, default=1000)
    ap.add_argument("--max-seq-length", type=int, default=64)
    ap.add_argument("--rows", default="st_mnrl,anycl:default,anycl:ungrouped")
    ap.add_argument("--out", default=str(HERE / "results" / "text_speed.md"))
    ap.add_argument("--one", help=argparse.SUPPRESS)
    a = ap.parse_args()
    quality.COMMON["max_seq_length"] = a.max_seq_length
    if a.one:
        row, seed = a.one.split("|")
        print("RESULT " + json.dumps(run_one(row, a.pairs, int(seed))), flush=True)
        return
    before = idle_line()
    print(before, flush=True)
    rows, results = a.rows.split(","), []
    for r in range(a.rounds):
        for row in rows:
            cmd = [
                sys.executable,
                __file__,
                "--one",
                f"{row}|{r}",
                "--pairs",
                str(a.pairs),
                "--max-seq-length",
                str(a.max_seq_length),
            ]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
            if proc.returncode or not line:
                raise SystemExit(f"{row} round {r} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
            res = json.loads(line[-1][7:])
            res.update(round=r, load=os.getloadavg()[0])
            results.append(res)
            print(f"round {r} {row}: {res['pairs_per_s']:.2f} pairs/s (load {res['load']:.1f})", flush=True)
    after = idle_line()
    print(after, flush=True)
    write_report(Path(a.out), results, rows, a, before, after)


def write_report(out: Path, results: list, rows: list, a, before: str, after: str) -> None:
    def per(row):
        return [x["pairs_per_s"] for x in sorted((x for x in results if x["row"] == row), key=lambda x: x["round"])]

    ms = lambda xs: f"{statistics.fmean(xs):.2f} ± {statistics.stdev(xs) if len(xs) > 1 else 0:.2f}"  # noqa: E731
    max_load = max(x["load"] for x in results)
    lines = [
        "# Text training throughput: anycl vs the sentence-transformers trainer",
        "",
        f"Written {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC. Command: "
        f"`PYTHONPATH=. python benchmarks/bench_text_speed.py --rounds {a.rounds} --pairs {a.pairs} "
        f"--max-seq-length {a.max_seq_length} --rows {','.join(rows)}`.",
        "",
        f"- Before: {before}",
        f"- After: {after}",
        f"- Highest 1-minute load at the end of a run: {max_load:.2f}"
        + (" — **above 2.5: this run is void as a speed comparison**." if max_load > 2.5 else " (below 2.5)."),
        "",
        f"FOLDOC training pairs (first {a.pairs}), all-MiniLM-L6-v2, batch 64, lr 5e-5, 1 epoch, "
        f"max_seq_length {a.max_seq_length}, 2 threads; rows interleaved, each run in its own process; "
        "training time only.",
        "",
        "| row | pairs/s per round | mean ± std | ratio to ST MNRL (per round, mean ± std) |",
        "|---|---|---|---|",
    ]
    base = per("st_mnrl") if "st_mnrl" in rows else None
    ratios = {}
    for row in rows:
        xs = per(row)
        ratio = "–"
        if base and row != "st_mnrl":
            ratios[row] = [x / b for x, b in zip(xs, base)]
            ratio = ms(ratios[row]) + "×"
        lines.append(f"| {row} | {', '.join(f'{x:.2f}' for x in xs)} | {ms(xs)} | {ratio} |")
    if "anycl:default" in rows and "anycl:fp32" in rows:
        bf = [x / b for x, b in zip(per("anycl:default"), per("anycl:fp32"))]
        lines += ["", f"anycl:default / anycl:fp32 (per round, mean ± std): {ms(bf)}×."]
    if "anycl:default" in ratios:
        m = statistics.fmean(ratios["anycl:default"])
        lines += [
            "",
            f"Target (issue 34): training pairs/s with the defaults ≥ 1.8× ST MNRL: "
            f"{m:.2f}× — **{'met' if m >= 1.8 and max_load <= 2.5 else 'not met'}**"
            + ("" if max_load <= 2.5 else " (void: the machine was busy)")
            + ".",
        ]
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
