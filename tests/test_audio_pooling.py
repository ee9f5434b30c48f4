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


def _fit_save_load(tmp_path, clips, clip_seconds, **encoder_options):
    """A one-epoch fit of a small CNN on ``clips``, saved and loaded back: (the model's encode, the loaded model)."""
    model = anycl.fit(
        clips,
        modality="audio",
        epochs=1,
        batch_size=4,
        progress=False,
        adapter_options={"clip_seconds": clip_seconds, "pad": "zero"},
        encoder_options={"channels": [4, 8], "embedding_dim": 16, **encoder_options},
    )
    emb = model.encode(clips)
    model.save(str(tmp_path / "m"))
    again = anycl.load(str(tmp_path / "m"))
    assert torch.allclose(again.encode(clips), emb, atol=1e-6)
    assert isinstance(again.tower("audio").adapter, AudioAdapter)
    return emb, again


def test_fit_with_mean_std_pooling_saves_and_loads_the_same_encoder(tmp_path):
    rng = np.random.default_rng(0)
    clips = [(rng.standard_normal(8000).astype(np.float32) * (0.1 + 0.1 * i), 16000) for i in range(8)]
    emb, again = _fit_save_load(tmp_path, clips, 0.25, pooling="mean+std")
    assert emb.shape == (8, 16)
    assert again.tower("audio").encoder.pooling == "mean+std"


# -- skip_silence: the frames of a short clip's zero padding are left out of the pooling ------------------------
def _padded_log_mels(adapter: AudioAdapter, lengths) -> torch.Tensor:
    """Log-mels of 1 s windows holding noise clips of the given lengths (samples), zero-padded after them."""
    g = torch.Generator().manual_seed(1)
    waves = torch.zeros(len(lengths), adapter.samples)
    for i, n in enumerate(lengths):
        waves[i, :n] = 0.3 * torch.randn(n, generator=g)
    return adapter.log_mel(waves)


@pytest.mark.parametrize("pooling", ["mean+max", "mean+std"])
def test_skip_silence_pools_only_the_frames_that_saw_the_clip(pooling):
    adapter = AudioAdapter(pad="zero", n_mels=16)  # 1 s windows of 101 frames at a 10 ms hop
    torch.manual_seed(0)
    enc = AudioCNN(n_mels=16, channels=[4, 8], embedding_dim=12, pooling=pooling, skip_silence=True).eval()
    lengths = [4800, 11000, 16000]  # 0.3 s, 0.69 s and a full window
    x = _padded_log_mels(adapter, lengths)
    f = _frames(enc, x)  # (3, 26, width): two blocks pool time by 4 (101 -> 51 -> 26)
    with torch.no_grad():
        got = enc(x).double().numpy()
    for i, n in enumerate(lengths):
        # input frames with sound: those whose 400-sample window (centred on frame * 160) reaches the clip
        sound = int(np.ceil((n + 200) / 160))
        kept = f[i, : int(np.ceil(min(sound, 101) / 4))]  # an output frame holds 4 input frames
        if pooling == "mean+max":
            want = kept.mean(0) + kept.max(0)
        else:
            want = np.concatenate([kept.mean(0), np.sqrt(kept.var(0) + 1e-5)])
        np.testing.assert_allclose(got[i], want, rtol=1e-5, atol=1e-6)
    # the full window has no silent frame: the same embedding as pooling every frame
    every = AudioCNN(n_mels=16, channels=[4, 8], embedding_dim=12, pooling=pooling)
    every.load_state_dict(enc.state_dict())
    with torch.no_grad():
        assert torch.allclose(every.eval()(x[2:]), enc(x[2:]), atol=1e-6)
        assert not torch.allclose(every(x[:1]), enc(x[:1]), atol=1e-3)  # the short clip's is its own


def test_skip_silence_pools_a_window_of_silence_whole_and_its_gradient_is_finite():
    enc = AudioCNN(n_mels=16, channels=[4, 8], embedding_dim=12, skip_silence=True)
    every = AudioCNN(n_mels=16, channels=[4, 8], embedding_dim=12)
    every.load_state_dict(enc.state_dict())
    x = AudioAdapter(pad="zero", n_mels=16).log_mel(torch.zeros(2, 16000)).requires_grad_(True)
    out = enc(x)
    assert torch.allclose(out, every(x), atol=1e-6)
    out.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in enc.parameters() if p.grad is not None)


def test_skip_silence_is_an_option_the_default_leaves_off_and_a_saved_model_keeps(tmp_path):
    assert not AudioAdapter(n_mels=16).default_encoder(channels=[4, 8]).skip_silence  # round 5: not the default
    assert "skip_silence" not in AudioCNN(n_mels=16, channels=[4]).anycl_spec  # older folders read the same
    rng = np.random.default_rng(0)
    clips = [(rng.standard_normal(2000 + 700 * i).astype(np.float32) * 0.2, 16000) for i in range(8)]  # < 0.5 s
    _, again = _fit_save_load(tmp_path, clips, 0.5, skip_silence=True)
    assert again.tower("audio").encoder.skip_silence
    with pytest.raises(ConfigError, match="skip_silence must be true or false, got 'yes'"):
        AudioCNN(n_mels=16, channels=[4], skip_silence="yes")
