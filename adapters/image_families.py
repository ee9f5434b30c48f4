"""The image backbone libraries anycl builds by name, each with its own input recipe and its classifier removed
(:mod:`.image_pretrained` opens, saves and rebuilds them).

- **torchvision** (``model="torchvision/<arch>"``): ``torchvision.models.get_model(arch)``; the last linear layer
  of its classifier (``fc``, ``classifier``, ``heads`` or ``head``) becomes ``nn.Identity``, so the embedding is
  what fed it (ResNet: the pooled 512 / 2048 features; ConvNeXt: after its final LayerNorm; ViT: the class token;
  MobileNetV3: the 1024 features after its pre-logits layer). Normalisation and size are those of the arch's
  default weights' ``transforms()`` (resize 256, crop 224 for most).
- **timm** (``model="timm/<name>[.<tag>]"``): ``timm.create_model(name)``, ``reset_classifier(0)``: the embedding is
  timm's pooled pre-logits features (``num_features``); normalisation, size and crop from the model's
  ``pretrained_cfg`` (``timm.data.resolve_model_data_config``).
- **transformers** (a Hub id or a folder: ViT, DINOv2, CLIP's vision tower): ViT and DINOv2 give the class
  token after the final LayerNorm (``last_hidden_state[:, 0]``), CLIP its ``pooler_output`` (the class token
  after ``post_layernorm``, before the projection to the joint space); normalisation and size from the
  checkpoint's ``preprocessor_config.json`` (ImageNet's and the config's ``image_size`` without one).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import nn

from anycl.errors import ConfigError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Recipe:
    """A backbone's own input: normalisation, the crop's side, the evaluation resize (short side = size ×
    ``eval_resize``, then a centre crop) and whether it takes only that size (position embeddings)."""

    mean: Tuple[float, ...] = IMAGENET_MEAN
    std: Tuple[float, ...] = IMAGENET_STD
    size: int = 224
    eval_resize: float = 256 / 224
    fixed_size: bool = False


def _near(name: str, names: List[str]) -> str:
    close = difflib.get_close_matches(name, names, n=3)
    return f" (did you mean {', '.join(close)}?)" if close else ""


# ---- torchvision -----------------------------------------------------------------------------------------
def torchvision_arch(arch: str) -> str:
    """``arch`` if torchvision has that classification model, else a ConfigError with the closest names."""
    import torchvision.models  # lazy: torchvision: only for a torchvision backbone

    archs = torchvision.models.list_models(module=torchvision.models)
    if arch not in archs:
        raise ConfigError(
            f"torchvision has no classification model {arch!r}{_near(arch, archs)}; its models: "
            f"torchvision.models.list_models(module=torchvision.models)"
        )
    return arch


def torchvision_default_weights(arch: str) -> Any:
    import torchvision.models  # lazy: as above

    try:
        return torchvision.models.get_model_weights(arch).DEFAULT
    except (ValueError, AttributeError):  # an arch with no published weights
        return None


def torchvision_recipe(arch: str) -> Recipe:
    weights = torchvision_default_weights(arch)
    if weights is None:
        return Recipe()
    tf = weights.transforms()
    crop, resize = int(tf.crop_size[0]), int(tf.resize_size[0])
    return Recipe(tuple(tf.mean), tuple(tf.std), crop, resize / crop, fixed_size=arch.startswith(("vit_", "maxvit")))


def strip_linear_head(net: nn.Module, what: str) -> Tuple[str, int]:
    """Replace the last linear layer of the classifier by Identity; its dotted name and input width."""
    for attr in ("fc", "classifier", "heads", "head"):
        sub = getattr(net, attr, None)
        if isinstance(sub, nn.Linear):
            setattr(net, attr, nn.Identity())
            return attr, sub.in_features
        if isinstance(sub, nn.Module):
            linears = [(n, m) for n, m in sub.named_modules() if isinstance(m, nn.Linear)]
            if linears:
                name, last = linears[-1]
                parent = sub.get_submodule(name.rpartition(".")[0]) if "." in name else sub
                setattr(parent, name.rpartition(".")[2], nn.Identity())
                return f"{attr}.{name}", last.in_features
    raise ConfigError(f"{what} has no linear classifier (fc, classifier, heads or head) for anycl to remove")


def build_torchvision(arch: str, weights_file: Optional[str]) -> Tuple[nn.Module, str, int]:
    """The arch (with the weights of ``weights_file``, read with ``weights_only=True``) without its classifier;
    the removed layer's name and the embedding's width."""
    import torchvision.models  # lazy: as above

    net = torchvision.models.get_model(arch, weights=None)
    if weights_file is not None:
        state = torch.load(weights_file, map_location="cpu", weights_only=True)
        try:
            net.load_state_dict(state)
        except RuntimeError as exc:
            raise ConfigError(
                f"{weights_file} does not hold torchvision {arch} weights: {' '.join(str(exc).split())[:300]}"
            ) from None
    head, dim = strip_linear_head(net, f"torchvision's {arch}")
    return net, head, dim


# ---- timm ------------------------------------------------------------------------------------------------
def timm_name(name: str) -> str:
    """``name`` if timm has that model (with or without a pretrained tag), else a ConfigError."""
    try:
        import timm  # lazy: timm: an optional dependency, only for a timm backbone
    except ImportError:
        raise ConfigError(f"model='timm/{name}' needs timm: pip install timm (or pip install 'anycl[image]')") from None
    from timm.models import split_model_name_tag  # lazy: as above

    if not timm.is_model(split_model_name_tag(name)[0]):
        raise ConfigError(
            f"timm has no model {name!r}{_near(name, timm.list_models())}; its models: timm.list_models()"
        )
    return name


def timm_weights_source(name: str) -> Tuple[str, str, Tuple[str, ...]]:
    """Where timm's pretrained weights of ``name`` are: ("hub", repo, file names) or ("url", url, ())."""
    from timm.models import get_pretrained_cfg  # lazy: as above

    cfg = get_pretrained_cfg(name)
    if cfg is None:
        raise ConfigError(f"timm has no pretrained weights for {name!r}; pass encoder_options={{'pretrained': False}}")
    if cfg.hf_hub_id:
        files = (str(cfg.hf_hub_filename),) if cfg.hf_hub_filename else ("model.safetensors", "pytorch_model.bin")
        return "hub", str(cfg.hf_hub_id), files
    if cfg.url:
        return "url", str(cfg.url), ()
    raise ConfigError(
        f"timm names no download for the weights of {name!r}; pass encoder_options={{'pretrained': False}}"
    )


