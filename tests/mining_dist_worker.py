"""What each process runs in tests/test_mining_distributed.py (``accelerate launch`` with 2 processes):
``python tests/mining_dist_worker.py OUT`` mines the toy pairs in every case and writes its results."""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from mining_toys import MINING_CASES, ItemEmbedder, pairs_and_corpus  # noqa: E402


def mine_all(out_dir: str, cache_dir: str) -> dict:
    """Every case's mined rows and what the model embedded (run alike in one process by the test)."""
    import anycl.mining.mine as mining

    shown = []
    real_bar = mining.phase_bar

    def recording_bar(show, total, desc):  # which process asks for a progress bar
        shown.append(bool(show))
        return real_bar(False, total, desc)

    mining.phase_bar = recording_bar
    pairs, corpus = pairs_and_corpus()
    results = {}
    try:
        for name, case in MINING_CASES.items():
            model = ItemEmbedder()
            rows, stats = mining.mine_hard_negatives(model, pairs, corpus, verbose=False, show_progress=True, **case)
            results[name] = {
                "rows": rows,
                "seen": model.seen,
                "embedded": stats.embedded,
                "pos": stats.mean_positive_score,
            }
        results["bars"] = list(shown)  # the calls above asked for a bar (show_progress=True)
        model, guide = ItemEmbedder(), ItemEmbedder(seed=1)
        rows, stats = mining.mine_hard_negatives(
            model, pairs, corpus, num_negatives=2, guide=guide, guide_margin=0.0, verbose=False
        )
        results["guide"] = {"rows": rows, "seen": model.seen + guide.seen, "filtered": stats.filtered}
        model = ItemEmbedder()  # one process alone, no communication (e.g. a call under is_main_process)
        rows, _ = mining.mine_hard_negatives(model, pairs, corpus, num_negatives=3, shard=False, verbose=False)
        results["unsharded"] = {"rows": rows, "seen": model.seen}
        seen = []
        for _ in range(2):  # the second call reads every embedding from the cache
            model = ItemEmbedder()
            rows, stats = mining.mine_hard_negatives(
                model, pairs, corpus, num_negatives=3, cache_dir=cache_dir, verbose=False
            )
            seen.append(model.seen)
        results["cache"] = {"rows": rows, "seen": seen, "hits": stats.cache_hits}
        try:
            import faiss  # noqa: F401
        except ImportError:
            pass
        else:
            rows, _ = mining.mine_hard_negatives(
                ItemEmbedder(), pairs, corpus, num_negatives=3, backend="faiss", verbose=False
            )
            results["faiss"] = {"rows": rows}
    finally:
        mining.phase_bar = real_bar
    return results


if __name__ == "__main__":
    from anycl.distributed import exit_process, process_info

    out = sys.argv[1]
    import torch.distributed as dist

    if not dist.is_initialized():  # accelerate launch sets the environment; the group is ours to start
        dist.init_process_group("gloo")
    rank, world = process_info()
    assert world == 2, world
    res = mine_all(out, os.path.join(out, "cache"))
    with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
        json.dump(res, f)
    exit_process()
