"""Images: crop-based contrastive pretraining (SimCLR family) and image towers for cross-modal models.

Pipeline of one item: :func:`~anycl.adapters.image_io.decode` (path / bytes / PIL / numpy / tensor /
HF ``Image`` dict → uint8 (C, H, W)) → ``augment`` (a random view from
:mod:`~anycl.adapters.image_augment`, all randomness from the handed ``torch.Generator``) or
``eval_view`` (resize + centre crop, deterministic) → ``collate`` (uint8 (B, C, S, S), 4× smaller to
move than floats) → ``prepare`` on the training device (float, scaled to [0, 1], normalised by
``mean``/``std``).

Options (``fit(..., adapter_options={...})``):
    preset: ``"simclr"`` (224 px, ImageNet recipe; the default) or ``"small"`` (32 px, no blur, crop
        scale (0.2, 1)) — see :data:`~anycl.adapters.image_augment.PRESETS`.
    size and any other :class:`~anycl.adapters.image_augment.AugmentConfig` field: overrides.
    mode: ``"RGB"`` (default) or ``"L"`` (one grey channel).
    mean, std: per-channel normalisation (default ImageNet's; one value each in mode L).
    background: RGB colour transparent pixels are composited over (default white).
    cache_mb: decoded images of files kept in memory (by path, size and mtime) so that an epoch after the first
        does not decode them again (:mod:`~anycl.adapters.item_cache`; default 1024 MiB of uint8 pixels, 0 =
        off); once full, the kept images stay and the others are decoded at each read.
    max_pixels: the largest image (width × height, read from the file's header before decoding) a file or
        bytes may hold (default 8192 × 8192 = 67,108,864); a larger one is a DataError naming it.
    local_crops, local_size, local_scale: multi-crop (:meth:`ImageAdapter.multi_crop`); ``local_size`` and
        ``local_scale`` also shape the local views of ``fit(..., local_views=L)`` (:meth:`ImageAdapter.local_view`).
    augment_on: ``"batch"`` (default): crop and flip per image in ``augment``, the colour ops (jitter,
        greyscale, blur, solarisation) batched on the device in ``prepare``
        (:mod:`~anycl.adapters.image_batched`); ``"item"``: every op per image with torchvision v2.
        Same distribution; ``"batch"`` is several times faster on small images.

A named backbone (``fit(..., model="torchvision/resnet50")``, ``"timm/<name>"``, a Hugging Face vision model:
:mod:`~anycl.adapters.image_pretrained`) brings its own ``mean``, ``std``, ``size`` and ``eval_resize``, taken
where the options above leave them unset (:meth:`ImageAdapter.attach`).

Self-supervised rows (only ``anchor``) get two random views of each image; given pairs
(anchor/positive) are each augmented once. The views and their batch (``augment``, ``eval_view``, ``local_view``,
``multi_crop``, ``from_view``, ``collate``, ``prepare``) are :mod:`~anycl.adapters.image_views`' (a base class);
``load`` and its cache of decoded files, ``key``, ``scan``, ``data_options`` and ``preview`` are
:mod:`~anycl.adapters.image_load`'s (another).
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from typing import Any, Dict, Optional, Sequence

import torch
from torch import nn

from anycl.errors import ConfigError, DataError, unknown_options

from .base import Adapter
from .image_augment import FIELDS, config_dict, describe_augment, make_config
from .image_cnn import small_cnn
from .image_encoders import resnet, wrap_encoder
from .image_io import IMAGE_EXTENSIONS, MAX_PIXELS, is_image_like
from .image_load import SMALL_IMAGE, ImageLoading  # noqa: F401  (SMALL_IMAGE: importable here)
from .image_pretrained import KIND as BACKBONE
from .image_pretrained import ImageBackbone, open_backbone
from .image_pretrained import load_saved as load_backbone
from .image_pretrained import save as save_backbone
from .image_views import ImageViews
from .item_cache import DecodedCache, check_size
from .registry import register

log = logging.getLogger("anycl")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CACHE_MB = 1024.0  # decoded images kept in memory across epochs (adapter option cache_mb)


@register("image")
class ImageAdapter(ImageLoading, ImageViews, Adapter):
    """Images in, normalised (B, C, size, size) float tensors out. See the module docstring for options."""

    modality = "image"
    file_extensions = IMAGE_EXTENSIONS
    pipeline_tag = "image-feature-extraction"
    onnx_input_name = "pixels"  # uint8 (batch, channels, size, size): the eval view's centre crop
    default_loss = "infonce"
    default_loss_options = {"temperature": 0.2, "symmetric": True}
    fit_defaults = {"batch_size": 256, "lr": 1e-3, "head": "mlp"}
    # a named backbone (model=) is fine-tuned: a learning rate that keeps what it learnt, a batch its size allows
    pretrained_fit_defaults = {"batch_size": 64, "lr": 1e-4}
    export_formats = ("torchvision", "timm", "transformers")  # a named backbone's own (anycl.export.to_backbone)
    estimates_memory = True  # fit estimates a step's memory before training (anycl.fitting.memory)

    def __init__(
        self,
        preset: str = "simclr",
        mode: str = "RGB",
        mean: Optional[Sequence[float]] = None,
        std: Optional[Sequence[float]] = None,
        background: Sequence[int] = (255, 255, 255),
        local_crops: int = 0,
        local_size: Optional[int] = None,
        local_scale: Sequence[float] = (0.05, 0.4),
        augment_on: str = "batch",
        max_pixels: int = MAX_PIXELS,
        cache_mb: float = CACHE_MB,
        **augment_options,
    ):
        if augment_on not in ("batch", "item"):
            raise ConfigError(f"augment_on must be 'batch' or 'item', got {augment_on!r}")
        if mode not in ("RGB", "L"):
            raise ConfigError(f"image mode must be 'RGB' or 'L', got {mode!r}")
        unknown = sorted(set(augment_options) - set(FIELDS))
        if unknown:
            own = ["preset", "mode", "mean", "std", "background", "local_crops", "local_size", "local_scale"]
            raise unknown_options("image adapter", unknown, own + ["augment_on", "max_pixels", "cache_mb", *FIELDS])
        self.aug = make_config(preset, **augment_options)
        channels = 3 if mode == "RGB" else 1
        given_mean, given_std = mean, std
        if mean is None:
            mean = IMAGENET_MEAN if channels == 3 else (0.449,)
        if std is None:
            std = IMAGENET_STD if channels == 3 else (0.226,)
        mean, std = [float(x) for x in mean], [float(x) for x in std]
        if len(mean) != channels or len(std) != channels:
            raise ConfigError(f"mean and std need {channels} value(s) each in mode {mode!r}, got {mean} and {std}")
        if any(s <= 0 for s in std):
            raise ConfigError(f"std values must be > 0, got {std}")
        if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels < 1:
            raise ConfigError(f"image adapter option max_pixels must be a positive integer, got {max_pixels!r}")
        check_size("image adapter", "cache_mb", cache_mb)
        super().__init__(
            preset=preset,
            mode=mode,
            mean=mean,
            std=std,
            background=[int(x) for x in background],
            local_crops=int(local_crops),
            local_size=local_size,
            local_scale=list(local_scale),
            augment_on=augment_on,
            **({"max_pixels": max_pixels} if max_pixels != MAX_PIXELS else {}),  # recorded when not the default
            **({"cache_mb": cache_mb} if cache_mb != CACHE_MB else {}),
            **{k: (list(v) if isinstance(v, tuple) else v) for k, v in augment_options.items()},
        )
        self.mode, self.channels = mode, channels
        self.mean, self.std = mean, std
        self.background = tuple(int(x) for x in background)
        self.local_crops, self.local_scale = int(local_crops), tuple(local_scale)
        self.augment_on = augment_on
        self.max_pixels = max_pixels
        # what the user set (a named backbone's own recipe fills in the rest: attach)
        self._given = {k for k, v in (("mean", given_mean), ("std", given_std)) if v is not None}
        self._given |= {k for k in ("size", "eval_resize") if augment_options.get(k) is not None}
        self._set_views(self.aug)
        self._warned_small = False
        self._cache = DecodedCache(cache_mb)

    # ---- one item -----------------------------------------------------------------------------
    def validate(self, item: Any, where: str) -> None:
        """Type check only (no decoding): unreadable files are found by ``load`` so they can be skipped."""
        super().validate(item, where)
        if not is_image_like(item):
            raise DataError(
                f"{where} is a {type(item).__name__}; modality 'image' takes file paths, bytes, PIL images, "
                f"numpy arrays (H, W[, C]), tensors (C, H, W) or {{'bytes', 'path'}} dicts"
            )

    def recipe(self) -> Dict[str, str]:
        """The crop (its size and the preset) and the augmentations, for the run's recipe line."""
        return {"crop": f"{self.size} px (preset {self.options['preset']!r})", "augment": describe_augment(self.aug)}

    # ---- encoders -------------------------------------------------------------------------------
    def default_encoder(
        self,
        arch: Optional[str] = None,
        small_stem: Optional[bool] = None,
        width: Optional[int] = None,
        model: Optional[nn.Module] = None,
        in_channels: Optional[int] = None,
        grid: Optional[int] = None,
        pretrained: Optional[bool] = None,
    ) -> nn.Module:
        """A random-init torchvision ResNet (``arch`` in resnet10/18/34/50), the wide shallow ``"cnn"``
        for small images (:mod:`~anycl.adapters.image_cnn`), ``model`` wrapped (an nn.Module), or the backbone
        ``model`` names (``"torchvision/<arch>"``, ``"timm/<name>"``, a Hugging Face vision model's id or folder;
        :mod:`~anycl.adapters.image_pretrained`), with its pretrained weights unless ``pretrained=False``.

        ``arch=None``: ``"cnn"`` with the ``"small"`` preset (unless ``small_stem`` is given: that is a
        ResNet option), else ``"resnet18"``.

        ``width``: a ResNet's first-stage channels (default 64) or the CNN's (default 32). ``small_stem``
        (ResNets only) defaults to True for images of 64 px or less (3×3 stride-1 stem, no max-pool).
        ``grid`` (the CNN only, default 4): its output is an average pool to grid × grid cells, flattened.
        """
        if isinstance(model, (str, os.PathLike)):
            own = [k for k, v in (("arch", arch), ("small_stem", small_stem), ("width", width), ("grid", grid)) if v]
            if own or in_channels not in (None, 3):
                raise ConfigError(
                    f"encoder_options {own or ['in_channels']} shape anycl's own encoders; a named backbone "
                    f"(model={os.fspath(model)!r}) takes only pretrained (true or false)"
                )
            return open_backbone(model, pretrained=True if pretrained is None else pretrained)
        if pretrained is not None:
            raise ConfigError(
                "encoder_options pretrained applies to a named backbone (model='torchvision/resnet18', "
                "'timm/<name>' or a Hugging Face vision model); anycl's own encoders start from scratch"
            )
        if model is not None:
            return wrap_encoder(model)
        if in_channels is not None and int(in_channels) != self.channels:
            raise ConfigError(
                f"this encoder takes {in_channels} channel(s) but the adapter's mode {self.mode!r} "
                f"gives {self.channels}"
            )
        if arch is None:
            arch = "cnn" if self.options["preset"] == "small" and small_stem is None else "resnet18"
        if arch == "cnn":
            if small_stem is not None:
                raise ConfigError("small_stem is a ResNet option; the 'cnn' encoder has no stem to choose")
            return small_cnn(
                width=32 if width is None else width, grid=4 if grid is None else grid, in_channels=self.channels
            )
        if grid is not None:
            raise ConfigError(f"grid is an option of the 'cnn' encoder, not of {arch!r}")
        if small_stem is None:
            small_stem = self.size <= 64
        return resnet(arch, small_stem=small_stem, width=64 if width is None else width, in_channels=self.channels)

    def attach(self, encoder: nn.Module) -> None:
        """A named backbone brings its own normalisation, crop size and evaluation resize, taken unless set."""
        if not isinstance(encoder, ImageBackbone):
            return
        what = f"the {encoder.family} backbone {encoder.name!r}"
        if self.channels != 3:
            raise ConfigError(f"{what} takes RGB images, but the image adapter's mode is {self.mode!r}; leave mode out")
        r = encoder.recipe
        for key, value in (("mean", r.mean), ("std", r.std)):
            if key not in self._given:
                self.options[key] = [float(v) for v in value]
                setattr(self, key, list(self.options[key]))
        own: Dict[str, Any] = {
            k: v for k, v in (("size", r.size), ("eval_resize", r.eval_resize)) if k not in self._given
        }
        if own:
            self.options.update(own)
            self._set_views(replace(self.aug, **own))
        if r.fixed_size and self.size != r.size:
            raise ConfigError(
                f"{what} takes {r.size} px images only (its position embeddings), but size={self.size}; leave size "
                f"out (the backbone's own is used) or set size={r.size}"
            )

    def save_encoder(self, encoder: nn.Module, directory: str) -> Dict[str, Any]:
        if isinstance(encoder, ImageBackbone):  # model.safetensors (+ a transformers model's config files)
            return save_backbone(encoder, directory)
        return super().save_encoder(encoder, directory)

    def load_encoder(self, spec: Dict[str, Any], directory: str) -> nn.Module:
        if spec.get("kind") == BACKBONE:
            return load_backbone(spec, directory)
        return super().load_encoder(spec, directory)

    def embedding_dim(self, encoder: nn.Module) -> Optional[int]:
        """The encoder's ``embedding_dim``, else measured with one blank image in eval mode."""
        dim = getattr(encoder, "embedding_dim", None)
        if dim is not None:
            return int(dim)
        was = encoder.training
        try:
            encoder.eval()
            dev = next((p.device for p in encoder.parameters()), torch.device("cpu"))
            with torch.no_grad():
                out = encoder(torch.zeros(1, self.channels, self.size, self.size, device=dev))
        except Exception as exc:  # noqa: BLE001 - report what the probe did
            raise ConfigError(
                f"could not find the image encoder's output width: set encoder.embedding_dim (a forward pass "
                f"on a {self.size}px image failed: {exc})"
            ) from exc
        finally:
            encoder.train(was)
        if out.dim() != 2:
            raise ConfigError(
                f"the image encoder returns shape {tuple(out.shape)} for one image; it must return (batch, dim) "
                f"(wrap it with anycl.adapters.image_encoders.wrap_encoder or pool its output)"
            )
        return int(out.shape[1])

    def augment_config(self) -> Dict[str, Any]:
        """The resolved augmentation recipe (preset + overrides)."""
        return config_dict(self.aug)
