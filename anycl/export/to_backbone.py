"""An image tower built from a named backbone (``fit(..., model="torchvision/resnet50")``,
:mod:`anycl.adapters.image_pretrained`) written back in its library's own format:

- ``"torchvision"``: a state-dict file (``.safetensors``, or ``.pth`` / ``.pt`` written with ``torch.save`` of a
  plain dict of tensors, which ``torch.load(weights_only=True)`` reads) that
  ``torchvision.models.<arch>().load_state_dict(state, strict=False)`` takes; the only keys it reports missing are
  those of the classifier layer anycl removed (``fc.weight`` and ``fc.bias`` for a ResNet; the spec's
  ``removed_head``). Replace that layer by ``nn.Identity()`` for the features ``model.encode`` gives.
- ``"timm"``: a checkpoint file (``.safetensors`` or ``.pth``) of the model without its classifier:
  ``timm.create_model(name, num_classes=0, checkpoint_path=path)`` (or ``pretrained=True,
  pretrained_cfg_overlay=dict(file=path), num_classes=0``) gives the features ``model.encode`` gives.
- ``"transformers"``: a ``save_pretrained`` folder (``config.json``, ``model.safetensors`` and the checkpoint's
  ``preprocessor_config.json`` when it had one): ``AutoModel.from_pretrained(path)``; ViT and DINOv2 features are
  ``last_hidden_state[:, 0]``, CLIP's ``pooler_output`` (``CLIPVisionModel``).

Each export holds the backbone only: ``model.encode`` of a one-modality image model is the backbone's features
(the projection head trains and is left out), so the export gives what ``encode(..., normalize=False)`` gives.
A tower that encodes through a head (a model of several towers) is exported without it, said in the log.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Optional

import safetensors.torch  # its functions looked up when called (tests stand in for them)
import torch

from anycl.adapters.image_pretrained import PREPROCESSOR, ImageBackbone, library_state
from anycl.errors import ConfigError
from anycl.files import check_export_folder
from anycl.progress import quiet_library_bars

from .registry import register
from .to_sentence_transformers import merged_copy

log = logging.getLogger("anycl")

STATE_SUFFIXES = (".safetensors", ".pth", ".pt")


def _backbone(model, family: str, modality: Optional[str]) -> ImageBackbone:
    tower = model.tower(modality or model.sides.get("anchor", "image"))
    enc = tower.encoder
    if not isinstance(enc, ImageBackbone):
        raise ConfigError(
            f"the {tower.modality!r} tower is not a named backbone; only a tower built with model='torchvision/...', "
            f"'timm/...' or a transformers vision model exports to the {family!r} format (ONNX exports any tower)"
        )
    if enc.family != family:
        raise ConfigError(
            f"the {tower.modality!r} tower is the {enc.family} backbone {enc.name!r}; export it as {enc.family!r}"
        )
    if tower.head is not None and tower.encode_with_head:
        log.info("the %s export holds the backbone without anycl's projection head (which encode uses)", family)
    if getattr(tower, "lora", None) is not None:  # an unmerged LoRA adapter: the export holds it merged
        enc = merged_copy(enc)
    return enc


def _write_state(enc: ImageBackbone, path: str, overwrite: bool, family: str) -> str:
    p = Path(os.fspath(path))
    if p.suffix not in STATE_SUFFIXES:
        raise ConfigError(f"the {family} export is a weights file: name it *.safetensors or *.pth, got {str(p)!r}")
    if p.is_dir() or (p.exists() and not overwrite):
        raise FileExistsError(f"{str(p)!r} exists; pass overwrite=True to replace it, or give a new file name")
    p.parent.mkdir(parents=True, exist_ok=True)
    state = library_state(enc)
    if p.suffix == ".safetensors":
        safetensors.torch.save_file(state, str(p))
    else:
        torch.save(state, str(p))
    return str(p)


@register("torchvision")
def export_torchvision(model, path: str, modality: Optional[str] = None, overwrite: bool = False) -> str:
    """The torchvision backbone's state dict at ``path`` (a file; see the module docstring)."""
    return _write_state(_backbone(model, "torchvision", modality), path, overwrite, "torchvision")


@register("timm")
def export_timm(model, path: str, modality: Optional[str] = None, overwrite: bool = False) -> str:
    """The timm backbone's checkpoint at ``path`` (a file; see the module docstring)."""
    return _write_state(_backbone(model, "timm", modality), path, overwrite, "timm")


@register("transformers")
def export_transformers(model, path: str, modality: Optional[str] = None, overwrite: bool = False) -> str:
    """The transformers backbone as a ``save_pretrained`` folder at ``path``; a folder that is not empty is
    refused unless ``overwrite=True``."""
    enc = _backbone(model, "transformers", modality)
    check_export_folder(path, overwrite, "the transformers export")
    os.makedirs(path, exist_ok=True)
    hf: Any = enc.model  # a transformers PreTrainedModel
    with quiet_library_bars():
        hf.save_pretrained(str(path), safe_serialization=True)
    if enc.processor:
        (Path(path) / PREPROCESSOR).write_text(json.dumps(enc.processor, indent=2))
    return str(path)
