"""The group_by_label sampler and several data sets in one run: batch composition checked row by row,
each data set's loss sees only its own batches, both resume from a checkpoint to the weights of an
uninterrupted run, and bad inputs give clear errors."""

from collections import Counter

import pytest
import torch
from toy_modality import toy_rows

import anycl
from anycl.data.inputs import to_rows
from anycl.errors import ConfigError
from anycl.sampling.by_label import GroupByLabelSampler
from anycl.sampling.factory import InBatchSampler
from anycl.sampling.multi_dataset import MultiDatasetSampler, MultiRows
from anycl.training.checkpoint import complete_checkpoints

pytestmark = pytest.mark.usefixtures("one_thread")


TOY = dict(modality="toyvec", batch_size=8, progress=False, log_with=None, seed=1)


def labelled(counts):
    """Rows with label k repeated counts[k] times (items distinct)."""
    out, n = [], 0
    for label, c in enumerate(counts):
        for _ in range(c):
            out.append({"anchor": f"q{n}", "positive": f"d{n}", "label": f"L{label}"})
            n += 1
    return out


# -- group_by_label -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("per_label", [2, 3, 4])
def test_group_by_label_batches_hold_two_or_more_of_each_label(per_label):
    counts = [1, 2, 3, 4, 5, 7, 9, 13, 1, 6]
    rows = to_rows(labelled(counts))
    s = GroupByLabelSampler(items_per_label=per_label, seed=5)
    s.set_key_functions({"anchor": str, "positive": str})
    plan = s.plan(rows, epoch=0, batch_size=8)
    for b in plan:
        per = Counter(rows[i]["label"] for i in b)
        assert min(per.values()) >= 2, (b, per)
        assert len(b) <= 8
    used = sorted(i for b in plan for i in b)
    paired = [i for i in range(len(rows)) if counts[int(rows[i]["label"][1:])] >= 2]
    assert used == paired  # every row of a label with >= 2 rows, once; single-row labels left out
    assert s.stats["unpaired"] == 2
    assert sum(len(b) for b in plan) / len(plan) > 6  # batches are (nearly) full
    assert s.plan(rows, 0, 8) == plan and s.plan(rows, 1, 8) != plan  # seeded per epoch


def test_group_by_label_keeps_an_item_out_of_a_batch_that_holds_it():
    data = labelled([4, 4, 4, 4])
    for r in data[:8]:
        r["positive"] = "shared"  # eight rows share one positive: never twice in a batch
    rows = to_rows(data)
    s = GroupByLabelSampler(seed=0)
    s.set_key_functions({"anchor": str, "positive": str})
    for b in s.plan(rows, 0, 8):
        items = [x for i in b for x in (rows[i]["anchor"], rows[i]["positive"])]
        assert len(items) == len(set(items))
        assert min(Counter(rows[i]["label"] for i in b).values()) >= 2


def test_group_by_label_bad_inputs_are_config_errors():
    s = GroupByLabelSampler()
    with pytest.raises(ConfigError, match="every label of the 6 rows is unique"):
        s.plan(to_rows(labelled([1] * 6)), 0, 4)
    with pytest.raises(ConfigError, match="needs a 'label' column"):
        s.plan(to_rows([{"anchor": "a", "positive": "b"}, {"anchor": "c", "positive": "d"}]), 0, 4)
    with pytest.raises(ConfigError, match="items_per_label must be an int >= 2"):
        GroupByLabelSampler(items_per_label=1)
    with pytest.raises(ConfigError, match="batch_size > items_per_label"):
        GroupByLabelSampler(items_per_label=4).plan(to_rows(labelled([4, 4])), 0, 4)
    with pytest.raises(ConfigError, match="every label of the 16 rows is unique"):
        anycl.fit(
            [{**r, "label": i} for i, r in enumerate(toy_rows(16))],
            loss="supcon",
            sampler="group_by_label",
            max_steps=1,
            **TOY,
        )


