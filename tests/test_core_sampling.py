"""Batches never hold the same item twice, and every row is used once per epoch."""

import datasets

from anycl.data.inputs import to_rows
from anycl.sampling.factory import InBatchSampler, group_distinct


def _rows():
    # 40 rows over 10 distinct positives: heavy duplication
    return to_rows([{"anchor": f"q{i}", "positive": f"doc{i % 10}"} for i in range(40)])


def _check(batches, rows_of):
    used = []
    for b in batches:
        items = [x for r in rows_of(b) for x in (r["anchor"], r["positive"])]
        assert len(items) == len(set(items)), f"duplicate item in batch {b}"
        used += b
    return used


def test_plan_deduplicates_and_covers_every_row():
    rows = _rows()
    s = InBatchSampler(seed=3, min_batch_size=1)
    s.set_key_functions({"anchor": str, "positive": str})
    plan = s.plan(rows, epoch=0, batch_size=8)
    used = _check(plan, lambda b: [rows[i] for i in b])
    assert sorted(used) == list(range(40))
    assert max(len(b) for b in plan) == 8 and s.stats["deferred"] > 0
    assert s.plan(rows, 0, 8) == plan and s.plan(rows, 1, 8) != plan  # seeded per epoch


def test_stream_deduplicates():
    ds = datasets.Dataset.from_list([{"anchor": f"q{i}", "positive": f"doc{i % 10}"} for i in range(40)])
    rows = to_rows(ds.to_iterable_dataset())
    s = InBatchSampler(seed=0, min_batch_size=1, shuffle_buffer=16)
    s.set_key_functions({"anchor": str, "positive": str})
    batches = list(s.stream(rows, 0, 8))
    seen = []
    for b in batches:
        items = [x for r in b for x in (r["anchor"], r["positive"])]
        assert len(items) == len(set(items))
        seen += [r["anchor"] for r in b]
    assert sorted(seen) == sorted(f"q{i}" for i in range(40))


def test_group_distinct_handles_all_identical():
    batches = list(group_distinct(iter(range(5)), lambda i: ("same",), 4))
    assert batches == [[0], [1], [2], [3], [4]]


def test_repeated_captions_that_shrink_batches_are_warned_about_once(caplog):
    """120 rows over 10 distinct captions: batches of about 10 rows instead of 64, said once, naming the column."""
    rows = to_rows([{"anchor": f"image{i}.png", "positive": f"a photo of class {i % 10}"} for i in range(120)])
    s = InBatchSampler(seed=0)
    s.set_key_functions({"anchor": str, "positive": str})
    with caplog.at_level("WARNING", logger="anycl"):
        plan = s.plan(rows, 0, 64)
        s.plan(rows, 1, 64)
    sizes = [len(b) for b in plan]
    assert max(sizes) == 10  # one row per distinct caption
    said = [r.getMessage() for r in caplog.records if "batches hold" in r.getMessage()]
    assert len(said) == 1
    assert f"batches hold {sum(sizes) / len(sizes):.0f} rows on average instead of batch_size=64" in said[0]
    assert "column 'positive' has only 10 distinct items in 120 rows" in said[0] and "deduplicate" in said[0]
    # distinct items, or batches that are small only because the data is: nothing is said
    caplog.clear()
    with caplog.at_level("WARNING", logger="anycl"):
        InBatchSampler(seed=0).plan(to_rows([{"anchor": f"a{i}", "positive": f"b{i}"} for i in range(120)]), 0, 64)
        small = InBatchSampler(seed=0)
        small.set_key_functions({"anchor": str, "positive": str})
        small.plan(to_rows([{"anchor": f"a{i}", "positive": f"b{i % 9}"} for i in range(12)]), 0, 64)
    assert not [r for r in caplog.records if "batches hold" in r.getMessage()]
