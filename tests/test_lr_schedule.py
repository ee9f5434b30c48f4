"""The learning-rate schedules after warm-up, against their formulas, and the option's checks."""

import copy
import math

import pytest
import torch

import anycl
from anycl.errors import ConfigError
from anycl.training.trainer import warmup_cosine


@pytest.mark.parametrize("schedule", ["cosine", "linear", "constant"])
def test_schedule_matches_formula(schedule):
    warm, total = 3, 23
    f = warmup_cosine(warm, total, schedule)
    for step in range(total):
        if step < warm:
            want = (step + 1) / warm
        else:
            p = (step - warm) / (total - warm)
            want = {"cosine": 0.5 * (1 + math.cos(math.pi * p)), "linear": 1 - p, "constant": 1.0}[schedule]
        assert f(step) == pytest.approx(want)


def test_unknown_schedule_is_refused_before_training():
    with pytest.raises(ConfigError, match="lr_schedule"):
        anycl.fit([{"anchor": "a", "positive": "b"}] * 4, modality="text", lr_schedule="step")
    with pytest.raises(ConfigError, match="lr_schedule"):
        warmup_cosine(1, 10, "exp")


def test_schedule_reaches_the_optimizer(tiny_text_encoder):
    pairs = [{"anchor": f"query {i}", "positive": f"document {i}"} for i in range(16)]
    seen = {}
    for schedule in ("linear", "constant"):
        model = anycl.fit(
            pairs,
            modality="text",
            batch_size=4,
            epochs=1,
            lr=1e-3,
            lr_schedule=schedule,
            warmup_ratio=0.0,
            progress=False,
            log_with=None,
            seed=0,
            encoder=copy.deepcopy(tiny_text_encoder),
            adapter_options={"max_seq_length": 8},
        )
        seen[schedule] = model.trainer.scheduler.get_last_lr()[0]
    assert seen["constant"] == pytest.approx(1e-3)
    assert seen["linear"] < 1e-3


def test_per_modality_default_schedule():
    from anycl import adapters
    from anycl.options.fit_config import FitConfig

    text = FitConfig().training_values(adapters.ADAPTERS.lookup("text").fit_defaults)
    image = FitConfig().training_values(adapters.ADAPTERS.lookup("image").fit_defaults)
    assert text["lr_schedule"] == "constant" and image["lr_schedule"] == "cosine"
    assert FitConfig(lr_schedule="linear").training_values({"lr_schedule": "constant"})["lr_schedule"] == "linear"


def _replayed(schedule, warmup, total, lr):
    """The learning rate each of ``total`` optimiser steps uses under torch's LambdaLR with anycl's schedule."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(warmup, total, schedule))
    used = []
    for _ in range(total):
        used.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return used


def test_logged_lr_is_the_rate_each_step_used_in_history_and_tensorboard(tiny_text_encoder, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    pairs = [{"anchor": f"query {i}", "positive": f"document {i}"} for i in range(32)]
    common = dict(
        modality="text",
        batch_size=4,
        lr=1e-3,
        progress=False,
        seed=0,
        log_every=1,
        adapter_options={"max_seq_length": 8},
    )
    model = anycl.fit(
        pairs,
        lr_schedule="cosine",
        warmup_ratio=0.25,  # 2 warm-up steps of 8
        encoder=copy.deepcopy(tiny_text_encoder),
        output_dir=str(tmp_path / "run"),
        **common,
    )
    logged = [h["lr"] for h in model.trainer.history]
    want = _replayed("cosine", 2, 8, 1e-3)
    assert logged == pytest.approx(want, rel=1e-12)
    assert logged[0] == pytest.approx(0.5e-3) and logged[1] == pytest.approx(1e-3)  # the warm-up's first value is shown
    files = list((tmp_path / "run" / "logs").rglob("events.out.tfevents.*"))
    acc = EventAccumulator(str(files[0].parent))
    acc.Reload()
    tb = [(e.step, e.value) for e in acc.Scalars("lr")]
    assert [s for s, _ in tb] == list(range(1, 9)) and [v for _, v in tb] == pytest.approx(want, rel=1e-6)
    # a run of one step logs the rate it ran at (it logged 0.0: the cosine's end, the rate after the step)
    one = anycl.fit(pairs[:4], lr_schedule="cosine", max_steps=1, encoder=copy.deepcopy(tiny_text_encoder), **common)
    assert [h["lr"] for h in one.trainer.history] == pytest.approx([1e-3])
