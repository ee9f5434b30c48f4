"""Audio augmentations: waveform views per item, spectrogram augmentations batched on the device.

Every random draw comes from the ``torch.Generator`` passed in, so a seed reproduces a view exactly.

Waveform (per item, on CPU, in ``AudioAdapter.augment``), in this order:

- **segment** (COLA, Saeed et al. 2021): a random window of the clip; the two views of one clip are
  two independent draws, so they are two random segments of it;
- **gain**: a random gain, uniform in ``±gain_db`` dB;
- **noise**: with probability ``noise_p``, white, pink or brown noise (``noise_colors``) at an SNR
  uniform in ``snr_db`` (dB, relative to the clip's RMS);
- **shift**: a circular time shift of up to ``shift`` × the window.

Log-mel spectrogram (batched, on the training device, in ``AudioAdapter.prepare``), in this order
(BYOL-A, Niizumi et al. 2021, then SpecAugment, Park et al. 2019):

- **mixup** with a background bank: each spectrogram is mixed, in the linear power domain, with one
  from a bank of spectrograms of earlier batches, ``log((1-λ)·e^x + λ·e^b)``, λ uniform in [0, mixup];
- **resize-crop**: a random crop of the spectrogram whose frequency and time extents are each
  ``rrc_scale`` (low, high) × the full size (above 1 zooms out, padding with silence), resized back; a dict
  ``{"time": (low, high), "freq": (low, high)}`` gives each axis its own range, an axis left out is not
  scaled (``{"time": (0.6, 1.5)}``: a change of tempo, the pitch and timbre kept);
- **freq_mask** / **time_mask**: ``masks`` masks each of up to ``freq_mask`` mel bins and
  ``time_mask`` frames, filled with the spectrogram's mean. (torchaudio's ``FrequencyMasking`` and
  ``TimeMasking`` draw from the global random generator, which a seed for one batch cannot
  reproduce, so the same masks are drawn here from the given generator.)

The default (``augment=True``) is the random segments, gain, shift and narrow frequency and time masks; noise,
mixup and resize-crop are off (``DEFAULT_AUGMENT``). ``augment="strong"`` switches on noise, mixup and resize-crop
too (``STRONG_AUGMENT``, BYOL-A style); ``augment="content"`` widens the frequency masks (``CONTENT_AUGMENT``: for
classes that do not depend on the voice, such as words across speakers); a dict updates a preset
(``{"preset": "strong", "mixup": 0.2}``; without ``"preset"``, the default). Set a value to 0 (or ``None``) to switch
one augmentation off; ``augment=False`` switches all off.
"""

from __future__ import annotations

import hashlib
import math
from collections import deque
from typing import Any, Dict, Mapping, Optional, Tuple

import torch
import torch.nn.functional as F

from anycl.errors import ConfigError

# The default: COLA's random segments, a random gain and time shift, and SpecAugment masks of up to 8 mel bins and
# up to 10 frames. Issue 16's dev runs (two sets, benchmarks/results/audio_dev.md) had left every spectrogram
# augmentation off; round 4 of issue 29's four-set protocol (benchmarks/results/audio_protocol.md, 3 seeds) found the
# masks raise the default's worst margin over the targets from -0.059 to -0.027: up on word identity across voices
# and on sound roles, about even on speaker identity. Wider frequency masks (``"content"``), frequency stretching
# (resize-crop), mixup and noise all lowered speaker identity more than they helped elsewhere.
DEFAULT_AUGMENT: Dict[str, Any] = {
    "segment": True,
    "gain_db": 6.0,
    "noise_p": 0.0,
    "snr_db": [10.0, 40.0],
    "noise_colors": ["white", "pink", "brown"],
    "shift": 0.1,
    "mixup": 0.0,
    "bank_size": 512,
    "rrc_scale": 0,
    "freq_mask": 8,
    "time_mask": 10,
    "masks": 1,
}
# ``augment="strong"``: the BYOL-A style recipe (noise, background mixup, resize-crop, SpecAugment masks); the
# default before issue 16's dev runs
STRONG_AUGMENT: Dict[str, Any] = {
    **DEFAULT_AUGMENT,
    "noise_p": 0.5,
    "mixup": 0.4,
    "rrc_scale": [0.6, 1.5],
    "freq_mask": 8,
    "time_mask": 10,
}
# ``augment="content"``: the default with frequency masks twice as wide (up to 16 of 64 mel bins). Round 4 of issue
# 29's protocol (benchmarks/results/audio_protocol.md): on word identity across voices (espeak-words) it lifts kNN
# above the default's on dev and test; on sound roles it did on dev but not on test; on speaker identity
# (hedgewars-voices) it costs more than the default: it teaches invariance to the spectral detail that tells voices
# apart. For classes that should not depend on who says them; not the default.
CONTENT_AUGMENT: Dict[str, Any] = {**DEFAULT_AUGMENT, "freq_mask": 16}
OFF = {k: (False if k == "segment" else 0) for k in DEFAULT_AUGMENT if k not in ("snr_db", "noise_colors", "bank_size")}
PRESETS: Dict[str, Dict[str, Any]] = {
    "default": DEFAULT_AUGMENT,
    "strong": STRONG_AUGMENT,
    "content": CONTENT_AUGMENT,
    "none": {**DEFAULT_AUGMENT, **OFF},
}
# the augmentations of the log-mel spectrogram (not of the waveform): a pretrained encoder has no log-mels
SPECTROGRAM_AUGMENTS = ("mixup", "rrc_scale", "freq_mask", "time_mask")
NOISE_EXPONENTS = {"white": 0.0, "pink": 1.0, "brown": 2.0, "blue": -1.0, "violet": -2.0}


