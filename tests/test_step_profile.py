"""The faster training step keeps its results: decoded items cached across epochs (adapters/item_cache.py) give
the batches decoding every time gives, for the same seed; the channels-last encoders (adapters/conv_layout.py)
give the NCHW encoders' numbers up to rounding. And the step profiler's bookkeeping (benchmarks/bench_step_profile.py)."""

from __future__ import annotations

import copy
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image

from anycl.adapters import audio as audio_mod
from anycl.adapters import audio_load, image_load, image_views
from anycl.adapters.audio import AudioAdapter
from anycl.adapters.audio_encoder import AudioCNN
from anycl.adapters.conv_layout import CellPool
from anycl.adapters.image import ImageAdapter
from anycl.adapters.image_cnn import small_cnn
from anycl.adapters.item_cache import DecodedCache
from anycl.data.batching import BatchBuilder, batch_generator
from anycl.errors import ConfigError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_step_profile as bench  # noqa: E402


def clips(folder: Path, n: int, rate: int = 22050) -> list:
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        path = folder / f"c{i}.wav"
        sf.write(str(path), (0.2 * rng.standard_normal(int(rate * (1.2 + 0.3 * i)))).astype(np.float32), rate)
        out.append(str(path))
    return out


def pngs(folder: Path, n: int) -> list:
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        path = folder / f"i{i}.png"
        Image.fromarray(rng.integers(0, 256, (28, 30, 3), dtype=np.uint8)).save(path)
        out.append(str(path))
    return out


class Counting:
    """Wraps a function and counts its calls."""

    def __init__(self, fn):
        self.fn, self.calls = fn, 0

    def __call__(self, *a, **k):
        self.calls += 1
        return self.fn(*a, **k)


# -- the cache --------------------------------------------------------------------------------------------------
def test_a_decoded_image_is_kept_and_decoded_again_when_the_file_changes(tmp_path, monkeypatch):
    (path,) = pngs(tmp_path, 1)
    decode = Counting(image_load.decode)
    monkeypatch.setattr(image_load, "decode", decode)
    a = ImageAdapter(preset="small")
    first = a.load(path)
    assert torch.equal(first, image_load.decode.fn(path, "RGB", (255, 255, 255), a.max_pixels))
    assert a.load(path) is first and decode.calls == 1
    Image.fromarray(np.zeros((28, 30, 3), np.uint8)).save(path)
    os.utime(path, ns=(1, 1))  # another mtime, whatever the clock's resolution
    assert int(a.load(path).sum()) == 0 and decode.calls == 2
    off = ImageAdapter(preset="small", cache_mb=0)
    off.load(path), off.load(path)
    assert decode.calls == 4


def test_a_full_cache_keeps_what_it_has_and_decodes_the_rest_every_time(tmp_path, monkeypatch):
    files = clips(tmp_path, 3)
    read = Counting(audio_load.read_mono)
    monkeypatch.setattr(audio_load, "read_mono", read)
    a = AudioAdapter(augment=False, cache_clips=2)
    for _ in range(3):  # three epochs: the first two clips decoded once, the third at every read
        for f in files:
            a.load(f)
    assert read.calls == 2 + 3 and len(a._cache) == 2
    # a budget in bytes: 16 kHz float32 clips of 1.2 s and 1.5 s are 76.8 and 96 kB; 0.1 MiB keeps the first only
    b = AudioAdapter(augment=False, cache_mb=0.1)
    for f in files:
        b.load(f)
    assert len(b._cache) == 1 and b._cache.used == 4 * 19200


def test_the_cache_leaves_items_that_are_not_file_paths(tmp_path):
    cache = DecodedCache(1.0)
    assert cache.key(np.zeros(3)) is None and cache.key(b"RIFF") is None
    assert cache.key(str(tmp_path / "missing.wav")) is None
    assert DecodedCache(0).key(str(tmp_path)) is None


