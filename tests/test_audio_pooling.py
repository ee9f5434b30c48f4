"""AudioCNN's temporal pooling: ``"mean+max"`` (the default) and ``"mean+std"`` (x-vector statistics pooling),
checked against numpy on the frame features, bad options refused, and a fit → save → load round trip."""

import numpy as np
import pytest
import torch

import anycl
from anycl.adapters.audio import AudioAdapter
from anycl.adapters.audio_encoder import AudioCNN
from anycl.errors import ConfigError


def _frames(enc: AudioCNN, x: torch.Tensor) -> np.ndarray:
    """The frame-wise features the pooling sees, (N, T', width), computed step by step."""
    x = enc.input_norm(x.transpose(1, 2)).transpose(1, 2)
    x = enc.features(x).flatten(1, 2).transpose(1, 2)
    return enc.frame(x).detach().double().numpy()


@pytest.mark.parametrize("pooling", ["mean+max", "mean+std"])
def test_pooling_matches_numpy_on_the_frames(pooling):
    torch.manual_seed(0)
    enc = AudioCNN(n_mels=16, channels=[4, 8], embedding_dim=12, pooling=pooling).eval()
    x = torch.randn(3, 1, 16, 40)
    f = _frames(enc, x)
    if pooling == "mean+max":
        want = f.mean(1) + f.max(1)
    else:
        assert f.shape[2] == 6  # half the output width
        want = np.concatenate([f.mean(1), np.sqrt(f.var(1) + 1e-5)], axis=1)
    with torch.no_grad():
        got = enc(x).double().numpy()
    assert got.shape == (3, 12)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_mean_std_gradient_is_finite_when_every_frame_is_equal():
    enc = AudioCNN(n_mels=8, channels=[4], embedding_dim=8, pooling="mean+std")
    x = torch.zeros(2, 1, 8, 2, requires_grad=True)  # one frame after the pool: a variance of exactly 0
    enc(x).sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in enc.parameters() if p.grad is not None)


def test_the_default_spec_has_no_pooling_key_so_older_folders_read_the_same():
    assert "pooling" not in AudioCNN(n_mels=8, channels=[4]).anycl_spec
    assert AudioCNN(n_mels=8, channels=[4], pooling="mean+std").anycl_spec["pooling"] == "mean+std"


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"pooling": "max"}, r"pooling must be one of \['mean\+max', 'mean\+std'\], got 'max'"),
        ({"pooling": "mean+std", "embedding_dim": 7}, "embedding_dim must be even, got 7"),
    ],
)
def test_bad_pooling_options_are_refused(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        AudioCNN(n_mels=8, channels=[4], **kwargs)


def test_fit_with_mean_std_pooling_saves_and_loads_the_same_encoder(tmp_path):
    rng = np.random.default_rng(0)
    clips = [(rng.standard_normal(8000).astype(np.float32) * (0.1 + 0.1 * i), 16000) for i in range(8)]
    model = anycl.fit(
        clips,
        modality="audio",
        epochs=1,
        batch_size=4,
        progress=False,
        adapter_options={"clip_seconds": 0.25},
        encoder_options={"channels": [4, 8], "embedding_dim": 16, "pooling": "mean+std"},
    )
    emb = model.encode(clips)
    assert emb.shape == (8, 16)
    model.save(str(tmp_path / "m"))
    again = anycl.load(str(tmp_path / "m"))
    assert again.tower("audio").encoder.pooling == "mean+std"
    assert torch.allclose(again.encode(clips), emb, atol=1e-6)
    assert isinstance(again.tower("audio").adapter, AudioAdapter)