def augment_config(augment: Any) -> Dict[str, Any]:
    """Resolve the ``augment`` option: ``True``/``None``/``"default"`` → the defaults, ``False``/``"none"`` → none,
    ``"strong"`` → the BYOL-A style recipe, a dict → a preset (its ``"preset"`` key, default ``"default"``)
    updated with the dict's settings (unknown keys are an error)."""
    if augment is None or augment is True:
        augment = "default"
    if augment is False:
        augment = "none"
    if isinstance(augment, str):
        augment = {"preset": augment}
    if not isinstance(augment, Mapping):
        raise ConfigError(
            f"augment must be True, False, a preset name ({', '.join(PRESETS)}) or a dict of settings, got {augment!r}"
        )
    settings = dict(augment)
    preset = settings.pop("preset", "default")
    if preset not in PRESETS:
        raise ConfigError(f"unknown audio augmentation preset {preset!r}; presets: {', '.join(PRESETS)}")
    unknown = sorted(set(settings) - set(DEFAULT_AUGMENT))
    if unknown:
        raise ConfigError(
            f"unknown audio augmentation setting(s) {unknown}; valid: preset, {', '.join(DEFAULT_AUGMENT)}"
        )
    base = PRESETS[preset]
    cfg = {**base, **settings}
    for k, v in list(cfg.items()):
        if v is None:
            cfg[k] = OFF.get(k, base[k])
    bad = [c for c in cfg["noise_colors"] if c not in NOISE_EXPONENTS]
    if bad:
        raise ConfigError(f"unknown noise colour(s) {bad}; valid: {', '.join(NOISE_EXPONENTS)}")
    for k in ("noise_p", "mixup"):
        v = float(cfg[k])
        if not 0 <= v <= 1 or math.isnan(v):
            raise ConfigError(f"augment {k!r} must be in [0, 1], got {cfg[k]!r}")
    if cfg["rrc_scale"]:
        rrc_extents(cfg["rrc_scale"])  # checked here, not at the first batch
    return cfg


def _extent_range(value: Any, where: str) -> Tuple[float, float]:
    ok = isinstance(value, (list, tuple)) and len(value) == 2
    ok = ok and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    if not ok or not all(0 < float(v) < math.inf for v in value) or float(value[0]) > float(value[1]):
        raise ConfigError(f"augment {where} must be a (low, high) pair of positive numbers, low <= high, got {value!r}")
    return float(value[0]), float(value[1])


def rrc_extents(scale: Any) -> Tuple[Tuple[float, float], Tuple[float, float]]:
    """``rrc_scale`` as ((time low, high), (freq low, high)): a (low, high) pair is both axes' range; a dict with
    ``"time"`` and/or ``"freq"`` gives each its own, an axis left out keeps its extent (1, 1)."""
    if isinstance(scale, Mapping):
        unknown = sorted(set(scale) - {"time", "freq"})
        if unknown or not scale:
            raise ConfigError(f"augment 'rrc_scale' as a dict takes the keys 'time' and 'freq', got {dict(scale)!r}")
        time = _extent_range(scale["time"], "'rrc_scale' time") if "time" in scale else (1.0, 1.0)
        freq = _extent_range(scale["freq"], "'rrc_scale' freq") if "freq" in scale else (1.0, 1.0)
        return time, freq
    both = _extent_range(scale, "'rrc_scale'")
    return both, both


def named_settings(augment: Any) -> set:
    """The settings a user's ``augment`` option names: a dict's keys, and the settings a named preset other than
    the default changes from the default (``"strong"`` names its noise, mixup and resize-crop). What the default
    preset brings is not named: a pretrained encoder drops the default's log-mel masks but refuses named ones."""
    if isinstance(augment, str):
        preset, given = augment, {}
    elif isinstance(augment, Mapping):
        given = dict(augment)
        preset = given.pop("preset", "default")
    else:  # True, False, None
        return set()
    base = PRESETS.get(preset, DEFAULT_AUGMENT)
    changed = set() if preset in ("default", "none") else {k for k in base if base[k] != DEFAULT_AUGMENT[k]}
    return set(given) | changed


