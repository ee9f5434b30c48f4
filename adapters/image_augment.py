"""Image augmentations (``torchvision.transforms.v2``) with the SimCLR recipe, and seeded application.

Presets (every field can be overridden through the image adapter's options):

- ``"simclr"`` — Chen et al. 2020 for ImageNet-size images: random resized crop to 224 px with scale
  (0.08, 1), horizontal flip, colour jitter (0.8, 0.8, 0.8, 0.2) applied with p = 0.8, greyscale
  p = 0.2, Gaussian blur (kernel ≈ 10 % of the size, sigma 0.1–2) with p = 0.5, no solarisation.
- ``"small"`` — for 28–64 px images (CIFAR, Fashion-MNIST): crop to 32 px with scale (0.2, 1), weaker
  jitter (0.4, 0.4, 0.4, 0.1), no blur (a blur erases what little detail a tiny image has).

v2 transforms draw from torch's *global* generator. :func:`apply_seeded` makes them draw from the
generator the adapter is handed instead: it takes one 62-bit seed from that generator, forks the
global CPU RNG state, seeds it, runs the transform and restores the state, so the caller's global RNG
is untouched and a view depends only on the handed generator.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Dict, Optional, Tuple

import torch

from anycl.errors import ConfigError


@dataclass(frozen=True)
class AugmentConfig:
    """One augmentation recipe. Probabilities are per view; ``size`` is the output side in pixels."""

    size: int = 224
    scale: Tuple[float, float] = (0.08, 1.0)
    ratio: Tuple[float, float] = (3 / 4, 4 / 3)
    flip_p: float = 0.5
    jitter: Tuple[float, float, float, float] = (0.8, 0.8, 0.8, 0.2)  # brightness, contrast, saturation, hue
    jitter_p: float = 0.8
    grayscale_p: float = 0.2
    blur_p: float = 0.5
    blur_sigma: Tuple[float, float] = (0.1, 2.0)
    blur_kernel: Optional[int] = None  # None: about 10 % of size, odd
    solarize_p: float = 0.0
    solarize_threshold: float = 0.5  # fraction of the maximum (128 for uint8)
    eval_resize: float = 256 / 224  # evaluation: resize the short side to size × this, then centre-crop


PRESETS: Dict[str, AugmentConfig] = {
    "simclr": AugmentConfig(),
    "small": AugmentConfig(size=32, scale=(0.2, 1.0), jitter=(0.4, 0.4, 0.4, 0.1), blur_p=0.0, eval_resize=1.0),
}

FIELDS = tuple(f.name for f in fields(AugmentConfig))


def make_config(preset: str = "simclr", **overrides) -> AugmentConfig:
    """A preset with fields replaced; unknown presets or fields raise ConfigError listing the valid ones."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown image augmentation preset {preset!r}; presets: {sorted(PRESETS)}")
    unknown = sorted(set(overrides) - set(FIELDS))
    if unknown:
        raise ConfigError(f"unknown augmentation option(s) {unknown}; valid: {', '.join(FIELDS)}")
    clean: Dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items() if v is not None}
    cfg = replace(PRESETS[preset], **clean)
    if cfg.size < 1:
        raise ConfigError(f"image size must be >= 1 pixel, got {cfg.size}")
    for name in ("flip_p", "jitter_p", "grayscale_p", "blur_p", "solarize_p"):
        p = getattr(cfg, name)
        if not 0.0 <= p <= 1.0:
            raise ConfigError(f"{name} is a probability in [0, 1], got {p}")
    if not (0 < cfg.scale[0] <= cfg.scale[1] <= 1):
        raise ConfigError(f"scale must satisfy 0 < min <= max <= 1, got {cfg.scale}")
    return cfg


def describe_augment(cfg: AugmentConfig) -> str:
    """The augmentations of a recipe in words (for the run's recipe line): the crop's scale, then each random
    op that can happen with its probability."""
    said = [f"crop scale {cfg.scale[0]:g}-{cfg.scale[1]:g}"]
    for name, p in (
        ("flip", cfg.flip_p),
        ("colour jitter", cfg.jitter_p),
        ("greyscale", cfg.grayscale_p),
        ("blur", cfg.blur_p),
        ("solarise", cfg.solarize_p),
    ):
        if p:
            said.append(f"{name} p={p:g}")
    return ", ".join(said)


def config_dict(cfg: AugmentConfig) -> Dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(cfg).items()}


