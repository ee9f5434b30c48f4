"""The audio benchmark's report pieces (``bench_audio.py``): issue 16's targets judged in words, the dev runs'
table, mean ± std."""

from __future__ import annotations

import json
import statistics
from pathlib import Path


def targets(results) -> list:
    """Issue 16's audio targets judged in words: linear probe ≥ log-mel statistics + 0.10 and ≥ random init
    + 0.08, kNN above both floors (means over seeds)."""
    mean = lambda name, probe: statistics.mean(r[name][probe] for r in results)  # noqa: E731
    lin, knn = mean("pretrained", "linear"), mean("pretrained", "knn")
    out = []
    for floor, label, need in (("logmel", "log-mel statistics", 0.10), ("random", "random init", 0.08)):
        f_lin, f_knn = mean(floor, "linear"), mean(floor, "knn")
        verdict = "met" if lin >= f_lin + need else "**not met**"
        reach = "" if f_lin + need <= 1 else " (unreachable: the floor plus the margin is above 1)"
        out.append(
            f"- Linear probe ≥ {label} + {need:.2f} ({f_lin:.3f} + {need:.2f} = {f_lin + need:.3f}): "
            f"{lin:.3f}, {verdict}{reach}."
        )
        out.append(f"- kNN above {label} ({f_knn:.3f}): {knn:.3f}, {'met' if knn > f_knn else '**not met**'}.")
    return out


def dev_table(path: Path) -> str:
    """The dev runs (JSON lines of ``--dev``) as a markdown table: one row per run, means over its seeds."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    out = [
        "| date | set | seeds | settings | log-mel lin / kNN | random lin / kNN | pretrained lin / kNN |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        m = {k: statistics.mean(v) for k, v in r.items() if k.endswith(("_linear", "_knn"))}
        settings = r["command"].split("bench_audio.py", 1)[1].replace("--dev", "").strip()
        pairs = [f"{m[name + '_linear']:.3f} / {m[name + '_knn']:.3f}" for name in ("logmel", "random", "pretrained")]
        out.append(
            f"| {r['date']} | {r['set']} | {','.join(map(str, r['seeds']))} | `{settings}` | {' | '.join(pairs)} |"
        )
    return "\n".join(out)


def mean_spread(values):
    m = statistics.mean(values)
    s = statistics.stdev(values) if len(values) > 1 else 0.0
    return m, s