def describe_augment(cfg: Mapping[str, Any], spectrogram: bool = True) -> str:
    """The augmentations a resolved config (:func:`augment_config`) switches on, in words (for the run's recipe
    line); ``spectrogram=False`` (a pretrained encoder, no log-mels) leaves out :data:`SPECTROGRAM_AUGMENTS`."""
    said = []
    if cfg["segment"]:
        said.append("random window")
    if cfg["gain_db"]:
        said.append(f"gain ±{float(cfg['gain_db']):g} dB")
    if cfg["noise_p"]:
        said.append(f"noise p={float(cfg['noise_p']):g}")
    if cfg["shift"]:
        said.append(f"shift {float(cfg['shift']):g}")
    if spectrogram:
        if cfg["mixup"]:
            said.append(f"mixup {float(cfg['mixup']):g}")
        if cfg["rrc_scale"]:
            said.append("resize-crop")
        if cfg["freq_mask"] or cfg["time_mask"]:
            said.append("masks")
    return ", ".join(said) or "none"


def _uniform(generator: Optional[torch.Generator], low: float, high: float, shape=(), device=None) -> torch.Tensor:
    return low + (high - low) * torch.rand(shape, generator=generator, device=device)


# -- waveform ------------------------------------------------------------------------------------------
def segment_start(total: int, length: int, generator: torch.Generator) -> int:
    """The start of a random window of ``length`` samples in a clip of ``total`` samples."""
    extra = total - length
    return int(torch.randint(extra + 1, (1,), generator=generator)) if extra > 0 else 0


def random_segment(wave: torch.Tensor, length: int, generator: torch.Generator) -> torch.Tensor:
    """A random window of ``length`` samples (the clip must be at least that long)."""
    start = segment_start(wave.shape[-1], length, generator)
    return wave[..., start : start + length]


def coloured_noise(n: int, exponent: float, generator: torch.Generator) -> torch.Tensor:
    """Gaussian noise of ``n`` samples with power spectrum ∝ 1/f^exponent, scaled to unit RMS."""
    white = torch.randn(n, generator=generator)
    if exponent != 0:
        spec = torch.fft.rfft(white)
        f = torch.arange(spec.shape[0], dtype=torch.float32)
        f[0] = 1.0
        spec = spec / f.pow(exponent / 2)
        spec[0] = 0
        white = torch.fft.irfft(spec, n)
    return white / white.pow(2).mean().sqrt().clamp_min(1e-12)


def add_noise(wave: torch.Tensor, snr_db: float, exponent: float, generator: torch.Generator) -> torch.Tensor:
    """``wave`` + noise whose RMS is the clip's RMS divided by 10^(snr_db/20); silence stays silent."""
    rms = wave.pow(2).mean().sqrt()
    if rms <= 0:
        return wave
    noise = coloured_noise(wave.shape[-1], exponent, generator)
    return wave + noise * (rms / 10 ** (snr_db / 20))


def waveform_view(wave: torch.Tensor, cfg: Mapping[str, Any], generator: torch.Generator) -> torch.Tensor:
    """Gain, noise and shift of one window (1-D tensor), drawn from ``generator``."""
    if cfg["gain_db"]:
        g = float(_uniform(generator, -cfg["gain_db"], cfg["gain_db"]))
        wave = wave * 10 ** (g / 20)
    if cfg["noise_p"] and float(torch.rand((), generator=generator)) < cfg["noise_p"]:
        colours = list(cfg["noise_colors"])
        colour = colours[int(torch.randint(len(colours), (1,), generator=generator))]
        lo, hi = cfg["snr_db"]
        wave = add_noise(wave, float(_uniform(generator, lo, hi)), NOISE_EXPONENTS[colour], generator)
    if cfg["shift"]:
        m = int(cfg["shift"] * wave.shape[-1])
        if m > 0:
            wave = torch.roll(wave, int(torch.randint(-m, m + 1, (1,), generator=generator)), dims=-1)
    return wave


