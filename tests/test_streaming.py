"""Streamed data at scale: each process reads its own share of the stream (``split_dataset_by_node`` for a
Hugging Face ``IterableDataset``, every W-th row for a generator), each row is trained on once per epoch
across processes, processes take the same number of steps, and the shuffle buffer is seeded."""

import json
from collections import Counter

import pytest
import stream_worker
from launch import launch_two_processes

from anycl.data.inputs import to_rows
from anycl.data.rows import Rows
from anycl.data.stream_rows import StreamRows, share_of
from anycl.errors import ConfigError, DataError
from anycl.sampling.in_batch import InBatchSampler


def ids(rows) -> list:
    return [r["label"] for r in rows]


# -- one process: the shares ------------------------------------------------------------------------------
@pytest.mark.parametrize("sizes", [[6, 6, 6, 6], [5, 1, 7, 3], [8, 8, 8], [10]])
def test_a_hugging_face_stream_is_split_into_disjoint_shares_that_cover_it(sizes):
    rows = to_rows(stream_worker.hf_stream(sizes))
    assert isinstance(rows, StreamRows) and rows.streaming
    n = sum(sizes)
    for world in (2, 3):
        shares = [ids(rows.share(0, r, world)) for r in range(world)]
        assert sorted(i for s in shares for i in s) == list(range(n))  # every row once, no row twice
        if len(sizes) % world == 0:  # whole shards: process r reads shards r, r + W, …
            for r in range(world):
                expected = [i for k in range(r, len(sizes), world) for i in range(sum(sizes[:k]), sum(sizes[: k + 1]))]
                assert sorted(shares[r]) == expected
        else:  # every W-th example
            for r in range(world):
                assert shares[r] == list(range(r, n, world))


def test_a_stream_the_user_split_by_node_is_not_split_again():
    from datasets.distributed import split_dataset_by_node

    ds = split_dataset_by_node(stream_worker.hf_stream([4, 4, 4]), rank=1, world_size=2)
    rows = to_rows(ds)
    assert ids(rows.share(0, 0, 2)) == ids(rows.share(0, 1, 2)) == list(range(1, 12, 2))


def test_a_seeded_hugging_face_shuffle_changes_with_the_epoch_alike_in_every_process():
    ds = stream_worker.hf_stream([5, 5, 5, 5]).shuffle(seed=1, buffer_size=4)
    rows = to_rows(ds)
    by_epoch = {e: [ids(rows.share(e, r, 2)) for r in range(2)] for e in (0, 1)}
    for e, shares in by_epoch.items():
        assert sorted(shares[0] + shares[1]) == list(range(20))  # each epoch's shares still cover the data once
        assert [ids(rows.share(e, r, 2)) for r in range(2)] == shares  # the same epoch: the same order
    assert by_epoch[0] != by_epoch[1]


def test_a_generator_is_split_round_robin_and_read_anew_each_epoch():
    rows = to_rows(stream_worker.generator_stream(10))
    assert rows.description == "generator function rows_of_the_stream()"
    for world in (1, 2, 3):
        for r in range(world):
            assert ids(rows.share(0, r, world)) == list(range(r, 10, world))
    assert ids(rows.share(1, 0, 1)) == list(range(10))  # a second epoch reads the generator again
    items = to_rows(iter([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]))  # an iterator of raw items: one column
    assert items.columns == ["anchor"] and [r["anchor"] for r in items.share(0, 1, 2)] == [[3.0, 4.0]]


def test_an_iterator_is_read_once_and_a_second_epoch_says_what_to_pass():
    rows = to_rows(iter(stream_worker.id_rows(5)))
    assert ids(rows.share(0)) == list(range(5))  # the row read to find the columns is not lost
    with pytest.raises(DataError, match="read once.*generator function"):
        list(rows.share(1))


def test_streamed_rows_made_elsewhere_are_split_round_robin():
    data = stream_worker.id_rows(7)
    rows = Rows(data, ["anchor", "positive", "label"], None, None, lambda: iter(data))
    assert [ids(share_of(rows, 0, r, 2)) for r in range(2)] == [[0, 2, 4, 6], [1, 3, 5]]


