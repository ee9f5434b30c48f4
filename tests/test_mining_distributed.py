"""Mining split over two CPU processes (gloo, ``accelerate launch``): the same negatives as one process,
each process embedding about half of the queries and corpus; one progress bar."""

import json
import os
import subprocess
import sys

import mining_dist_worker
import pytest
from mining_toys import MINING_CASES, pairs_and_corpus
from test_distributed import free_port

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    out = tmp_path_factory.mktemp("mining-dist")
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([os.path.dirname(HERE), os.environ.get("PYTHONPATH", "")]),
        OMP_NUM_THREADS="1",
        HF_HUB_OFFLINE="1",
        ACCELERATE_LOG_LEVEL="error",
    )
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"]
    cmd += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    cmd += ["--main_process_port", str(free_port()), os.path.join(HERE, "mining_dist_worker.py"), str(out)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
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
