"""Choose anycl's text-mining settings on a FOLDOC *dev* split, never on the benchmark's test queries.

The benchmark (``bench_text_retrieval.py --seed S``) tests on 5,000 entries; this script uses only the
other entries of the same shuffle (its 2,000 training entries and the unused rest): it trains on the
first ``--dev-train`` of them and evaluates on the remaining ones (each a query and a corpus document).
Each setting runs the benchmark's own ``anycl_mined`` phase (same code, same defaults) in its own
process; ``st_mined`` runs too, as the reference the issue's target is measured against.

Usage: PYTHONPATH=. python benchmarks/tune_text_dev.py [--seed 12] [--dev-train 1600]
       [--only base,symmetric,...] [--train-seeds 12]
Results: benchmarks/results/text_dev_tuning.md (+ .json), rewritten after every run, so partial runs keep
what finished; ``--append`` adds to the runs already there.
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
from bench_text_retrieval import split_entries  # noqa: E402

# name -> extra arguments of bench_text_retrieval.py for that run
SETTINGS = {
    "st_mined": ["--phase", "st_mined"],
    "base": [],
    "symmetric": ["--anycl-loss", '{"symmetric": true}'],
    "same_side": ["--anycl-loss", '{"same_side_negatives": true}'],
    "same_side_symmetric": ["--anycl-loss", '{"same_side_negatives": true, "symmetric": true}'],
    "neg3": ["--num-negatives", "3"],
    "neg3_symmetric": ["--num-negatives", "3", "--anycl-loss", '{"symmetric": true}'],
    "remine5": ["--remine", "5"],
    "random_top10": ["--anycl-sampler", '{"sampling": "random", "range_max": 10}'],
    "st_mined_neg3": ["--phase", "st_mined", "--num-negatives", "3"],
}


def dev_data(seed: int, dev_train: int, bench_train: int) -> dict:
    _, train, rest, _ = split_entries(bench_train, seed)
    pool = train + rest  # never the benchmark's test entries
    tr, dev = pool[:dev_train], pool[dev_train:]
    return {
        "train": [{"anchor": e["query"], "positive": e["doc"]} for e in tr],
        "queries": [e["query"] for e in dev],
        "relevant": [[i] for i in range(len(dev))],
        "corpus": [e["doc"] for e in dev],
        "n_entries": len(pool),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=12, help="the benchmark's split seed whose test set is avoided")
    ap.add_argument("--bench-train", type=int, default=2000)
    ap.add_argument("--dev-train", type=int, default=1600)
    ap.add_argument("--train-seeds", default="12", help="comma-separated training seeds per setting")
    ap.add_argument("--only", default=",".join(SETTINGS))
    ap.add_argument("--out", default=str(HERE / "results" / "text_dev_tuning.md"))
    ap.add_argument("--append", action="store_true", help="keep the runs already in --out's raw results")
    a = ap.parse_args()
    data = dev_data(a.seed, a.dev_train, a.bench_train)
    data_file = f"/tmp/anycl_dev_data_{os.getpid()}.json"
    json.dump(data, open(data_file, "w"))
    print(f"dev split: {len(data['train'])} training pairs, {len(data['queries'])} dev queries/documents", flush=True)
    raw = Path(a.out).with_suffix(".json")
    results = json.loads(raw.read_text()) if a.append and raw.exists() else []
    t_all = time.perf_counter()
    for seed in [int(x) for x in a.train_seeds.split(",")]:
        for name in a.only.split(","):
            extra = SETTINGS[name]
            phase = [] if "--phase" in extra else ["--phase", "anycl_mined"]
            cmd = (
                [
                    sys.executable,
                    str(HERE / "bench_text_retrieval.py"),
                    "--data-file",
                    data_file,
                    "--max-seq-length",
                    "128",
                    "--remine",
                    "2",
                    "--seed",
                    str(seed),
                ]
                + phase
                + extra
            )
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True)
            line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
            if proc.returncode or not line:
                print(proc.stdout[-2000:], proc.stderr[-2000:], flush=True)
                continue
            r = json.loads(line[-1][7:])
            r.update(setting=name, train_seed=seed, seconds=time.perf_counter() - t0)
            results.append(r)
            print(
                f"{name} seed {seed}: nDCG@10 {r['ndcg@10']:.4f} MRR@10 {r['mrr@10']:.4f} ({r['seconds']:.0f}s)",
                flush=True,
            )
            write(results, a, data, time.perf_counter() - t_all)
    os.remove(data_file)


def write(results, a, data, total):
    lines = [
        "# Text: anycl mining settings chosen on a dev split (FOLDOC)",
        "",
        f"Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC. Command: "
        f"`PYTHONPATH=. python benchmarks/tune_text_dev.py {' '.join(sys.argv[1:])}` (this call "
        f"{total / 60:.1f} min; raw results in `{Path(a.out).with_suffix('.json').name}`)",
        "",
        f"Dev split: the entries of the seed-{a.seed} shuffle that the benchmark does not test on "
        f"({data['n_entries']}); {len(data['train'])} training pairs, {len(data['queries'])} dev queries "
        f"against a corpus of their {len(data['corpus'])} documents. Otherwise the benchmark's settings "
        "(batch 32, 1 epoch, lr 5e-05, max_seq_length 128, temperature 0.05, relative_margin 0.05, "
        "re-mined 2× unless said).",
        "",
        "| setting | train seed | nDCG@10 | MRR@10 | R@1 | R@10 | train s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['setting']} | {r['train_seed']} | {r['ndcg@10']:.4f} | {r['mrr@10']:.4f} | "
            f"{r['recall@1']:.4f} | {r['recall@10']:.4f} | {r['train_s']:.0f} |"
        )
    lines += ["", "Settings: " + "; ".join(f"{k}: `{' '.join(v) or '(defaults)'}`" for k, v in SETTINGS.items()), ""]
    Path(a.out).write_text("\n".join(lines))
    Path(a.out).with_suffix(".json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
