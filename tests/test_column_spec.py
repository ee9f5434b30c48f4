"""ColumnSpec: one object per column (validate, key, lengths, collate) built from a model's adapters, handed to
the sampler and the batch builder. Each callable must agree with the adapter's own method on the same input."""

import dataclasses

import datasets
import numpy as np
import pytest
import torch
from torch import nn

from anycl.adapters import AudioAdapter, ImageAdapter, TextAdapter
from anycl.data.batching import BatchBuilder, BatchStream
from anycl.data.column_spec import ColumnSpec, column_specs, side_of, specs_from_adapters
from anycl.data.inputs import to_rows
from anycl.errors import ConfigError, DataError
from anycl.model.contrastive import ContrastiveModel, Tower
from anycl.sampling.by_label import GroupByLabelSampler
from anycl.sampling.factory import InBatchSampler

pytestmark = pytest.mark.usefixtures("one_thread")

SR = 16000
COLUMNS = ["anchor", "positive", "negative", "negative_1", "score", "label"]


@pytest.fixture(scope="module")
def model(tiny_text_encoder):
    """Text anchors, image positives, audio negatives: the three adapters in one model."""
    towers = {
        "text": Tower(TextAdapter(), tiny_text_encoder),
        "image": Tower(ImageAdapter(preset="small"), nn.Identity()),
        "audio": Tower(AudioAdapter(augment=False, sample_rate=SR, clip_seconds=0.25), nn.Identity()),
    }
    return ContrastiveModel(towers, {"anchor": "text", "positive": "image", "negative": "audio"})


def image(seed):
    return np.random.default_rng(seed).integers(0, 256, (20 + seed, 24, 3), dtype=np.uint8)


def clip(seed, seconds=0.3):
    wave = (0.3 * np.random.default_rng(seed).standard_normal(int(seconds * SR))).astype(np.float32)
    return {"array": wave, "sampling_rate": SR}


def test_one_spec_per_item_or_score_column_with_its_side_and_modality(model):
    specs = column_specs(model, COLUMNS)
    assert list(specs) == ["anchor", "positive", "negative", "negative_1", "score"]  # no spec for the label
    got = {c: (s.side, s.modality) for c, s in specs.items()}
    assert got == {
        "anchor": ("anchor", "text"),
        "positive": ("positive", "image"),
        "negative": ("negative", "audio"),
        "negative_1": ("negative", "audio"),
        "score": ("score", "score"),
    }
    assert specs["anchor"].adapter is model.tower("anchor").adapter and specs["score"].adapter is None
    assert [side_of(c) for c in ("negative_12", "label", "_teacher", "positive_score")] == [
        "negative",
        None,
        None,
        "score",
    ]
    with pytest.raises(dataclasses.FrozenInstanceError):
        specs["anchor"].column = "positive"  # type: ignore[misc]


def test_text_callables_agree_with_the_text_adapter(model):
    ad = model.tower("anchor").adapter
    texts = ["a short one", "a rather longer sentence about cats and dogs", "mid length text"]
    spec = column_specs(model, ["anchor"])["anchor"]
    assert [spec.key(t) for t in texts] == [ad.key(t) for t in texts]
    assert spec.lengths(texts) == ad.lengths(texts)
    assert spec.lengths(texts)[1] > len(texts[1].split())  # tokens, not words: the adapter's own count
    got, want = spec.collate(texts), ad.collate(texts)
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want)
    spec.validate(texts)  # good items pass
    # with a prompt: the adapter's collate with that prompt (negatives take the negative side's prompt)
    prompted = column_specs(model, ["anchor"], prompts={"anchor": "query: "})["anchor"]
    assert prompted.prompt == "query: "
    got, want = prompted.collate(texts), ad.collate(texts, prompt="query: ")
    assert all(torch.equal(got[k], want[k]) for k in want)
    assert not torch.equal(got["input_ids"], ad.collate(texts)["input_ids"])


def test_image_callables_agree_with_the_image_adapter(model):
    ad = model.tower("positive").adapter
    items = [image(0), image(1), image(2)]
    spec = column_specs(model, ["positive"])["positive"]
    assert [spec.key(x) for x in items] == [ad.key(x) for x in items]
    assert spec.key(items[0]) != spec.key(items[1])
    assert spec.lengths(items) == ad.lengths(items) == [0, 0, 0]
    views = [ad.eval_view(ad.load(x)) for x in items]
    assert torch.equal(spec.collate(views), ad.collate(views))
    spec.validate(items)


def test_audio_callables_agree_with_the_audio_adapter(model):
    ad = model.tower("negative").adapter
    items = [clip(0), clip(1, 0.2), clip(2)]
    specs = column_specs(model, ["negative", "negative_3"])
    for spec in specs.values():
        assert [spec.key(x) for x in items] == [ad.key(x) for x in items]
        assert spec.lengths(items) == ad.lengths(items)
        views = [ad.eval_view(ad.load(x)) for x in items]
        assert torch.equal(spec.collate(views), ad.collate(views))
        spec.validate(items)