def train_transform(
    cfg: AugmentConfig, channels: int = 3, size: Optional[int] = None, scale=None, geometry_only: bool = False
):
    """The random view transform on a uint8 (C, H, W) tensor → uint8 (C, size, size).

    ``geometry_only``: just the crop and flip (the colour ops then run batched, see image_batched), as a
    :class:`CropFlip` (v2's two transforms, leaner).
    """
    from torchvision.transforms import v2 as T  # lazy: torchvision: slow to import, only for the image pipeline

    size = size or cfg.size
    if geometry_only:
        return CropFlip(size, tuple(scale or cfg.scale), cfg.ratio, cfg.flip_p)
    steps = [T.RandomResizedCrop(size, scale=tuple(scale or cfg.scale), ratio=tuple(cfg.ratio), antialias=True)]
    if cfg.flip_p > 0:
        steps.append(T.RandomHorizontalFlip(cfg.flip_p))
    b, c, s, h = cfg.jitter
    if channels == 1:
        s, h = 0.0, 0.0  # saturation and hue do not exist for grey images
    if cfg.jitter_p > 0 and any((b, c, s, h)):
        steps.append(T.RandomApply([T.ColorJitter(brightness=b, contrast=c, saturation=s, hue=h)], p=cfg.jitter_p))
    if cfg.grayscale_p > 0 and channels == 3:
        steps.append(T.RandomGrayscale(cfg.grayscale_p))
    if cfg.blur_p > 0:
        k = cfg.blur_kernel or max(3, int(0.1 * size) // 2 * 2 + 1)
        steps.append(T.RandomApply([T.GaussianBlur(k, sigma=tuple(cfg.blur_sigma))], p=cfg.blur_p))
    if cfg.solarize_p > 0:
        steps.append(T.RandomSolarize(threshold=cfg.solarize_threshold * 255, p=cfg.solarize_p))
    return T.Compose(steps)


def eval_transform(cfg: AugmentConfig):
    """Deterministic view: resize the short side to ``size × eval_resize``, centre-crop ``size``."""
    from torchvision.transforms import v2 as T  # lazy: torchvision: slow to import, only for the image pipeline

    short = max(cfg.size, int(round(cfg.size * cfg.eval_resize)))
    return T.Compose([T.Resize(short, antialias=True), T.CenterCrop(cfg.size)])


def seed_from(generator: Optional[torch.Generator]) -> int:
    """One 62-bit seed drawn from ``generator`` (a fresh unseeded draw if None)."""
    return int(torch.randint(0, 2**62, (1,), generator=generator))


def apply_seeded(transform, image: torch.Tensor, generator: Optional[torch.Generator]) -> torch.Tensor:
    """Run a v2 transform with all its randomness taken from ``generator`` (see the module docstring)."""
    seed = seed_from(generator)
    if isinstance(transform, CropFlip):  # draws from a generator of its own: no global state to fork
        return transform.seeded(image, seed)
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        return transform(image)


class CropFlip:
    """torchvision v2's ``RandomResizedCrop(size, scale, ratio, antialias=True)`` then
    ``RandomHorizontalFlip(flip_p)`` (none when 0), without v2's per-call machinery (input flattening, checks,
    dispatch): the same random draws in the same order, the same kernels (``resized_crop``, ``horizontal_flip``),
    so :meth:`seeded` gives exactly the view v2's pair gives with the global generator seeded with ``seed``
    (``tests/test_step_profile.py`` checks it, fallback crops included), in about half the time on a small image.
    The draws come from a generator of its own, seeded per view, so no global state is forked."""

    def __init__(self, size: int, scale: Tuple[float, float], ratio: Tuple[float, float], flip_p: float):
        self.size = [int(size), int(size)]
        self.scale = (float(scale[0]), float(scale[1]))
        self.ratio = (float(ratio[0]), float(ratio[1]))
        log_ratio = torch.log(torch.tensor(self.ratio))  # float32, as v2 holds it
        self.log_ratio = (float(log_ratio[0]), float(log_ratio[1]))
        self.flip_p = float(flip_p)
        self._generator = torch.Generator()

    def box(self, height: int, width: int, g: torch.Generator) -> Tuple[int, int, int, int]:
        """(top, left, height, width) of the crop: v2's ``RandomResizedCrop.make_params``, drawing from ``g``."""
        area = height * width
        for _ in range(10):
            target_area = area * torch.empty(1).uniform_(self.scale[0], self.scale[1], generator=g).item()
            aspect = torch.exp(torch.empty(1).uniform_(self.log_ratio[0], self.log_ratio[1], generator=g)).item()
            w = int(round(math.sqrt(target_area * aspect)))
            h = int(round(math.sqrt(target_area / aspect)))
            if 0 < w <= width and 0 < h <= height:
                i = int(torch.randint(0, height - h + 1, size=(1,), generator=g).item())
                j = int(torch.randint(0, width - w + 1, size=(1,), generator=g).item())
                return i, j, h, w
        in_ratio = float(width) / float(height)  # no crop found: the centre one of the nearest ratio
        if in_ratio < min(self.ratio):
            w, h = width, int(round(width / min(self.ratio)))
        elif in_ratio > max(self.ratio):
            h, w = height, int(round(height * max(self.ratio)))
        else:
            w, h = width, height
        return (height - h) // 2, (width - w) // 2, h, w

    def seeded(self, image: torch.Tensor, seed: int) -> torch.Tensor:
        """The view of ``image`` (C, H, W) for ``seed``."""
        from torchvision.transforms.v2 import functional as F  # lazy: torchvision: slow to import, images only

        g = self._generator
        g.manual_seed(seed)
        top, left, h, w = self.box(int(image.shape[-2]), int(image.shape[-1]), g)
        out = F.resized_crop(image, top, left, h, w, self.size, antialias=True)
        if self.flip_p > 0 and float(torch.rand(1, generator=g)) < self.flip_p:
            out = F.horizontal_flip(out)
        return out

    def __call__(self, image: torch.Tensor) -> torch.Tensor:  # as a v2 transform is called: a seed from torch's own
        return self.seeded(image, seed_from(None))
