"""AudioCNN's ``freeze=N``: the input's batch norm and the first N conv blocks stay fixed while the rest trains.

Gradients are checked against an unfrozen copy whose first blocks are put in evaluation mode by hand (plain PyTorch
semantics), and a fit from the shipped weights is checked to leave those blocks' weights and statistics bit for bit."""

import pytest
import torch
from bn_statistics import random_bn_statistics
from tiny_audio_fit import fit_with_recipe, noise_clips

import anycl
from anycl.adapters.audio import AudioAdapter
from anycl.adapters.audio_encoder import AudioCNN
from anycl.errors import ConfigError


def _loss(out: torch.Tensor) -> torch.Tensor:
    return out.pow(2).mul(torch.arange(out.shape[1], dtype=out.dtype)).sum()


def test_frozen_blocks_take_no_gradient_and_the_rest_get_the_gradient_of_a_fixed_prefix():
    torch.manual_seed(0)
    frozen = random_bn_statistics(AudioCNN(n_mels=16, channels=[4, 8, 8], embedding_dim=12, freeze=2), seed=5)
    plain = AudioCNN(n_mels=16, channels=[4, 8, 8], embedding_dim=12)
    plain.load_state_dict(frozen.state_dict())
    frozen.train()
    plain.train()
    fixed = [plain.input_norm, *plain.features[:8]]  # the reference: the same modules in eval mode, by hand
    for m in fixed:
        m.eval()
    x = torch.randn(4, 1, 16, 40)
    _loss(frozen(x)).backward()
    _loss(plain(x)).backward()
    names = dict(frozen.named_parameters())
    for name, p in plain.named_parameters():
        if name.startswith("input_norm.") or (name.startswith("features.") and int(name.split(".")[1]) < 8):
            assert not names[name].requires_grad and names[name].grad is None, name
        else:
            assert names[name].requires_grad, name
            torch.testing.assert_close(names[name].grad, p.grad, rtol=1e-5, atol=1e-7)
    assert frozen.features[9].training and not frozen.features[5].training and not frozen.input_norm.training


def test_frozen_batch_norms_keep_their_running_statistics_in_training():
    torch.manual_seed(1)
    enc = random_bn_statistics(AudioCNN(n_mels=16, channels=[4, 8], embedding_dim=12, freeze=1), seed=5).train()
    before = {k: v.clone() for k, v in enc.state_dict().items()}
    enc(torch.randn(6, 1, 16, 40) * 3 + 1)
    after = enc.state_dict()
    for key in ("input_norm.running_mean", "features.1.running_var", "features.1.num_batches_tracked"):
        assert torch.equal(after[key], before[key]), key
    assert not torch.equal(after["features.5.running_mean"], before["features.5.running_mean"])  # block 2 trains


def test_every_block_frozen_leaves_the_frame_layer_to_train():
    enc = AudioCNN(n_mels=16, channels=[4, 8], embedding_dim=12, freeze=2)
    trained = [name for name, p in enc.named_parameters() if p.requires_grad]
    assert trained == ["frame.1.weight", "frame.1.bias"]


def test_fit_from_the_shipped_weights_keeps_the_frozen_blocks_bit_for_bit(tmp_path, caplog):
    shipped = AudioAdapter().default_encoder(pretrained=True).state_dict()
    clips = noise_clips()
    model, line = fit_with_recipe(clips, caplog, clip_seconds=0.5, encoder_options={"freeze": 2})
    assert "AudioCNN from anycl-audio-cnn-v2, first 2 conv blocks frozen (93,424 parameters, 88,448 trained)" in line
    # 93,424 less the input norm (64 × 2), block 1 (1 × 16 × 9 + 16 × 2) and block 2 (16 × 32 × 9 + 32 × 2)
    got = model.tower("audio").encoder.state_dict()
    for key, value in shipped.items():
        if key.startswith("input_norm.") or (key.startswith("features.") and int(key.split(".")[1]) < 8):
            assert torch.equal(got[key], value), key  # weights and running statistics alike
    for key in ("features.8.weight", "features.9.running_mean", "frame.1.weight"):  # the rest trained
        assert not torch.equal(got[key], shipped[key]), key
    emb = model.encode(clips)
    model.save(str(tmp_path / "m"))
    again = anycl.load(str(tmp_path / "m"))
    assert again.tower("audio").encoder.frozen_blocks == 2
    torch.testing.assert_close(again.encode(clips), emb, rtol=0, atol=1e-6)


def test_the_default_spec_has_no_freeze_key_so_older_folders_read_the_same():
    assert "freeze" not in AudioCNN(n_mels=8, channels=[4]).anycl_spec
    assert AudioCNN(n_mels=8, channels=[4, 4], freeze=1).anycl_spec["freeze"] == 1


@pytest.mark.parametrize("bad", [-1, 3, True, "1", 1.0, None])
def test_bad_freeze_values_are_refused(bad):
    with pytest.raises(ConfigError, match=r"freeze must be a number of conv blocks from 0 to 2 \(its channels\)"):
        AudioCNN(n_mels=8, channels=[4, 4], freeze=bad)