def test_drain_counts_the_rest_of_a_share():
    share = to_rows(stream_worker.generator_stream(9)).share(0, 0, 2)  # rows 0, 2, 4, 6, 8
    it = iter(share)
    next(it), next(it)
    assert share.drain() == 3 and share.read == 5


def test_bad_streams_are_named():
    def mixed():
        yield {"anchor": [1.0], "positive": [2.0]}
        yield [3.0]

    with pytest.raises(DataError, match="row 1 of the stream is a list, but row 0 is a dict"):
        list(to_rows(mixed))

    def missing():
        yield {"anchor": [1.0], "positive": [2.0]}
        yield {"anchor": [1.0]}

    with pytest.raises(DataError, match=r"row 1 of the stream lacks column\(s\) \['positive'\]"):
        list(to_rows(missing))

    def empty():
        yield from ()

    with pytest.raises(DataError, match="is empty"):
        to_rows(empty)
    with pytest.raises(DataError, match="columns= applies to rows with named columns"):
        to_rows(iter([[1.0], [2.0]]), columns={"anchor": "x"})
    with pytest.raises(DataError, match="no 'anchor' column"):
        to_rows(iter([{"a": 1, "b": 2}]))
    with pytest.raises(DataError, match="cannot use a set"):  # has a length: not taken for a stream
        to_rows({1, 2})
    with pytest.raises(ValueError, match="rank 2 is not a process of a world of 2"):
        to_rows(stream_worker.generator_stream(3)).share(0, 2, 2)


# -- one process: the seeded shuffle buffer -----------------------------------------------------------------
def streamed_order(seed: int, epoch: int, n: int = 40, buffer: int = 8, rank: int = 0, world: int = 1) -> list:
    sampler = InBatchSampler(seed=seed, shuffle_buffer=buffer, deduplicate=False)
    rows = to_rows(stream_worker.generator_stream(n))
    return [i for batch in sampler.stream(rows.share(epoch, rank, world), epoch, 4) for i in ids(batch)]


def test_the_shuffle_buffer_is_seeded_by_seed_and_epoch():
    first = streamed_order(seed=3, epoch=0)
    assert sorted(first) == list(range(40)) and first != list(range(40))  # shuffled, each row once
    assert streamed_order(seed=3, epoch=0) == first  # the same seed and epoch: the same order
    assert streamed_order(seed=3, epoch=1) != first  # another epoch: another order
    assert streamed_order(seed=4, epoch=0) != first  # another seed: another order
    # a buffer of b rows: a row leaves no earlier than b - 1 rows before it was read
    assert all(pos >= row - 7 for pos, row in enumerate(first))


def test_each_process_shuffles_its_share_in_its_own_seeded_order():
    shares = [streamed_order(seed=3, epoch=0, rank=r, world=2) for r in range(2)]
    assert shares == [streamed_order(seed=3, epoch=0, rank=r, world=2) for r in range(2)]  # reproducible
    assert sorted(shares[0]) == list(range(0, 40, 2)) and sorted(shares[1]) == list(range(1, 40, 2))
    # not the same permutation of both shares: rows 2j and 2j + 1 (neighbours in the stream, one in each
    # share) would otherwise always land in the same global batch
    assert [i // 2 for i in shares[0]] != [i // 2 for i in shares[1]]


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, None])
def test_a_shuffle_buffer_below_one_row_is_refused(bad):
    with pytest.raises(ConfigError, match="shuffle_buffer must be an int >= 1"):
        InBatchSampler(shuffle_buffer=bad)


@pytest.mark.parametrize("n, steps, untrained", [(19, 5, 0), (17, 4, 1)])
def test_one_process_trains_on_every_row_of_a_generator_each_epoch(n, steps, untrained):
    import anycl

    model = anycl.fit(
        stream_worker.generator_stream(n),
        modality="toyvec",
        batch_size=4,
        epochs=2,
        progress=False,
        log_with=None,
        sampler_options={"shuffle_buffer": 5},
    )
    # batches of 4 and a last one of n % 4 rows, which needs min_batch_size (2) rows to be trained on
    assert model.trainer.global_step == 2 * steps
    assert model.trainer.stream_epochs == [
        {"epoch": e, "steps": steps, "read": [n], "untrained": [untrained], "ran_out": []} for e in (0, 1)
    ]


