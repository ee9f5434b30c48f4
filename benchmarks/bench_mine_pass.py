"""One timed mining pass per engine, in a fresh process: to compare two checkouts side by side (issue 34).

Builds the default text model (all-MiniLM-L6-v2, packaged; max_seq_length 128), embeds 64 texts once (a warm-up),
then runs ``mine_hard_negatives`` on the first 1,000 FOLDOC train pairs (1,000 queries, a corpus of their 1,000
documents, one negative each, exact search) once per engine named, in that order, and prints one JSON line of
seconds per engine. Run it from each checkout's root, alternating, with the machine idle::

    for r in 1 2 3; do
      (cd old-checkout && PYTHONPATH=. python /path/to/bench_mine_pass.py torch torch-bf16)
      (cd new-checkout && PYTHONPATH=. python /path/to/bench_mine_pass.py torch-bf16 torch)
    done

(the order of the engines alternates too, so that neither engine always runs first in a process).
"""

from __future__ import annotations

import json
import os
import sys
import time


def main() -> None:
    engines = sys.argv[1:] or ["torch", "torch-bf16"]
    sys.path.insert(0, os.path.join(os.getcwd(), "benchmarks"))
    import textsets
    import torch

    from anycl.api import build_model
    from anycl.mining.mine import mine_hard_negatives

    torch.set_num_threads(2)
    model = build_model({s: "text" for s in ("anchor", "positive")}, adapter_options={"max_seq_length": 128})
    pairs = [(r["anchor"], r["positive"]) for r in textsets.train_pairs("foldoc")[:1000]]
    model.encode([p[0] for p in pairs[:64]], batch_size=32, engine="torch-bf16")  # warm-up
    out = {}
    for engine in engines:
        t = time.perf_counter()
        mine_hard_negatives(model, pairs, verbose=False, engine=engine, batch_size=32)
        out[engine] = time.perf_counter() - t
    print(json.dumps(out))


if __name__ == "__main__":
    main()
