"""The text modality's sampler default (length-grouped batches, issue 14): applied to the default in-batch
sampler on single-modality text runs, never over the user's own setting, never to other samplers or
cross-modal runs."""

import copy

import anycl
from anycl import adapters
from anycl.fitting.setup import default_sampler_options
from anycl.options.fit_config import FitConfig

TEXT = adapters.ADAPTERS.lookup("text").fit_defaults
IMAGE = adapters.ADAPTERS.lookup("image").fit_defaults
ALL_TEXT = {"anchor": "text", "positive": "text"}


def test_text_default_groups_by_length():
    assert default_sampler_options(FitConfig(), TEXT, ALL_TEXT) == {"group_by_length": 8}
    assert default_sampler_options(FitConfig(sampler="in_batch"), TEXT, ALL_TEXT) == {"group_by_length": 8}


def test_user_setting_wins_key_by_key():
    off = FitConfig(sampler_options={"group_by_length": None, "deduplicate": False})
    assert default_sampler_options(off, TEXT, ALL_TEXT) == {"group_by_length": None, "deduplicate": False}
    other = FitConfig(sampler_options={"deduplicate": False})
    assert default_sampler_options(other, TEXT, ALL_TEXT) == {"deduplicate": False, "group_by_length": 8}


def test_not_applied_elsewhere():
    assert default_sampler_options(FitConfig(sampler="mined"), TEXT, ALL_TEXT) == {}
    assert default_sampler_options(FitConfig(), TEXT, {"anchor": "text", "positive": "image"}) == {}
    assert default_sampler_options(FitConfig(), IMAGE, {"anchor": "image", "positive": "image"}) == {}
    ordered = FitConfig(sampler_options={"shuffle": False})  # the user's order is kept, not sorted by length
    assert default_sampler_options(ordered, TEXT, ALL_TEXT) == {"shuffle": False}


def test_fit_uses_and_records_the_default(tiny_text_encoder):
    # texts of very different lengths: with grouping, each batch holds rows of similar token counts
    pairs = [{"anchor": "word " * (1 + (i * 7) % 20), "positive": f"document {i}"} for i in range(32)]
    kw = dict(modality="text", batch_size=4, epochs=1, progress=False, log_with=None, seed=0)
    kw["adapter_options"] = {"max_seq_length": 32}
    grouped = anycl.fit(pairs, encoder=copy.deepcopy(tiny_text_encoder), **kw)
    plain = anycl.fit(pairs, encoder=copy.deepcopy(tiny_text_encoder), sampler_options={"group_by_length": None}, **kw)
    assert grouped.trainer.sampler.group_by_length == 8 and plain.trainer.sampler.group_by_length is None

    def spread(model):  # mean within-batch range of anchor word counts over the epoch's plan
        rows = model.trainer.rows
        plan = model.trainer.sampler.plan(rows, 0, 4)
        counts = [len(r.split()) for r in rows.column("anchor")]
        return sum(max(counts[i] for i in b) - min(counts[i] for i in b) for b in plan) / len(plan)

    assert spread(grouped) < spread(plain) / 2
