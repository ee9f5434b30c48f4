"""The learning-rate schedules after warm-up, against their formulas, and the option's checks."""

import copy
import math

import pytest

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
