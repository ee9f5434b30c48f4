"""Issue 34's quality check of the bf16 default: fp32 vs bf16 autocast on the text dev splits, from the raw results
of ``bench_text_quality.py`` run with the rows ``anycl:fp32`` and ``anycl:bf16`` (the defaults with
``mixed_precision`` given "no" or "bf16"; "auto" is "bf16" on this CPU). Writes the per-set mean ± std of each,
the difference bf16 − fp32 per seed and on average, a paired bootstrap over queries, and the target (bf16 within
0.003 nDCG@10 of fp32 over 3 seeds) in words.

Usage: python benchmarks/report_mixed_precision.py RAW.json OUT.md --command "..." [--note "..."]
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_text_quality import bootstrap  # noqa: E402

ROWS = ("anycl:fp32", "anycl:bf16")
TOLERANCE = 0.003


def _ms(xs):
    return f"{statistics.fmean(xs):.4f} ± {statistics.stdev(xs):.4f}" if len(xs) > 1 else f"{xs[0]:.4f}"


def report(raw: dict, command: str, note: str) -> str:
    runs = [r for r in raw["runs"] if r["row"] in ROWS]
    loads = [r["load"] for r in runs]
    lines = [
        "# Mixed precision: bf16 autocast (the default on this CPU) vs fp32, text dev splits",
        "",
        f"Written {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC. Command: `{command}`.",
        "",
        f"Machine load (1-minute average) when each run ended: min {min(loads):.1f}, max {max(loads):.1f} "
        "(2 cores shared with other work). Quality does not depend on load. The pairs/s of these runs are **not** "
        "a speed comparison and are not quoted: speed is measured on an idle machine with `bench_text_speed.py`.",
        "",
        "Each row is the text defaults (`bench_text_quality.py`: all-MiniLM-L6-v2, 2,000 training pairs, 1 epoch, "
        'batch 64, lr 5e-5, max_seq_length 64) with `mixed_precision` given: `anycl:fp32` = `"no"`, '
        '`anycl:bf16` = `"bf16"` (what the default `"auto"` resolves to on a CPU with avx512_bf16 or AMX). '
        "One torch thread per run. Evaluation (`encode`) runs in fp32 for both.",
    ]
    if note:
        lines += ["", note]
    verdicts = []
    for dataset in dict.fromkeys(r["set"] for r in runs):
        by = {row: {r["seed"]: r for r in runs if r["set"] == dataset and r["row"] == row} for row in ROWS}
        seeds = sorted(set(by[ROWS[0]]) & set(by[ROWS[1]]))
        lines += [
            "",
            f"## {dataset}",
            "",
            "| row | nDCG@10 | MRR@10 | R@1 | R@10 | seeds |",
            "|---|---|---|---|---|---|",
        ]
        for row in ROWS:
            got = [by[row][s] for s in sorted(by[row])]
            if got:
                cells = " | ".join(_ms([r[k] for r in got]) for k in ("ndcg@10", "mrr@10", "recall@1", "recall@10"))
                lines.append(f"| {row} | {cells} | {','.join(str(s) for s in sorted(by[row]))} |")
        if not seeds:
            continue
        diffs = [by[ROWS[1]][s]["ndcg@10"] - by[ROWS[0]][s]["ndcg@10"] for s in seeds]
        per_q = [
            [statistics.fmean(q) for q in zip(*(by[row][s]["per_query"] for s in seeds))] for row in reversed(ROWS)
        ]
        d, lo, hi = bootstrap(per_q[0], per_q[1])
        mean = statistics.fmean(diffs)
        lines += [
            "",
            "bf16 − fp32 in nDCG@10 per seed: "
            + ", ".join(f"seed {s} {x:+.4f}" for s, x in zip(seeds, diffs))
            + f"; mean {mean:+.4f} over {len(seeds)} seed(s); per query, averaged over those seeds, {d:+.4f} "
            f"(paired bootstrap 95 % interval [{lo:+.4f}, {hi:+.4f}], 2,000 resamples).",
        ]
        ok = mean >= -TOLERANCE
        verdicts.append((dataset, ok, len(seeds), mean))
    lines += ["", "## Target", ""]
    lines.append(
        f"Issue 34: text quality with bf16 within {TOLERANCE} nDCG@10 of fp32 (bf16 not more than {TOLERANCE} below), "
        "over 3 seeds, on both dev sets."
    )
    for dataset, ok, n, mean in verdicts:
        if n < 3:
            state = f"**not judged** (only {n} of 3 seeds ran; so far {mean:+.4f}, {'within' if ok else 'outside'})"
        else:
            state = f"**{'met' if ok else 'not met'}** ({mean:+.4f})"
        lines.append(f"- {dataset}: {state}.")
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("raw")
    ap.add_argument("out")
    ap.add_argument("--command", required=True)
    ap.add_argument("--note", default="")
    a = ap.parse_args()
    Path(a.out).write_text(report(json.loads(Path(a.raw).read_text()), a.command, a.note))


if __name__ == "__main__":
    main()
