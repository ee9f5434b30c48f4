"""ONNX export (anycl.export.to_onnx): ONNX Runtime gives the towers' embeddings within 1e-4 of torch."""

import json

import numpy as np
import pytest
import torch

import anycl
from anycl.api import build_model
from anycl.errors import ConfigError

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from anycl.export.to_onnx import features_for, onnx_session, run_onnx  # noqa: E402

SIDES = ("anchor", "positive", "negative")


def _parity(model, items, directory, modality=None, **kw):
    model.export_onnx(str(directory), modality=modality, **kw)
    session = onnx_session(str(directory), threads=1)
    ours = model.encode(items, modality=modality).numpy()
    theirs = run_onnx(session, features_for(model, items, modality))
    assert theirs.shape == ours.shape
    np.testing.assert_allclose(theirs, ours, atol=1e-4, rtol=0)
    return json.loads((directory / "anycl_onnx.json").read_text())


def test_text_tower_matches_torch_with_dynamic_batch_and_length(minilm_path, tmp_path):
    model = build_model({s: "text" for s in SIDES}, model=minilm_path)
    texts = [
        "a short one",
        "a considerably longer sentence about exporting a transformer to ONNX Runtime",
        "three",
        "what do we know about glaciers?",
    ]
    meta = _parity(model, texts, tmp_path / "onnx")  # traced on 2 other texts: batch and length are dynamic
    assert meta["inputs"][:2] == ["input_ids", "attention_mask"] and meta["normalized"] is True
    assert (tmp_path / "onnx" / "tokenizer.json").exists()
    card = (tmp_path / "onnx" / "README.md").read_text()
    assert card.startswith("---\n") and "library_name: onnx" in card and "all-MiniLM-L6-v2" in card


@pytest.mark.slow
def test_trained_text_model_with_a_projection_head_exports_what_encode_returns(text_pairs, minilm_path, tmp_path):
    model = anycl.fit(
        text_pairs,
        modality="text",
        model=minilm_path,
        head=32,
        batch_size=8,
        max_steps=1,
        progress=False,
        log_with=None,
        adapter_options={"max_seq_length": 32},
    )
    model.towers["text"].encode_with_head = True
    meta = _parity(model, ["facts on cats", "what about chess?"], tmp_path / "onnx")
    assert meta["projection_head"] is True


@pytest.mark.parametrize(
    "encoder, size",
    [
        ({"arch": "resnet10"}, 32),
        # the small CNN: its cell average (CellPool) is a constant matrix product in the graph, also where the last
        # stage (7 × 7 at 28 px) does not divide into the 4 × 4 cells
        ({"arch": "cnn", "width": 8}, 32),
        ({"arch": "cnn", "width": 8}, 28),
    ],
)
def test_image_tower_matches_torch(tmp_path, encoder, size):
    model = build_model({s: "image" for s in SIDES}, adapter_options={"size": size}, encoder_options=encoder)
    g = torch.Generator().manual_seed(0)
    images = [torch.randint(0, 256, (40, 36, 3), generator=g, dtype=torch.uint8).numpy() for _ in range(3)]
    meta = _parity(model, images, tmp_path / "onnx")
    assert meta["inputs"] == ["pixels"]


@pytest.mark.parametrize("readout, width", [("embedding", 128), ("layers", 480)])
def test_audio_tower_matches_torch(tmp_path, readout, width):
    model = build_model(
        {s: "audio" for s in SIDES},
        adapter_options={"sample_rate": 16000, "clip_seconds": 1.0},
        encoder_options={"readout": readout},  # "layers": every conv block's pooled channels beside the embedding
    )
    g = torch.Generator().manual_seed(0)
    clips = [{"array": (torch.randn(16000, generator=g) * 0.1).numpy(), "sampling_rate": 16000} for _ in range(3)]
    meta = _parity(model, clips, tmp_path / "onnx")
    assert meta["inputs"] == ["waveform"]
    assert model.encode(clips[:1]).shape == (1, width)


def test_audio_tower_that_skips_silence_matches_torch_on_padded_clips(tmp_path):
    model = build_model(
        {s: "audio" for s in SIDES},
        adapter_options={"sample_rate": 16000, "clip_seconds": 1.0, "pad": "zero"},
        encoder_options={"skip_silence": True},
    )
    g = torch.Generator().manual_seed(1)
    lengths = [4800, 11000, 16000]  # two clips shorter than the window (zero-padded) and a full one
    clips = [{"array": (torch.randn(n, generator=g) * 0.1).numpy(), "sampling_rate": 16000} for n in lengths]
    _parity(model, clips, tmp_path / "onnx")  # the silence mask is part of the graph


def test_unknown_tower_is_a_config_error(minilm_path, tmp_path):
    model = build_model({s: "text" for s in SIDES}, model=minilm_path)
    with pytest.raises(ConfigError, match="no tower"):
        model.export_onnx(str(tmp_path / "x"), modality="image")


def test_real_valued_mel_spectrogram_equals_torchaudio():
    import torchaudio

    from anycl.export.to_onnx import RealMelSpectrogram

    mel = torchaudio.transforms.MelSpectrogram(
        sample_rate=16000, n_fft=400, win_length=300, hop_length=160, n_mels=40, power=2.0
    )
    wave = torch.randn(2, 3, 8000, generator=torch.Generator().manual_seed(1))
    ref = mel(wave)
    ours = RealMelSpectrogram(mel)(wave)
    assert ours.shape == ref.shape
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-4 * float(ref.abs().max()))
