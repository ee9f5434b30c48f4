"""The audio CNN's shipped starting weights (adapters/audio_weights.py): the default encoder starts from the file as
it is on disk (``pretrained`` left out or True; False gives random weights), a setting they do not fit starts random
with a line naming it (refused naming it under ``pretrained=True``), a damaged or missing file is refused, and a saved
model loads its own weights, never the shipped ones."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors.torch import load_file

import anycl
from anycl.adapters import audio_weights
from anycl.errors import ConfigError

SHIPPED = audio_weights.WEIGHTS_DIR / f"{audio_weights.NAME}.safetensors"


def _same_as_file(encoder) -> bool:
    on_disk = load_file(str(SHIPPED))
    state = encoder.state_dict()
    return set(state) == set(on_disk) and all(torch.equal(state[k], on_disk[k]) for k in on_disk)


def test_the_card_states_the_file_it_ships():
    card = json.loads((audio_weights.WEIGHTS_DIR / f"{audio_weights.NAME}.json").read_text())
    assert card["sha256"] == hashlib.sha256(SHIPPED.read_bytes()).hexdigest()
    assert card["steps"] > 0 and card["corpus"]["clips"] > 0
    # none of the audio protocol's packages was read in pretraining
    assert not {"sonic-pi-samples", "espeak-ng", "megaglest-data", "hedgewars-data"} & set(card["corpus"]["packages"])
    assert card["steps"] == 8000 + card["speaker_stage"]["steps"]  # the unlabelled stage, then the speakers'
    assert len(card["speaker_stage"]["speakers"]) == 30 and "festival" in card["package_versions"]


def test_the_default_and_pretrained_true_start_from_the_shipped_weights_and_false_does_not():
    adapter = anycl.adapters.get("audio")
    for encoder in (adapter.default_encoder(), adapter.default_encoder(pretrained=True)):
        assert _same_as_file(encoder)
        assert encoder.anycl_start == audio_weights.NAME
        assert "pretrained" not in encoder.anycl_spec  # a saved model rebuilds the architecture, then loads its weights
    random = adapter.default_encoder(pretrained=False)
    assert not _same_as_file(random) and not hasattr(random, "anycl_start")


def test_pretrained_false_is_seeded_random_weights():
    adapter = anycl.adapters.get("audio")
    torch.manual_seed(0)
    a = adapter.default_encoder(pretrained=False)
    torch.manual_seed(0)
    b = adapter.default_encoder(pretrained=False)
    torch.manual_seed(1)
    c = adapter.default_encoder(pretrained=False)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert not torch.equal(a.features[0].weight, c.features[0].weight)


@pytest.mark.parametrize(
    "adapter_options, encoder_options, named",
    [
        ({}, {"channels": [8, 16]}, "channels"),
        ({}, {"embedding_dim": 64}, "embedding_dim"),
        ({}, {"pooling": "mean+std"}, "pooling"),
        ({"n_mels": 40}, {}, "n_mels"),
        ({"sample_rate": 8000}, {}, "sample_rate"),
        ({"f_min": 0.0}, {}, "f_min"),
        ({"hop_ms": 20.0}, {}, "hop_length"),
        ({"n_fft": 1024}, {}, "n_fft"),
        ({"f_max": 7000.0}, {}, "f_max"),
    ],
)
def test_a_setting_the_weights_do_not_fit_starts_random_saying_why_and_is_refused_under_true(
    adapter_options, encoder_options, named, caplog
):
    adapter = anycl.adapters.get("audio", **adapter_options)
    with pytest.raises(ConfigError, match=named):
        adapter.default_encoder(pretrained=True, **encoder_options)
    with caplog.at_level(logging.INFO, logger="anycl"):
        encoder = adapter.default_encoder(**encoder_options)
    assert not hasattr(encoder, "anycl_start")  # left out: random weights, no error, one line naming the setting
    assert [r.getMessage() for r in caplog.records if "random weights" in r.getMessage() and named in r.getMessage()]


def test_settings_that_leave_the_weights_meaning_alone_still_start_from_them():
    adapter = anycl.adapters.get("audio", clip_seconds=2.0, eval_crop="center", augment="strong")
    assert _same_as_file(adapter.default_encoder(pretrained=True, dropout=0.1, skip_silence=True))
    # the defaults spelt out (16 kHz: n_fft 512, f_max 8 kHz) are the same front end
    spelt = anycl.adapters.get("audio", sample_rate=16000, n_fft=512, f_max=8000.0, win_ms=25.0, hop_ms=10.0)
    assert _same_as_file(spelt.default_encoder(pretrained=True))


def test_pretrained_must_be_a_boolean_and_is_not_for_transformers_models():
    adapter = anycl.adapters.get("audio")
    with pytest.raises(ConfigError, match="pretrained must be true, false or left out"):
        adapter.default_encoder(pretrained="yes")
    for given in (True, False):
        with pytest.raises(ConfigError, match="model= is pretrained"):
            adapter.default_encoder(model="some/model", pretrained=given)


def test_a_damaged_or_missing_file_is_refused(tmp_path, monkeypatch):
    copy = tmp_path / "weights"
    shutil.copytree(audio_weights.WEIGHTS_DIR, copy)
    monkeypatch.setattr(audio_weights, "WEIGHTS_DIR", copy)
    target = copy / SHIPPED.name
    data = bytearray(target.read_bytes())
    data[-1] ^= 0xFF
    target.write_bytes(bytes(data))
    adapter = anycl.adapters.get("audio")
    for given in (None, True):  # the default too: a damaged install is an error, not a silent random start
        with pytest.raises(ConfigError, match="damaged"):
            adapter.default_encoder(pretrained=given)
    target.unlink()
    with pytest.raises(ConfigError, match=r"missing.*'pretrained': False"):
        adapter.default_encoder()
    assert not _same_as_file(adapter.default_encoder(pretrained=False))  # the way out the error names


def _clips(folder):
    folder.mkdir()
    sr = 16000
    rng = np.random.default_rng(0)
    for i in range(6):
        t = np.arange(int(0.6 * sr)) / sr
        sf.write(str(folder / f"tone_{i}.wav"), (0.4 * np.sin(2 * np.pi * (200 + 50 * i) * t)).astype(np.float32), sr)
        sf.write(str(folder / f"noise_{i}.wav"), (0.2 * rng.standard_normal(int(0.6 * sr))).astype(np.float32), sr)
    return str(folder)


def test_fit_trains_from_the_shipped_weights_and_a_saved_model_keeps_its_own(tmp_path, caplog, monkeypatch):
    with caplog.at_level(logging.INFO, logger="anycl"):
        model = anycl.fit(
            _clips(tmp_path / "clips"), modality="audio", max_steps=2, batch_size=4, seed=0, progress=False
        )
    assert any(audio_weights.NAME in r.getMessage() for r in caplog.records)  # the recipe line names the start
    trained = model.tower("audio").encoder
    assert not _same_as_file(trained)  # two steps moved them
    model.save(tmp_path / "model")
    monkeypatch.setattr(audio_weights, "WEIGHTS_DIR", tmp_path / "nowhere")  # loading never reads the shipped file
    loaded = anycl.load(tmp_path / "model")
    encoder = loaded.tower("audio").encoder
    assert all(torch.equal(a, b) for a, b in zip(trained.state_dict().values(), encoder.state_dict().values()))
    clips = sorted(str(p) for p in (tmp_path / "clips").iterdir())[:3]
    np.testing.assert_array_equal(model.encode(clips), loaded.encode(clips))


def test_fit_from_random_weights_when_asked(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="anycl"):
        model = anycl.fit(
            _clips(tmp_path / "clips"),
            modality="audio",
            max_steps=1,
            batch_size=4,
            seed=0,
            progress=False,
            encoder_options={"pretrained": False},
        )
    assert not hasattr(model.tower("audio").encoder, "anycl_start")
    recipe = [r.getMessage() for r in caplog.records if "AudioCNN (" in r.getMessage()]
    assert recipe and not any(audio_weights.NAME in line for line in recipe)  # the recipe line: no shipped start


def test_a_run_from_the_shipped_weights_takes_the_whole_step_budget_however_small_the_data(
    tmp_path, caplog, monkeypatch
):
    from anycl.fitting import recipe
    from anycl.training import epochs

    monkeypatch.setattr(recipe, "DEFAULT_STEP_BUDGET", 7)
    monkeypatch.setattr(epochs, "MAX_BUDGET_EPOCHS", 2)  # from random weights: at most 2 epochs of the budget
    clips = _clips(tmp_path / "clips")
    common = dict(modality="audio", batch_size=4, seed=0, progress=False)
    with caplog.at_level(logging.INFO, logger="anycl"):
        started = anycl.fit(clips, **common)
    steps_per_epoch = len(list((tmp_path / "clips").iterdir())) // 4  # full batches only
    assert steps_per_epoch * 2 < 7 and started.info["steps"] == 7  # the whole budget, past the epochs' cap
    line = [r.getMessage() for r in caplog.records if r.getMessage().startswith("training: ")][-1]
    assert "7 optimiser steps (default from shipped starting weights: the step budget whatever the data size" in line
    assert started.info["config"]["epochs"] == 3  # the epochs the 7 steps took are recorded
    monkeypatch.setattr(recipe, "DEFAULT_STEP_BUDGET", 40)  # 14 epochs of 3 steps
    evaluated = anycl.fit(clips, eval_dataset=lambda m: {"a": 1.0}, **common)
    # evaluated like a budget run, about 10 times (after every 2nd epoch, and the last), not after each small epoch
    assert [h["step"] for h in evaluated.trainer.eval_history] == [0, 6, 12, 18, 24, 30, 36, 40]
    random = anycl.fit(clips, encoder_options={"pretrained": False}, **common)
    assert random.info["steps"] == steps_per_epoch * 2  # random weights: the budget's epochs, capped
    assert anycl.fit(clips, epochs=1, **common).info["steps"] == steps_per_epoch  # epochs given: they decide
    assert anycl.fit(clips, max_steps=3, **common).info["steps"] == 3