def test_fit_with_supcon_and_group_by_label_gives_every_label_a_positive():
    seen = []

    @anycl.losses.register("record_labels", override=True)
    class Record(anycl.losses.SupCon):
        def forward(self, anchor, positive, negative=None, labels=None, **kw):
            seen.append(labels.tolist())
            return super().forward(anchor, positive, negative, labels, **kw)

    rows = toy_rows(40)
    for i, r in enumerate(rows):
        r["label"] = i % 9  # 9 labels of 4-5 rows: shuffled batches of 8 would often hold a label once
    anycl.fit(rows, loss="record_labels", sampler="group_by_label", epochs=2, **TOY)
    assert seen and all(min(Counter(b).values()) >= 2 for b in seen)


def _assert_same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        torch.testing.assert_close(sb[k], sa[k], rtol=1e-5, atol=1e-6, msg=lambda m: f"{k}: {m}")


def test_group_by_label_resumes_to_the_uninterrupted_weights(tmp_path):
    rows = toy_rows(40)
    for i, r in enumerate(rows):
        r["label"] = i % 6
    opts = dict(loss="supcon", sampler="group_by_label", epochs=2, **TOY)
    full = anycl.fit(rows, output_dir=str(tmp_path / "a"), checkpoint_every=3, keep_checkpoints=None, **opts)
    steps = [s for s, _ in complete_checkpoints(tmp_path / "a" / "checkpoints")]
    assert full.trainer.global_step > 6 and 3 in steps
    resumed = anycl.fit(
        rows, output_dir=str(tmp_path / "a"), resume_from=str(tmp_path / "a" / "checkpoints" / "step-3"), **opts
    )
    assert resumed.trainer.global_step == full.trainer.global_step
    assert all(h["step"] > 3 for h in resumed.trainer.history)  # it continued from step 3/4, not from 0
    _assert_same_weights(full, resumed)


# -- several data sets --------------------------------------------------------------------------------------
def _parts():
    a = to_rows([{"anchor": f"a{i}", "positive": f"pa{i}"} for i in range(40)])  # 5 batches of 8
    b = to_rows([{"anchor": f"b{i}", "positive": f"pb{i}"} for i in range(16)])  # 2 batches of 8
    return MultiRows({"a": a, "b": b})


def _multi_sampler(rows, strategy):
    subs = {}
    for name in rows.names:
        subs[name] = InBatchSampler(seed=2)
        subs[name].set_key_functions({"anchor": str, "positive": str})
    return MultiDatasetSampler(subs, strategy, seed=2)


def test_multi_dataset_batches_never_mix_data_sets():
    rows = _parts()
    for strategy in ("proportional", "round_robin"):
        s = _multi_sampler(rows, strategy)
        plan = s.plan(rows, 0, 8)
        names = []
        for b in plan:
            got = s.rows_for(rows, b)
            sets = {r["_dataset"] for r in got}
            assert len(sets) == 1 and {r["anchor"][0] for r in got} == sets
            names.append(sets.pop())
        if strategy == "round_robin":  # one batch of each in turn, until the smallest runs out
            assert names == ["a", "b", "a", "b"]
        else:  # every batch of every data set, the order drawn per epoch
            assert Counter(names) == {"a": 5, "b": 2}
            assert sorted(i for b in plan for i in b) == list(range(56))
            assert s.plan(rows, 0, 8) == plan and s.plan(rows, 1, 8) != plan