@pytest.mark.parametrize("value", [-1, True, float("inf"), "big"])
def test_bad_cache_sizes_are_config_errors(value):
    with pytest.raises(ConfigError, match="cache_mb"):
        ImageAdapter(preset="small", cache_mb=value)
    with pytest.raises(ConfigError, match="cache_mb"):
        AudioAdapter(cache_mb=value)
    for clips in (-1, 2.5, True):
        with pytest.raises(ConfigError, match="cache_clips must be an integer"):
            AudioAdapter(cache_clips=clips)


def test_a_copy_of_an_adapter_starts_with_an_empty_cache(tmp_path):
    import pickle

    (path,) = pngs(tmp_path, 1)
    a = ImageAdapter(preset="small")
    a.load(path)
    assert len(a._cache) == 1 and len(pickle.loads(pickle.dumps(a))._cache) == 0


@pytest.mark.parametrize("modality", ["audio", "image"])
def test_cached_and_uncached_loading_give_the_same_batches_for_a_seed(tmp_path, modality):
    if modality == "audio":
        files = clips(tmp_path, 4)
        make = lambda **kw: AudioAdapter(**kw)  # noqa: E731
        on, off = make(), make(cache_mb=0)
    else:
        files = pngs(tmp_path, 4)
        on, off = ImageAdapter(preset="small"), ImageAdapter(preset="small", cache_mb=0)
    rows = [{"anchor": f} for f in files]
    for epoch in range(3):  # the first epoch fills the cache, the later ones read it
        a = BatchBuilder({"anchor": on, "positive": on}).build(rows, batch_generator(0, epoch, 0))
        b = BatchBuilder({"anchor": off, "positive": off}).build(rows, batch_generator(0, epoch, 0))
        assert a is not None and b is not None
        for side in ("anchor", "positive"):
            assert torch.equal(a[side], b[side])
            g1, g2 = torch.Generator().manual_seed(epoch), torch.Generator().manual_seed(epoch)
            assert torch.equal(on.prepare(a[side], True, g1), off.prepare(b[side], True, g2))
    assert len(on._cache) == 4 and len(off._cache) == 0


# -- channels-last encoders -------------------------------------------------------------------------------------
def nchw(net: torch.nn.Module) -> torch.nn.Module:
    """The same network without the channels-last hooks: the reference in the default layout."""
    for m in net.modules():
        m._forward_hooks.clear()
        m._forward_pre_hooks.clear()
    return net


@pytest.mark.parametrize(
    "make, shape",
    [
        (lambda: small_cnn(in_channels=3), (6, 3, 32, 32)),
        (lambda: small_cnn(in_channels=1), (6, 1, 28, 28)),
        (lambda: AudioCNN(), (6, 1, 64, 101)),
        (lambda: AudioCNN(pooling="mean+std"), (6, 1, 64, 101)),  # statistics pooling of the same frames
    ],
)
def test_channels_last_encoders_give_the_nchw_numbers_and_gradients(make, shape):
    x = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(0)
    fast = make()
    torch.manual_seed(0)
    ref = nchw(make())
    assert fast.state_dict().keys() == ref.state_dict().keys()
    first = next(m for m in fast.modules() if isinstance(m, torch.nn.Conv2d))
    seen = []
    first.register_forward_hook(lambda m, i, o: seen.append(o))  # runs after the layout hook
    y, y_ref = fast(x), ref(x)
    assert seen[0].is_contiguous(memory_format=torch.channels_last) and seen[0].shape[1] > 1
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-5)
    y.square().sum().backward()
    y_ref.square().sum().backward()
    for (name, p), q in zip(fast.named_parameters(), ref.parameters()):
        # sums over the batch added in another order: rounding relative to the gradient's scale
        scale = float(q.grad.abs().max())
        assert float((p.grad - q.grad).abs().max()) <= 1e-4 * scale, name
    assert all(v.is_contiguous() for v in fast.state_dict().values())  # weights keep the default layout


