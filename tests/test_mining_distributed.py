"""Mining split over two CPU processes (gloo, ``accelerate launch``): the same negatives as one process,
each process embedding about half of the queries and corpus; one progress bar."""

import json

import mining_dist_worker
import pytest
from launch import launch_two_processes
from mining_toys import MINING_CASES, pairs_and_corpus


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    out = tmp_path_factory.mktemp("mining-dist")
    launch_two_processes("mining_dist_worker.py", str(out), timeout=300)
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in range(2)]
    single = mining_dist_worker.mine_all(str(out), str(tmp_path_factory.mktemp("single-cache")))
    return ranks, single


@pytest.mark.parametrize("case", [*MINING_CASES, "guide", "cache", "faiss", "unsharded"])
def test_two_processes_mine_exactly_the_negatives_of_one(case, two_processes):
    ranks, single = two_processes
    if case not in single:
        pytest.skip("faiss is not installed")
    assert ranks[0][case]["rows"] == ranks[1][case]["rows"] == single[case]["rows"]
    assert len(single[case]["rows"]) > 0


@pytest.mark.parametrize("case", list(MINING_CASES))
def test_each_process_embeds_about_half_of_the_items(case, two_processes):
    ranks, single = two_processes
    pairs, corpus = pairs_and_corpus()
    total = single[case]["seen"]
    assert total == len({a for a, _ in pairs}) + len({p for _, p in pairs} | set(corpus))
    shares = [r[case]["seen"] for r in ranks]
    assert sum(shares) == total and all(abs(s - total / 2) <= 1 for s in shares), (shares, total)
    assert [r[case]["embedded"] for r in ranks] == shares


def test_shard_false_mines_everything_in_each_process(two_processes):
    ranks, single = two_processes
    assert [r["unsharded"]["seen"] for r in ranks] == [single["unsharded"]["seen"]] * 2


def test_the_cache_is_shared_and_a_second_call_embeds_nothing(two_processes):
    ranks, single = two_processes
    assert single["cache"]["seen"][1] == 0 and single["cache"]["seen"][0] > 0
    assert [r["cache"]["seen"][1] for r in ranks] == [0, 0]
    assert sum(r["cache"]["hits"] for r in ranks) == single["cache"]["hits"] == single["cache"]["seen"][0]


def test_only_the_main_process_shows_a_progress_bar(two_processes):
    ranks, single = two_processes
    assert all(ranks[0]["bars"]) and not any(ranks[1]["bars"]) and all(single["bars"])