def test_a_bad_item_is_a_data_error_naming_the_row_and_column(model):
    specs = column_specs(model, COLUMNS)
    with pytest.raises(DataError, match=r"row 1, column 'anchor' is an empty string"):
        specs["anchor"].validate(["fine", "   "])
    with pytest.raises(DataError, match=r"row 12, column 'anchor' is missing"):
        specs["anchor"].validate(["fine", "also fine", None], first_row=10)
    with pytest.raises(DataError, match=r"column 'anchor' mixes item types: row 0 is str but row 1 is int"):
        specs["anchor"].validate(["fine", 7])
    with pytest.raises(DataError, match=r"row 0, column 'positive' is a int; modality 'image'"):
        specs["positive"].validate([5])
    with pytest.raises(DataError, match=r"row 1, column 'negative_1'.*no 'sampling_rate'"):
        specs["negative_1"].validate([clip(0), {"array": np.zeros(100, np.float32)}])
    with pytest.raises(DataError, match=r"row 1, column 'score'.*must be a number"):
        specs["score"].validate([0.5, "0.5"])
    specs["score"].validate([1, 0.5, np.float32(0.25)])  # ints and floats mix in a score column


def test_the_batch_builder_takes_the_specs(tiny_text_encoder):
    text = TextAdapter()
    text.attach(tiny_text_encoder)
    adapters = {"anchor": text, "positive": text, "negative": text}
    prompts = {"anchor": "query: ", "positive": "doc: "}
    rows = [
        {"anchor": f"question {i}", "positive": f"answer number {i}", "negative": f"wrong {i}", "score": i / 4}
        for i in range(4)
    ]
    cols = ["anchor", "positive", "negative", "score"]

    specs = specs_from_adapters(adapters, cols, prompts)  # what column_specs makes from a model's towers
    from_specs = BatchBuilder(specs).build(rows, torch.Generator().manual_seed(0), train=False)
    assert from_specs["num_negatives"] == 1
    # the reference: the adapter's own collate with each side's prompt (negatives: the positive's)
    for side, col, prompt in [
        ("anchor", "anchor", "query: "),
        ("positive", "positive", "doc: "),
        ("negative", "negative", "doc: "),
    ]:
        want = text.collate([r[col] for r in rows], prompt=prompt)
        assert all(torch.equal(from_specs[side][k], want[k]) for k in want)
    assert torch.equal(from_specs["scores"]["score"], torch.tensor([0.0, 0.25, 0.5, 0.75]))
    # the same batch as a builder made from the adapters
    from_adapters = BatchBuilder(adapters, ["negative"], prompts=prompts, score_columns=["score"])
    assert set(from_adapters.specs) == set(specs)
    other = from_adapters.build(rows, torch.Generator().manual_seed(0), train=False)
    for side in ("anchor", "positive", "negative"):
        assert all(torch.equal(other[side][k], from_specs[side][k]) for k in from_specs[side])
    assert BatchBuilder(specs).adapters == {"anchor": text, "positive": text, "negative": text}
    assert BatchBuilder(specs).prompts == {"anchor": "query: ", "positive": "doc: ", "negative": "doc: "}
    with pytest.raises(ConfigError, match=r"columns \['negative_2'\] but was given no spec"):
        BatchBuilder(specs, ["negative_2"])
    with pytest.raises(ConfigError, match="takes their prompts"):
        BatchBuilder(specs, prompts=prompts)


def test_samplers_take_keys_and_lengths_from_the_specs(model):
    ad = model.tower("anchor").adapter
    rows = to_rows([{"anchor": "a b c d e f g h i j k l " * (i % 5 + 1), "positive": image(i % 3)} for i in range(12)])
    specs = column_specs(model, ["anchor", "positive"])
    s = InBatchSampler(seed=3, group_by_length=1)
    s.set_columns(specs)
    # lengths: the text adapter's token counts (the image column counts 0), the longest item of each row
    assert s._row_lengths(rows) == ad.lengths(rows.column("anchor"))
    # keys: rows repeating an image never share a batch
    for batch in s.plan(rows, 0, 4):
        keys = [specs["positive"].key(rows[i]["positive"]) for i in batch]
        assert len(keys) == len(set(keys))
    # a sampler with only the older hook gets the specs' keys through it
    labelled = to_rows([{"anchor": f"t{i % 4}", "positive": f"p{i}", "label": i % 2} for i in range(16)])
    g = GroupByLabelSampler(items_per_label=2, seed=0)
    g.set_columns(column_specs(model, ["anchor", "positive"]))
    assert set(g.key_fns) == {"anchor", "positive"}
    for batch in g.plan(labelled, 0, 6):
        anchors = [labelled[i]["anchor"] for i in batch]
        assert len(anchors) == len(set(anchors))


def test_streamed_rows_are_checked_with_the_builders_specs(tiny_text_encoder):
    text = TextAdapter()
    text.attach(tiny_text_encoder)
    specs = specs_from_adapters({"anchor": text, "positive": text}, ["anchor", "positive"])
    assert all(isinstance(s, ColumnSpec) for s in specs.values())
    good = [{"anchor": f"q{i}", "positive": f"d{i}"} for i in range(6)]

    def stream(rows):
        return to_rows(datasets.Dataset.from_list(rows).to_iterable_dataset())

    def batches(rows):
        return list(BatchStream(stream(rows), InBatchSampler(shuffle=False), BatchBuilder(specs), 3, 0, 0))

    assert [b["size"] for b in batches(good)] == [3, 3]
    bad = good[:4] + [{"anchor": "q4", "positive": "  "}] + good[5:]
    with pytest.raises(DataError, match=r"row 4, column 'positive' is an empty string"):
        batches(bad)
