"""Defaults that follow the data: a self-supervised run's step budget, the short-run warning, full batches for
self-supervised data, and the one line stating a run's resolved recipe (anycl.fitting.recipe,
anycl.training.epochs, the in_batch sampler's drop_last)."""

import logging
import math

import numpy as np
import pytest
import soundfile as sf
import torch

import anycl
import anycl.fitting.recipe as recipe
from anycl.adapters.audio import AudioAdapter
from anycl.adapters.image import ImageAdapter
from anycl.data.inputs import to_rows
from anycl.errors import ConfigError
from anycl.sampling import InBatchSampler
from anycl.training.args import TrainingArgs
from anycl.training.epochs import (
    DEFAULT_STEP_BUDGET,
    MAX_BUDGET_EPOCHS,
    SHORT_RUN_STEPS,
    budget_epochs,
    budget_eval_epochs,
    recipe_line,
    run_length,
)
from tests.toy_modality import toy_rows

TOY = dict(modality="toyvec", batch_size=8, progress=False, log_with=None, seed=3)


def _items(n):
    """``n`` one-column (self-supervised) toy rows: each item's positive is another view of it."""
    return [r["anchor"] for r in toy_rows(n)]


@pytest.fixture
def seen_sizes():
    """The batch sizes the loss sees, through a registered InfoNCE that records them."""
    sizes = []

    @anycl.losses.register("record_sizes", override=True)
    class Record(anycl.losses.InfoNCE):
        def forward(self, anchor, positive, negative=None, labels=None, **kw):
            sizes.append((anchor.shape[0], positive.shape[0]))
            return super().forward(anchor, positive, negative=negative, labels=labels, **kw)

    return sizes


# -- the rule ---------------------------------------------------------------------------------------------
def test_budget_epochs_are_the_fewest_that_reach_the_budget_capped():
    for steps_per_epoch in range(1, 60):
        for budget in (1, 7, 100, DEFAULT_STEP_BUDGET):
            fewest = next(e for e in range(1, 10**6) if e * steps_per_epoch >= budget)  # brute force
            assert budget_epochs(steps_per_epoch, budget) == min(fewest, MAX_BUDGET_EPOCHS)
    # the documented cases: 165 clips in batches of 64 (2 full batches), 10,000 images in batches of 256
    assert budget_epochs(2, DEFAULT_STEP_BUDGET) == MAX_BUDGET_EPOCHS == 100
    assert budget_epochs(39, DEFAULT_STEP_BUDGET) == 26


def _length(n, batch_size, caplog, sampler=None, **args):
    rows = to_rows(_items(n))
    with caplog.at_level(logging.WARNING, logger="anycl"):
        caplog.clear()
        return run_length(rows, sampler or InBatchSampler(seed=0), TrainingArgs(batch_size=batch_size, **args), 1)


def test_run_length_with_a_budget_and_explicit_lengths(caplog):
    assert _length(40, 8, caplog, step_budget=1000) == (500, 100)  # 5 batches an epoch: capped at 100 epochs
    assert _length(40, 8, caplog, step_budget=12) == (15, 3)  # 3 epochs of 5 reach 12
    assert _length(40, 8, caplog, step_budget=12, epochs=2) == (15, 3)  # fit sets no budget when epochs is given
    assert _length(40, 8, caplog, step_budget=1000, max_steps=7) == (7, 2)  # max_steps wins
    assert _length(40, 8, caplog, epochs=2) == (10, 2)


def test_short_run_warning_fires_below_the_threshold_and_names_the_fix(caplog):
    assert SHORT_RUN_STEPS == 100
    assert _length(20, 10, caplog, epochs=49) == (98, 49)  # 2 batches an epoch
    [record] = [r for r in caplog.records if "optimiser steps" in r.getMessage()]
    assert record.levelno == logging.WARNING
    msg = record.getMessage()
    assert "takes 98 optimiser steps (49 epochs of 2)" in msg and "epochs=50 or max_steps=100" in msg
    assert _length(4, 4, caplog, epochs=99) == (99, 99)
    assert "takes 99 optimiser steps" in caplog.text and "epochs=100" in caplog.text
    for epochs in (100, 101):  # at the threshold and above: quiet
        assert _length(4, 4, caplog, epochs=epochs) == (epochs, epochs)
        assert "optimiser step" not in caplog.text
    assert _length(20, 10, caplog, max_steps=3) == (3, 2)  # the user chose the steps: no warning
    assert "optimiser step" not in caplog.text
    assert _length(4, 4, caplog) == (1, 1)
    assert "takes 1 optimiser step (1 epoch of 1)" in caplog.text