def test_each_data_set_is_scored_by_its_own_loss():
    calls = {"a": [], "b": []}

    def recorder(name):
        def loss(anchor, positive, negative=None, labels=None, score=None):
            calls[name].append((set(labels.tolist()), None if score is None else score.tolist()))
            return (
                anycl.losses.get("cosent" if score is not None else "infonce")(anchor, positive, score=score)
                if score is not None
                else anycl.losses.get("infonce")(anchor, positive)
            )

        loss.score_columns = ("score",) if name == "b" else ()
        return loss

    anycl.losses.register("rec_a", override=True)(recorder("a"))
    anycl.losses.register("rec_b", override=True)(recorder("b"))
    a = [{**r, "label": 1} for r in toy_rows(24, seed=1)]
    b = [{**r, "label": 2, "score": i / 16} for i, r in enumerate(toy_rows(16, seed=2))]
    model = anycl.fit({"a": a, "b": b}, loss={"a": "rec_a", "b": "rec_b"}, epochs=1, **TOY)
    assert len(calls["a"]) == 3 and len(calls["b"]) == 2 and model.trainer.global_step == 5
    assert all(labels == {1} and score is None for labels, score in calls["a"])
    assert all(labels == {2} and len(score) == 8 for labels, score in calls["b"])
    assert sorted(x for _, s in calls["b"] for x in s) == [i / 16 for i in range(16)]


def test_one_loss_for_data_sets_with_different_columns_is_a_config_error():
    scored = [{**r, "score": 0.5} for r in toy_rows(16)]
    with pytest.raises(
        ConfigError,
        match=r"one loss \('infonce'\) for data sets with different columns: a: "
        r"\['anchor', 'positive'\]; b: \['anchor', 'positive', 'score'\]",
    ):
        anycl.fit({"a": toy_rows(16), "b": scored}, loss="infonce", max_steps=1, **TOY)
    with pytest.raises(ConfigError, match=r"names \['a'\], but the data sets are \['a', 'b'\]"):
        anycl.fit({"a": toy_rows(16), "b": scored}, loss={"a": "infonce"}, max_steps=1, **TOY)
    with pytest.raises(ConfigError, match=r"loss 'cosent' needs the column\(s\) \['score'\].*of data set 'b'"):
        anycl.fit({"a": toy_rows(16), "b": toy_rows(16)}, loss={"a": "infonce", "b": "cosent"}, max_steps=1, **TOY)
    with pytest.raises(ConfigError, match="multi_dataset_sampling must be one of"):
        anycl.fit({"a": toy_rows(16), "b": toy_rows(16)}, multi_dataset_sampling="zip", max_steps=1, **TOY)
    # a dict of columns is still not a data set
    with pytest.raises(anycl.errors.DataError, match="a dict is not a dataset"):
        anycl.fit({"anchor": [[0.0] * 6], "positive": [[1.0] * 6]}, max_steps=1, **TOY)


@pytest.mark.parametrize("strategy", ["proportional", "round_robin"])
def test_multi_dataset_resumes_to_the_uninterrupted_weights(tmp_path, strategy):
    scored = [{**r, "score": (i % 4) / 3} for i, r in enumerate(toy_rows(24, seed=4))]
    opts = dict(loss={"pairs": "infonce", "graded": "cosent"}, multi_dataset_sampling=strategy, epochs=2, **TOY)
    data = {"pairs": toy_rows(32), "graded": scored}
    full = anycl.fit(data, output_dir=str(tmp_path / "a"), checkpoint_every=2, keep_checkpoints=None, **opts)
    assert full.trainer.global_step == (14 if strategy == "proportional" else 12)
    resumed = anycl.fit(
        data, output_dir=str(tmp_path / "a"), resume_from=str(tmp_path / "a" / "checkpoints" / "step-4"), **opts
    )
    assert resumed.trainer.global_step == full.trainer.global_step
    assert all(h["step"] > 3 for h in resumed.trainer.history)  # it continued from step 3/4, not from 0
    _assert_same_weights(full, resumed)


def test_columns_and_loss_options_per_data_set():
    renamed = [{"q": r["anchor"], "d": r["positive"]} for r in toy_rows(16, seed=3)]
    model = anycl.fit(
        {"a": toy_rows(16), "b": renamed},
        columns={"a": {}, "b": {"anchor": "q", "positive": "d"}},
        loss_options={"a": {"temperature": 0.1}, "b": {"temperature": 0.9}},
        max_steps=2,
        **TOY,
    )
    losses = model.trainer.loss.losses
    assert losses["a"].tau.value == pytest.approx(0.1) and losses["b"].tau.value == pytest.approx(0.9)