def test_an_iterator_trains_one_epoch_and_a_second_epoch_says_what_to_pass():
    import anycl

    opts = dict(modality="toyvec", batch_size=4, progress=False, log_with=None)
    model = anycl.fit(iter(stream_worker.id_rows(12)), epochs=1, **opts)
    assert model.trainer.global_step == 3
    with pytest.raises(DataError, match="read once.*generator function"):
        anycl.fit(iter(stream_worker.id_rows(12)), epochs=2, **opts)


def test_a_stream_without_a_batch_is_an_error_not_an_endless_loop():
    import anycl

    with pytest.raises(DataError, match="epoch 0 of the streamed dataset gave no batch"):
        anycl.fit(stream_worker.generator_stream(1), modality="toyvec", max_steps=10, progress=False, log_with=None)


# -- two processes (gloo) -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def two_process_streams(tmp_path_factory):
    out = tmp_path_factory.mktemp("streams")
    proc = launch_two_processes("stream_worker.py", str(out))
    results = {}
    for name in stream_worker.STREAMS:
        results[name] = [json.loads((out / f"{name}-rank{r}.json").read_text()) for r in range(2)]
    results["log"] = proc.stdout + proc.stderr
    return results


def epoch_ids(result: dict, epoch: int) -> list:
    return [i for step in result["steps"] if step["epoch"] == epoch for i in step["ids"]]


def test_a_failure_in_one_process_stops_every_process_with_an_error_that_says_so(tmp_path):
    # process 1's share fails at its second batch: it raises its own error, and process 0, instead of waiting
    # for it in the next step's all-reduce (forever under NCCL), raises an error naming the failed process
    launch_two_processes("lockstep_worker.py", str(tmp_path), timeout=300)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert [r["steps"] for r in ranks] == [1, 1]
    assert ranks[1]["error"] == "DataError: row 7 of the stream is bad"
    assert ranks[0]["error"].startswith("DataError: process(es) [1] failed")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["hf_shards_divisible", "hf_shards_not_divisible", "generator"])
def test_two_processes_train_on_every_row_once_per_epoch(name, two_process_streams):
    ranks = two_process_streams[name]
    _, options, n = stream_worker.STREAMS[name]
    for epoch in range(options["epochs"]):
        mine = [epoch_ids(r, epoch) for r in ranks]
        assert not set(mine[0]) & set(mine[1])  # no row in both processes
        assert sorted(mine[0] + mine[1]) == list(range(n))  # every row, once
        assert len(mine[0]) == len(mine[1]) == n // 2
    # the same number of steps (and the same record of each epoch) in both processes
    assert len(ranks[0]["steps"]) == len(ranks[1]["steps"]) == options["epochs"] * n // 2 // stream_worker.BATCH
    assert ranks[0]["stream_epochs"] == ranks[1]["stream_epochs"]
    for rec in ranks[0]["stream_epochs"]:
        assert rec["untrained"] == [0, 0] and rec["ran_out"] == [] and rec["read"] == [n // 2, n // 2]
    if options["epochs"] > 1:  # a new, seeded order each epoch
        assert epoch_ids(ranks[0], 0) != epoch_ids(ranks[0], 1)


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, missing, untrained",
    [("generator_uneven", {16, 17, 18}, [2, 1]), ("hf_shards_uneven", {8, 9, 10, 11}, [4, 0])],
)
def test_uneven_shares_stop_every_process_at_the_same_step_and_count_the_untrained_rows(
    name, missing, untrained, two_process_streams
):
    ranks = two_process_streams[name]
    _, _, n = stream_worker.STREAMS[name]
    assert len(ranks[0]["steps"]) == len(ranks[1]["steps"]) == 2  # process 1 ran out after 2 steps
    trained = Counter(epoch_ids(ranks[0], 0) + epoch_ids(ranks[1], 0))
    assert max(trained.values()) == 1
    assert set(range(n)) - set(trained) == missing
    rec = ranks[0]["stream_epochs"][0]
    assert rec == ranks[1]["stream_epochs"][0]
    assert rec["ran_out"] == [1] and rec["untrained"] == untrained and sum(untrained) == len(missing)
    assert "ran out of rows after 2 steps" in two_process_streams["log"]
    assert two_process_streams["log"].count("ran out of rows") == 2  # once per uneven run: the main process