# -- spectrogram -----------------------------------------------------------------------------------------
def resize_crop(x: torch.Tensor, scale, generator: Optional[torch.Generator]) -> torch.Tensor:
    """BYOL-A random resize-crop of (N, 1, F, T) log-mels, batched with ``affine_grid``/``grid_sample``.

    For each item, frequency and time extents are drawn from ``scale`` (fractions of the full size: a (low, high)
    pair for both axes, or a dict per axis, :func:`rrc_extents`); the crop's position is uniform; regions outside
    the spectrogram read as the item's minimum (silence).
    """
    n = x.shape[0]
    (t_lo, t_hi), (f_lo, f_hi) = rrc_extents(scale)
    u = torch.rand((n, 2), generator=generator, device=x.device)
    s = torch.stack([t_lo + (t_hi - t_lo) * u[:, 0], f_lo + (f_hi - f_lo) * u[:, 1]], dim=1)  # (time, freq) extents
    t = (torch.rand((n, 2), generator=generator, device=x.device) * 2 - 1) * (1 - s).abs()
    theta = torch.zeros(n, 2, 3, device=x.device, dtype=x.dtype)
    theta[:, 0, 0], theta[:, 1, 1] = s[:, 0], s[:, 1]
    theta[:, 0, 2], theta[:, 1, 2] = t[:, 0], t[:, 1]
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    floor = x.amin(dim=(1, 2, 3), keepdim=True)
    return F.grid_sample(x - floor, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + floor


def masks(x: torch.Tensor, axis: int, width: int, count: int, generator: Optional[torch.Generator]) -> torch.Tensor:
    """SpecAugment: ``count`` masks per item of width uniform in [0, width) along ``axis`` (2 = mel,
    3 = time) of (N, 1, F, T), filled with the item's mean."""
    n, size = x.shape[0], x.shape[axis]
    width = min(int(width), size)
    if width <= 0 or count <= 0:
        return x
    fill = x.mean(dim=(1, 2, 3), keepdim=True)
    pos = torch.arange(size, device=x.device)
    hit = torch.zeros(n, size, dtype=torch.bool, device=x.device)
    for _ in range(int(count)):
        w = (torch.rand(n, generator=generator, device=x.device) * width).long()
        start = (torch.rand(n, generator=generator, device=x.device) * (size - w + 1)).long()
        hit |= (pos[None] >= start[:, None]) & (pos[None] < (start + w)[:, None])
    shape = [n, 1, 1, 1]
    shape[axis] = size
    return torch.where(hit.view(shape), fill, x)


class MixupBank:
    """BYOL-A background mixup with a FIFO bank of earlier spectrograms (on the training device).

    Replay-safe: within one batch (one generator seed) the bank is read as it was when the batch
    began, and what a call adds is keyed by the generator state it started from, so a replayed call
    (GradCache's second pass restores the generator) reads and adds exactly what the first did. A batch's
    spectrograms join the bank when the next batch arrives. With an empty bank (the first batch) each
    item is mixed with another item of its own batch.
    """

    def __init__(self, size: int):
        self.size = int(size)
        self.bank: deque = deque(maxlen=max(self.size, 1))
        self._batch = None
        self._pending: Dict[bytes, torch.Tensor] = {}
        self._shape: Optional[torch.Size] = None

    def _commit(self, batch_id) -> None:
        if batch_id != self._batch:
            for x in self._pending.values():
                self.bank.extend(x.unbind(0))
            self._pending = {}
            self._batch = batch_id

    def __call__(self, x: torch.Tensor, ratio: float, generator: Optional[torch.Generator]) -> torch.Tensor:
        n = x.shape[0]
        key = None
        if generator is not None:
            self._commit(generator.initial_seed())
            key = hashlib.blake2b(generator.get_state().cpu().numpy().tobytes(), digest_size=16).digest()
        lam = _uniform(generator, 0.0, ratio, (n, 1, 1, 1), device=x.device)
        if self.bank and self.bank[0].shape == x.shape[1:]:
            idx = torch.randint(len(self.bank), (n,), generator=generator, device=x.device).tolist()
            partner = torch.stack([self.bank[i] for i in idx]).to(x.device, x.dtype)
        else:
            shift = int(torch.randint(1, max(n, 2), (1,), generator=generator, device=x.device)) if n > 1 else 0
            partner = x.roll(shift, dims=0)
        # one shape in the bank: the first one it gets (local views of another length mix within their batch)
        if key is not None and self.size > 0 and (self._shape is None or self._shape == x.shape[1:]):
            self._shape = x.shape[1:]
            self._pending[key] = x.detach()[: self.size]
        return torch.logaddexp(x + torch.log1p(-lam), partner + torch.log(lam.clamp_min(1e-12)))


def spectrogram_view(
    x: torch.Tensor, cfg: Mapping[str, Any], generator: Optional[torch.Generator], bank: Optional[MixupBank]
) -> torch.Tensor:
    """Mixup, resize-crop and masks of a batch of (N, 1, F, T) log-mels, drawn from ``generator``."""
    if cfg["mixup"] and bank is not None:
        x = bank(x, float(cfg["mixup"]), generator)
    if cfg["rrc_scale"]:
        x = resize_crop(x, cfg["rrc_scale"], generator)
    if cfg["freq_mask"]:
        x = masks(x, 2, cfg["freq_mask"], cfg["masks"], generator)
    if cfg["time_mask"]:
        x = masks(x, 3, cfg["time_mask"], cfg["masks"], generator)
    return x
