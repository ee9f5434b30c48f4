"""A test helper: a two-step audio fit on eight clips of noise, with the run's recipe line."""

import logging

import numpy as np

import anycl


def noise_clips(n: int = 8, samples: int = 8000, rate: int = 16000):
    """``n`` (waveform, rate) clips of seeded Gaussian noise, each louder than the one before."""
    rng = np.random.default_rng(0)
    return [(rng.standard_normal(samples).astype(np.float32) * (0.1 + 0.1 * i), rate) for i in range(n)]


def fit_with_recipe(clips, caplog, clip_seconds: float, encoder_options: dict):
    """``anycl.fit`` for 2 optimiser steps of batch 4 with these encoder options; returns (model, recipe line)."""
    with caplog.at_level(logging.INFO, logger="anycl"):
        model = anycl.fit(
            clips,
            modality="audio",
            max_steps=2,
            batch_size=4,
            progress=False,
            adapter_options={"clip_seconds": clip_seconds},
            encoder_options=encoder_options,
        )
    [line] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("training: ")]
    return model, line