def build_timm(name: str, weights_file: Optional[str]) -> Tuple[nn.Module, int, Recipe]:
    """The timm model (with ``weights_file`` loaded by timm, strictly: its own key conversions apply) without its
    classifier; its width and input recipe."""
    import timm  # lazy: as above
    from timm.data import resolve_model_data_config  # lazy: as above

    model: Any  # timm's model: reset_classifier, num_features
    if weights_file is None:
        model = timm.create_model(name, pretrained=False, num_classes=0)
    else:
        try:
            model = timm.create_model(name, pretrained=True, pretrained_cfg_overlay={"file": weights_file})
        except RuntimeError as exc:
            raise ConfigError(
                f"{weights_file} does not hold timm {name} weights: {' '.join(str(exc).split())[:300]}"
            ) from None
        model.reset_classifier(0)
    data = resolve_model_data_config(model)
    side = int(data["input_size"][-1])
    crop = float(data.get("crop_pct") or 1.0)
    fixed = hasattr(model, "patch_embed") and not getattr(model, "dynamic_img_size", False)
    recipe = Recipe(tuple(data["mean"]), tuple(data["std"]), side, 1.0 / crop, fixed_size=fixed)
    return model, int(model.num_features), recipe


# ---- transformers ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class HFFamily:
    """How anycl loads and pools one ``transformers`` vision architecture."""

    label: str
    model_class: str
    config_class: str
    pool: str  # "cls": last_hidden_state[:, 0]; "pooler": pooler_output
    fixed_size: bool  # position embeddings for config.image_size only
    kwargs: Tuple[Tuple[str, Any], ...] = ()


HF_FAMILIES: Dict[str, HFFamily] = {
    "vit": HFFamily("vit", "ViTModel", "ViTConfig", "cls", True, (("add_pooling_layer", False),)),
    "dinov2": HFFamily("dinov2", "Dinov2Model", "Dinov2Config", "cls", False),
    "clip": HFFamily("clip", "CLIPVisionModel", "CLIPVisionConfig", "pooler", True),
}
HF_FAMILIES["clip_vision_model"] = HF_FAMILIES["clip"]
HF_BY_LABEL = {f.label: f for f in HF_FAMILIES.values()}
HF_SUPPORTED = "vit, dinov2, clip (its vision tower)"


def hf_family(model_type: Any, name: str) -> HFFamily:
    if model_type not in HF_FAMILIES:
        raise ConfigError(
            f"{name!r} is a {model_type!r} model; anycl builds these transformers vision models: {HF_SUPPORTED} "
            f"(or model='torchvision/<arch>', 'timm/<name>', or encoder=<your nn.Module>)"
        )
    return HF_FAMILIES[model_type]


def transformers_class(name: str) -> Any:
    import transformers  # lazy: transformers: slow to import, only for a transformers backbone

    return getattr(transformers, name)


def hf_features(family: HFFamily, model: Any, x: torch.Tensor) -> torch.Tensor:
    out = model(pixel_values=x)
    if family.pool == "pooler":
        return out.pooler_output
    return out.last_hidden_state[:, 0]


def hf_recipe(family: HFFamily, config: Any, processor: Optional[Dict[str, Any]]) -> Recipe:
    """The input recipe of ``preprocessor_config.json`` (``processor``), else ImageNet's at ``image_size``."""
    size = int(getattr(config, "image_size", 224))
    if not processor:
        return Recipe(size=size, eval_resize=1.0, fixed_size=family.fixed_size)

    def side(value: Any) -> Optional[int]:
        if isinstance(value, dict):
            value = value.get("height", value.get("shortest_edge"))
        return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    resize = side(processor.get("size")) or size
    crop = side(processor.get("crop_size")) if processor.get("do_center_crop") else None
    mean = tuple(float(v) for v in processor.get("image_mean") or IMAGENET_MEAN)
    std = tuple(float(v) for v in processor.get("image_std") or IMAGENET_STD)
    if crop:
        return Recipe(mean, std, crop, resize / crop, family.fixed_size)
    return Recipe(mean, std, resize, 1.0, family.fixed_size)
