"""AudioCNN's ``readout="layers"``: the embedding beside every conv block's pooled channels, checked against a pass
computed with torch.nn.functional from the state dict alone; its width, gradients, the shipped weights, a fit → save →
load round trip and the options it refuses (its ONNX graph: ``tests/test_onnx.py``)."""

import pytest
import torch
import torch.nn.functional as F
from bn_statistics import random_bn_statistics
from tiny_audio_fit import fit_with_recipe, noise_clips

import anycl
from anycl.adapters.audio import AudioAdapter
from anycl.adapters.audio_encoder import AudioCNN
from anycl.errors import ConfigError


def _bn(x, sd, key, dim=1):
    """Eval-mode batch norm over ``dim`` from the state dict's running statistics."""
    shape = [1] * x.dim()
    shape[dim] = -1
    mean, var = sd[f"{key}.running_mean"].view(shape), sd[f"{key}.running_var"].view(shape)
    weight, bias = sd[f"{key}.weight"].view(shape), sd[f"{key}.bias"].view(shape)
    return (x - mean) / torch.sqrt(var + 1e-5) * weight + bias


def _reference(sd, blocks: int, x: torch.Tensor) -> torch.Tensor:
    """The layers readout of (N, 1, F, T) log-mels from ``sd`` (an AudioCNN's state dict): each block conv → BN →
    2 × 2 max-pool → ReLU, its channels' mean and maximum over mel bins and frames; the embedding from the last
    block's frames (frame-wise linear, ReLU, mean + max over time)."""
    h = _bn(x, sd, "input_norm", dim=2)
    parts = []
    for b in range(blocks):
        h = F.conv2d(h, sd[f"features.{4 * b}.weight"], padding=1)
        h = F.relu(F.max_pool2d(_bn(h, sd, f"features.{4 * b + 1}"), 2, ceil_mode=True))
        pooled = torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3))], 1)
        parts.append(pooled / pooled.norm(dim=1, keepdim=True))
    frames = F.relu(h.flatten(1, 2).transpose(1, 2) @ sd["frame.1.weight"].T + sd["frame.1.bias"])
    emb = frames.mean(1) + frames.amax(1)
    layers = torch.cat(parts, 1)
    return torch.cat([emb / emb.norm(dim=1, keepdim=True), layers / layers.norm(dim=1, keepdim=True)], 1)


def _trained_looking(enc: AudioCNN) -> AudioCNN:
    """Random running statistics and affine BN parameters, so the reference's batch norms are not identities."""
    return random_bn_statistics(enc, seed=3).eval()


def test_layers_readout_matches_a_functional_pass_over_the_state_dict():
    torch.manual_seed(0)
    enc = _trained_looking(AudioCNN(n_mels=16, channels=[4, 8, 8], embedding_dim=12, readout="layers"))
    x = torch.randn(3, 1, 16, 40)
    with torch.no_grad():
        got = enc(x)
        want = _reference(enc.state_dict(), 3, x)
    assert enc.embedding_dim == 12 + 2 * (4 + 8 + 8) == got.shape[1]
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    # the two halves have unit norm each: neither outweighs the other in a cosine
    torch.testing.assert_close(got[:, :12].norm(dim=1), torch.ones(3))
    torch.testing.assert_close(got[:, 12:].norm(dim=1), torch.ones(3))


def test_the_embedding_part_is_the_default_readouts_embedding_normalised():
    torch.manual_seed(1)
    layers = _trained_looking(AudioCNN(n_mels=16, channels=[4, 8], embedding_dim=12, readout="layers"))
    plain = AudioCNN(n_mels=16, channels=[4, 8], embedding_dim=12).eval()
    plain.load_state_dict(layers.state_dict())  # no parameter of its own: the same state dict
    x = torch.randn(2, 3, 1, 16, 40)  # three evaluation windows a clip: averaged after the readout
    with torch.no_grad():
        got, emb = layers(x), plain(x.flatten(0, 1))
    per_window = F.normalize(emb, dim=1).view(2, 3, -1).mean(1)
    torch.testing.assert_close(got[:, :12], per_window, rtol=1e-5, atol=1e-6)


def test_training_through_the_readout_reaches_every_block():
    torch.manual_seed(2)
    enc = AudioCNN(n_mels=16, channels=[4, 8], embedding_dim=12, readout="layers")
    frame_weight = enc.frame[1].weight
    out = enc(torch.randn(4, 1, 16, 40))
    out[:, 12:].pow(2).mul(torch.arange(out.shape[1] - 12)).sum().backward()  # the blocks' part alone
    assert frame_weight.grad is None or not frame_weight.grad.any()  # the embedding's own layer plays no part
    for conv in (enc.features[0], enc.features[4]):
        assert conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0


def test_the_shipped_weights_load_into_the_layers_readout():
    layers = AudioAdapter().default_encoder(pretrained=True, readout="layers").eval()
    plain = AudioAdapter().default_encoder(pretrained=True).eval()
    assert layers.anycl_start == plain.anycl_start
    x = AudioAdapter().log_mel(torch.randn(2, 16000) * 0.1)
    with torch.no_grad():
        torch.testing.assert_close(layers(x)[:, :128], F.normalize(plain(x), dim=1), rtol=1e-5, atol=1e-6)
    assert layers.embedding_dim == 480


def test_fit_save_load_keeps_the_readout(tmp_path, caplog):
    clips = noise_clips()
    model, line = fit_with_recipe(
        clips, caplog, clip_seconds=0.25, encoder_options={"channels": [4, 8], "embedding_dim": 16, "readout": "layers"}
    )
    assert "readout 'layers'" in line  # the recipe line says the encoder's output is not its embedding alone
    emb = model.encode(clips)
    assert emb.shape == (8, 16 + 24)
    model.save(str(tmp_path / "m"))
    again = anycl.load(str(tmp_path / "m"))
    assert again.tower("audio").encoder.readout == "layers"
    torch.testing.assert_close(again.encode(clips), emb, rtol=0, atol=1e-6)


def test_the_default_spec_has_no_readout_key_so_older_folders_read_the_same():
    assert "readout" not in AudioCNN(n_mels=8, channels=[4]).anycl_spec
    assert AudioCNN(n_mels=8, channels=[4], readout="layers").anycl_spec["readout"] == "layers"


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"readout": "blocks"}, r"readout must be one of \['embedding', 'layers'\], got 'blocks'"),
        ({"readout": "layers", "skip_silence": True}, "does not combine with skip_silence=True"),
    ],
)
def test_bad_readout_options_are_refused(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        AudioCNN(n_mels=8, channels=[4], **kwargs)