# -- full batches ---------------------------------------------------------------------------------------
def test_drop_last_keeps_only_full_batches_when_there_is_one():
    rows = to_rows(_items(21))
    ragged = InBatchSampler(seed=1).plan(rows, 0, 8)
    assert sorted(map(len, ragged)) == [5, 8, 8]
    full = InBatchSampler(seed=1, drop_last=True)
    for epoch in range(4):
        plan = full.plan(rows, epoch, 8)
        assert [len(b) for b in plan] == [8, 8] and len({i for b in plan for i in b}) == 16
    assert full.stats["dropped"] == 5
    assert [len(b) for b in InBatchSampler(drop_last=True).plan(to_rows(_items(5)), 0, 8)] == [5]  # one, not full
    streamed = [len(b) for b in InBatchSampler(seed=1, drop_last=True).stream(to_rows(iter(_items(21))), 0, 8)]
    assert streamed == [8, 8]
    assert [len(b) for b in InBatchSampler(drop_last=True).stream(to_rows(iter(_items(5))), 0, 8)] == [5]
    with pytest.raises(ConfigError, match="drop_last must be True or False"):
        InBatchSampler(drop_last="yes")


# -- through fit ------------------------------------------------------------------------------------------
def test_self_supervised_default_budget_full_batches_and_the_recipe_line(monkeypatch, caplog, seen_sizes):
    monkeypatch.setattr(recipe, "DEFAULT_STEP_BUDGET", 12)
    steps = []
    with caplog.at_level(logging.INFO, logger="anycl"):
        model = anycl.fit(_items(21), loss="record_sizes", callbacks=[lambda t, s, logs: steps.append(s)], **TOY)
    # 21 items in batches of 8: 2 full batches an epoch (the 5 left over wait for the next epoch's shuffle)
    assert steps == list(range(1, 13)) and model.info["steps"] == 12
    assert seen_sizes == [(8, 8)] * 12
    assert model.info["config"]["epochs"] == math.ceil(12 / 2)  # the epochs the budget chose are recorded
    assert model.info["config"]["sampler_options"]["drop_last"] is True
    [line] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("training: ")]
    assert line.startswith("training: encoder ToyEncoder (240 parameters), views 2 per item (self-supervised), ")
    assert (
        "batch size 8, learning rate 0.01 (cosine), 6 epochs, 12 optimiser steps (default for self-supervised data: "
        in line
    )
    assert "epochs for 12 steps" in line


def test_explicit_epochs_or_max_steps_win_and_pairs_keep_one_epoch(monkeypatch, seen_sizes):
    monkeypatch.setattr(recipe, "DEFAULT_STEP_BUDGET", 12)
    assert anycl.fit(_items(21), epochs=2, loss="record_sizes", **TOY).info["steps"] == 4
    assert anycl.fit(_items(21), max_steps=3, loss="record_sizes", **TOY).info["steps"] == 3
    assert seen_sizes == [(8, 8)] * 7  # full batches whatever decides the length
    seen_sizes.clear()
    pairs = anycl.fit(toy_rows(20), loss="record_sizes", **TOY)  # pairs: one epoch, its batches as before
    assert pairs.info["steps"] == 3 and pairs.info["config"]["epochs"] == 1
    assert sorted(seen_sizes) == [(4, 4), (8, 8), (8, 8)]
    seen_sizes.clear()
    anycl.fit(_items(21), loss="record_sizes", sampler_options={"drop_last": False}, epochs=1, **TOY)
    assert sorted(seen_sizes) == [(5, 5), (8, 8), (8, 8)]  # the user's drop_last wins


def test_the_recipe_line_of_a_pair_run_and_of_a_stream(caplog):
    with caplog.at_level(logging.INFO, logger="anycl"):
        anycl.fit(toy_rows(16), mixed_precision="no", lr=0.02, **TOY)  # a given lr is said as given
    [line] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("training: ")]
    assert line == (
        "training: encoder ToyEncoder (240 parameters), views the given pairs, precision fp32, batch size 8, "
        "learning rate 0.02 (cosine), 1 epoch, 2 optimiser steps"
    )
    assert "takes 2 optimiser steps (1 epoch of 2)" in caplog.text  # and the short-run warning
    args = TrainingArgs(batch_size=4, step_budget=1000, mixed_precision="bf16")
    assert recipe_line({"encoder": "X"}, args, None, 1) == (
        "encoder X, precision bf16 autocast with fp32 weights, batch size 4, learning rate 2e-05 (cosine), 1 pass over "
        "the stream"
    )
    assert recipe_line(None, TrainingArgs(max_steps=5, mixed_precision="no", lr=0.5, lr_schedule="constant"), 5, 1) == (
        "precision fp32, batch size 32, learning rate 0.5 (constant), 5 optimiser steps (max_steps)"
    )