def conv_bn_relu_pool(net: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``net`` with each max-pool moved back after the ReLU that follows it: the textbook order
    conv → BN → ReLU → max-pool, the reference for the encoders' pool-then-ReLU order."""
    ref = copy.deepcopy(net)
    for seq in [m for m in ref.modules() if isinstance(m, torch.nn.Sequential)]:
        mods = list(seq)
        for i in range(len(mods) - 1):
            if isinstance(mods[i], torch.nn.MaxPool2d) and isinstance(mods[i + 1], torch.nn.ReLU):
                mods[i], mods[i + 1] = mods[i + 1], mods[i]
        for i, m in enumerate(mods):
            seq[i] = m
    return ref


@pytest.mark.parametrize(
    "make, shape",
    [
        (lambda: small_cnn(in_channels=1), (6, 1, 28, 28)),
        (lambda: AudioCNN(), (6, 1, 64, 101)),
        (lambda: AudioCNN(channels=[8, 8, 8], pooling="mean+std"), (6, 1, 64, 37)),
    ],
)
@pytest.mark.parametrize("bf16", [False, True])
def test_the_relu_after_the_pool_gives_the_textbook_orders_numbers_and_gradients_to_the_bit(make, shape, bf16):
    torch.manual_seed(0)
    fast = make()
    pools = [m for m in fast.modules() if isinstance(m, torch.nn.MaxPool2d)]
    assert pools, "the encoder max-pools"
    ref = conv_bn_relu_pool(fast)
    assert [type(m) for m in fast.modules()] != [type(m) for m in ref.modules()]  # the order differs
    x = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    x[..., shape[-1] // 2 :] = -3.0  # a constant part (like a clip's padding): ties inside the pooling windows
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        y, y_ref = fast(x), ref(x)
    assert torch.equal(y, y_ref)
    y.float().square().sum().backward()
    y_ref.float().square().sum().backward()
    for (name, p), q in zip(fast.named_parameters(), ref.parameters()):
        assert torch.equal(p.grad, q.grad), name
    assert fast.state_dict().keys() == ref.state_dict().keys()  # a saved model loads into either


@pytest.mark.parametrize("size, grid", [((7, 7), 4), ((8, 8), 4), ((28, 28), 1), ((5, 9), 3), ((4, 4), 4), ((3, 3), 5)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_cell_pool_gives_adaptive_average_poolings_numbers_and_gradients(size, grid, channels_last):
    x = torch.randn((3, 6, *size), generator=torch.Generator().manual_seed(2))
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    y, y_ref = CellPool(grid)(a), torch.nn.AdaptiveAvgPool2d(grid)(b)
    assert y.shape == y_ref.shape == (3, 6, grid, grid) and y.dtype == x.dtype
    torch.testing.assert_close(y, y_ref, rtol=1e-6, atol=1e-6)
    g = torch.randn(y.shape, generator=torch.Generator().manual_seed(3))
    (y * g).sum().backward()
    (y_ref * g).sum().backward()
    torch.testing.assert_close(a.grad, b.grad, rtol=1e-6, atol=1e-6)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # bf16 in, bf16 out: the kernel's rounding of the same cells
        yb = CellPool(grid)(x.bfloat16())
    assert yb.dtype == torch.bfloat16
    torch.testing.assert_close(yb.float(), y_ref.detach(), rtol=1e-2, atol=1e-2)


def test_the_audio_encoder_averages_evaluation_windows_in_channels_last_too():
    torch.manual_seed(0)
    net = AudioCNN().eval()
    x = torch.randn(2, 3, 1, 64, 101)
    torch.testing.assert_close(net(x), net(x.flatten(0, 1)).view(2, 3, -1).mean(1), rtol=1e-5, atol=1e-6)


# -- the profiler's bookkeeping ---------------------------------------------------------------------------------
def test_the_profiler_counts_a_nested_region_once(monkeypatch):
    clock = iter([0.0, 1.0, 3.0, 10.0, 11.0, 12.0])  # loop in, decode in/out, loop out; a region outside
    monkeypatch.setattr(bench.time, "perf_counter", lambda: next(clock))
    t = bench.Timers()
    with t.region(bench.ROOT):
        with t.region("decode"):
            pass
    with t.region("decode"):  # outside the training loop: set-up, not a step's time
        pass
    assert t.total == {"decode": 2.0, bench.ROOT: 8.0}


def test_the_profiler_times_the_library_without_changing_it():
    from anycl.training.trainer import Trainer

    def now():
        return (
            AudioAdapter.load,
            ImageAdapter.augment,
            audio_mod.spectrogram_view,
            image_views.photometric,
            Trainer._run_epoch,
        )

    before = now()
    with bench.timed_library():
        assert all(a is not b for a, b in zip(now(), before))
    assert now() == before


def test_the_cache_options_are_recorded_only_when_given_and_named_in_errors():
    assert "cache_clips" not in AudioAdapter().options and "cache_mb" not in ImageAdapter().options
    assert AudioAdapter(cache_clips=8, cache_mb=2).options["cache_mb"] == 2
    with pytest.raises(ConfigError, match="cache_mb"):
        AudioAdapter(cache_megabytes=1)
    with pytest.raises(ConfigError, match="cache_mb"):
        ImageAdapter(cache_megabytes=1)


# -- the crop and flip without v2's machinery -------------------------------------------------------------------
@pytest.mark.parametrize(
    "shape, size, scale, flip_p",
    [
        ((3, 28, 28), 32, (0.2, 1.0), 0.5),
        ((1, 40, 25), 16, (0.08, 1.0), 0.5),
        ((3, 64, 48), 24, (0.05, 0.4), 0.0),
        ((3, 2, 40), 8, (0.9, 1.0), 1.0),  # a strip: no crop of the ratios fits, v2's central fallback
    ],
)
def test_crop_flip_gives_torchvision_v2s_views_for_a_seed(shape, size, scale, flip_p):
    from torchvision.transforms import v2 as T

    from anycl.adapters.image_augment import CropFlip, apply_seeded

    steps = [T.RandomResizedCrop(size, scale=scale, ratio=(3 / 4, 4 / 3), antialias=True)]
    if flip_p > 0:
        steps.append(T.RandomHorizontalFlip(flip_p))
    reference = T.Compose(steps)
    ours = CropFlip(size, scale, (3 / 4, 4 / 3), flip_p)
    image = torch.randint(0, 256, shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(3))
    g1, g2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    before = torch.get_rng_state()
    for _ in range(60):
        assert torch.equal(apply_seeded(reference, image, g1), apply_seeded(ours, image, g2))
    assert torch.equal(g1.get_state(), g2.get_state())  # one seed drawn per view, as before
    assert torch.equal(torch.get_rng_state(), before)  # torch's own generator untouched


def test_the_image_adapter_crops_with_crop_flip_when_colour_runs_batched():
    from anycl.adapters.image_augment import CropFlip

    assert isinstance(ImageAdapter(preset="small")._train_tf, CropFlip)
    assert not isinstance(ImageAdapter(preset="small", augment_on="item")._train_tf, CropFlip)


# -- log-mels without the complex modulus -----------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(5, 16000), (2, 3, 8000), (12345,)])
def test_power_mel_gives_torchaudios_mel_spectrogram(shape):
    import torchaudio

    from anycl.adapters.audio_mel import PowerMel

    a = AudioAdapter()
    reference = torchaudio.transforms.MelSpectrogram(
        sample_rate=16000, n_fft=a.n_fft, win_length=a.win_length, hop_length=a.hop_length, f_min=50.0, n_mels=64
    )
    assert isinstance(a.mel(torch.device("cpu")), PowerMel)
    wave = 0.3 * torch.randn(shape, generator=torch.Generator().manual_seed(0))
    ours, theirs = a.mel(torch.device("cpu"))(wave), reference(wave)
    assert ours.shape == theirs.shape
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-9)
    torch.testing.assert_close(a.log_mel(wave), torch.log(theirs + 1e-6).unsqueeze(-3), rtol=1e-5, atol=1e-5)


def test_power_mel_leaves_other_spectrograms_to_torchaudio():
    import torchaudio

    from anycl.adapters.audio_mel import PowerMel

    magnitude = torchaudio.transforms.MelSpectrogram(sample_rate=16000, n_fft=400, n_mels=40, power=1.0)
    wave = torch.randn(2, 4000, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(PowerMel(magnitude)(wave), magnitude(wave))