# -- what each modality says of its views ------------------------------------------------------------------
def test_audio_and_image_adapters_describe_their_views():
    assert AudioAdapter(clip_seconds=0.5).recipe() == {
        "window": "0.5 s at 16000 Hz",
        "augment": "random window, gain ±6 dB, shift 0.1, masks",
    }
    strong = AudioAdapter(augment="strong").recipe()["augment"]
    assert strong == "random window, gain ±6 dB, noise p=0.5, shift 0.1, mixup 0.4, resize-crop, masks"
    assert AudioAdapter(augment=False).recipe()["augment"] == "none"
    assert ImageAdapter(preset="small").recipe() == {
        "crop": "32 px (preset 'small')",
        "augment": "crop scale 0.2-1, flip p=0.5, colour jitter p=0.8, greyscale p=0.2",
    }
    assert "blur p=0.5" in ImageAdapter().recipe()["augment"]


def test_an_audio_folder_gets_the_budget_full_batches_and_its_window_in_the_line(tmp_path, monkeypatch, caplog):
    rng = np.random.default_rng(0)
    for i in range(11):
        sf.write(tmp_path / f"clip_{i}.wav", (0.1 * rng.standard_normal(8000)).astype("float32"), 16000)
    monkeypatch.setattr(recipe, "DEFAULT_STEP_BUDGET", 4)
    sizes = []
    with caplog.at_level(logging.INFO, logger="anycl"):
        model = anycl.fit(
            str(tmp_path),
            modality="audio",
            batch_size=4,
            progress=False,
            log_with=None,
            adapter_options={"clip_seconds": 0.5},
            encoder_options={"channels": [4, 8], "embedding_dim": 16},
            callbacks=[lambda t, s, logs: sizes.append(s)],
        )
    assert model.info["steps"] == 4 and model.info["config"]["epochs"] == 2  # 2 full batches of 4 an epoch
    [line] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("training: ")]
    assert "window 0.5 s at 16000 Hz, views 2 per item (self-supervised), augment random window" in line
    assert "batch size 4, learning rate 0.001 (cosine), 2 epochs, 4 optimiser steps" in line
    assert torch.isfinite(model.encode([str(tmp_path / "clip_0.wav")])).all()


def test_a_budget_run_evaluates_about_ten_times_and_after_the_last_epoch(monkeypatch):
    assert [budget_eval_epochs(e) for e in (1, 6, 10, 11, 25, 100)] == [1, 1, 1, 2, 3, 10]
    monkeypatch.setattr(recipe, "DEFAULT_STEP_BUDGET", 50)  # 2 full batches an epoch: 25 epochs
    model = anycl.fit(_items(21), eval_dataset=lambda m: {"a": 1.0}, **TOY)
    assert model.info["steps"] == 50 and model.info["config"]["epochs"] == 25
    # the baseline, then after every 3rd epoch (6 steps) and after the last
    assert [h["step"] for h in model.trainer.eval_history] == [0, 6, 12, 18, 24, 30, 36, 42, 48, 50]
    given = anycl.fit(_items(21), eval_dataset=lambda m: {"a": 1.0}, epochs=4, **TOY)
    assert [h["step"] for h in given.trainer.eval_history] == [0, 2, 4, 6, 8]  # epochs given: after each, as before


def test_one_column_text_keeps_one_epoch(monkeypatch, tiny_text_encoder):
    """Text's default encoder is pretrained (Adapter.pretrained_default): SimCSE-style data gets no step budget."""
    import copy

    monkeypatch.setattr(recipe, "DEFAULT_STEP_BUDGET", 50)
    sentences = [f"sentence number {i} about topic {i % 5}" for i in range(12)]
    model = anycl.fit(
        sentences,
        modality="text",
        encoder=copy.deepcopy(tiny_text_encoder),
        batch_size=4,
        progress=False,
        log_with=None,
    )
    assert model.info["steps"] == 3 and model.info["config"]["epochs"] == 1


def test_a_short_fine_tune_of_a_pretrained_model_is_said_at_info(caplog, tiny_text_encoder, text_pairs):
    """The short-run line is a warning for an encoder trained from scratch, INFO when fine-tuning a pretrained one."""
    import copy

    with caplog.at_level(logging.INFO, logger="anycl"):
        anycl.fit(
            text_pairs,
            modality="text",
            encoder=copy.deepcopy(tiny_text_encoder),
            batch_size=8,
            progress=False,
            log_with=None,
        )
    [record] = [r for r in caplog.records if r.getMessage().startswith("this run takes 3 optimiser steps")]
    assert record.levelno == logging.INFO
