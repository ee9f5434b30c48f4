"""Image backbones by name: ``fit(images, modality="image", model=...)`` with ``"torchvision/<arch>"``,
``"timm/<name>"``, or a Hugging Face vision model's Hub id or folder (ViT, DINOv2, CLIP's vision tower).

:func:`open_backbone` builds the library's model with its pretrained weights (read from the local cache; downloaded
only when downloads are on, :mod:`.image_weights`), or from scratch with ``encoder_options={"pretrained": False}``,
and removes its classifier (:mod:`.image_families`: which layer, and the pooled features that remain). The
:class:`ImageBackbone` carries the backbone's own input recipe (mean, std, size), which the image adapter takes
unless the user set them.

A saved tower (``towers/image/``) holds ``model.safetensors``: the library model's own state dict (without the
removed classifier); a transformers backbone also its ``config.json`` and ``preprocessor_config.json``. The spec
in ``anycl_config.json`` names the family and the arch, the width and the recipe; :func:`load_saved` rebuilds the
architecture from scratch (no download) and loads the weights, checked against the file's header first
(:func:`anycl.weights.load_checked`): JSON and safetensors only, no network, no pickle.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Union

import safetensors.torch  # its functions looked up when called (tests stand in for them)
import torch
from torch import nn

from anycl.errors import ConfigError
from anycl.progress import quiet_library_bars
from anycl.reading import read_json
from anycl.weights import load_checked

from .image_encoders import ARCHS
from .image_families import (
    HF_BY_LABEL,
    HFFamily,
    Recipe,
    build_timm,
    build_torchvision,
    hf_family,
    hf_features,
    hf_recipe,
    timm_name,
    timm_weights_source,
    torchvision_arch,
    torchvision_default_weights,
    torchvision_recipe,
    transformers_class,
)
from .image_weights import hub_cache, hub_weights, offline, url_weights
from .transformers_loading import no_init as _no_init
from .transformers_loading import quiet_transformers as _quiet

KIND = "backbone"
FAMILIES = ("torchvision", "timm", "transformers")
WEIGHTS = "model.safetensors"
CONFIG = "config.json"
PREPROCESSOR = "preprocessor_config.json"
HF_WEIGHTS = ("model.safetensors", "pytorch_model.bin")


class ImageBackbone(nn.Module):
    """A named library backbone as an anycl image encoder: normalised (B, 3, H, W) → (B, num_features).

    ``model`` is the library's own module (its classifier removed); ``recipe`` its input (:class:`Recipe`);
    ``head`` (torchvision) the name of the removed classifier layer; ``hf`` a transformers family.
    """

    def __init__(
        self,
        family: str,
        name: str,
        model: nn.Module,
        num_features: int,
        recipe: Recipe,
        pretrained: bool,
        head: Optional[str] = None,
        hf: Optional[HFFamily] = None,
        processor: Optional[Dict[str, Any]] = None,
    ):
        super().__init__()
        self.family, self.name, self.model = family, name, model
        self.embedding_dim = int(num_features)
        self.recipe, self.pretrained, self.head, self.hf = recipe, bool(pretrained), head, hf
        self.processor = processor

    def spec(self) -> Dict[str, Any]:
        """What ``anycl_config.json`` records of the backbone (rebuilds it with :func:`load_saved`)."""
        out = {
            "kind": KIND,
            "family": self.family,
            "name": self.name,
            "pretrained": self.pretrained,
            "num_features": self.embedding_dim,
            **{k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self.recipe).items()},
        }
        if self.head is not None:
            out["removed_head"] = self.head
        if self.hf is not None:
            out["hf_family"] = self.hf.label
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.hf is not None:
            return hf_features(self.hf, self.model, x)
        return self.model(x).flatten(1)


# ---- opening a backbone by name ------------------------------------------------------------------------
def split_name(model: Union[str, os.PathLike]) -> tuple:
    """("torchvision" | "timm" | "transformers", the name within it)."""
    name = str(os.fspath(model))
    for family in ("torchvision", "timm"):
        if name.startswith(family + "/"):
            return family, name[len(family) + 1 :]
    return "transformers", name


def open_backbone(model: Union[str, os.PathLike], pretrained: bool = True) -> ImageBackbone:
    """The backbone ``model`` names (see the module docstring), with its pretrained weights unless
    ``pretrained=False``."""
    if not isinstance(pretrained, bool):
        raise ConfigError(f"encoder_options pretrained must be true or false, got {pretrained!r}")
    family, name = split_name(model)
    if not name:
        raise ConfigError(f"model={str(model)!r} names no {family} model; e.g. 'torchvision/resnet18', 'timm/resnet18'")
    if family == "torchvision":
        arch = torchvision_arch(name)
        file = None
        if pretrained:
            weights = torchvision_default_weights(arch)
            if weights is None:
                raise ConfigError(
                    f"torchvision publishes no weights for {arch}; pass encoder_options={{'pretrained': False}}"
                )
            file = url_weights(weights.url, f"torchvision's {arch}")
        net, head, dim = build_torchvision(arch, file)
        return ImageBackbone(family, arch, net, dim, torchvision_recipe(arch), pretrained, head=head)
    if family == "timm":
        name = timm_name(name)
        file = None
        if pretrained:
            where, source, files = timm_weights_source(name)
            what = f"timm's {name}"
            file = hub_weights(source, files, what) if where == "hub" else url_weights(source, what)
        with quiet_library_bars():
            net, dim, recipe = build_timm(name, file)
        return ImageBackbone(family, name, net, dim, recipe, pretrained)
    return _open_transformers(name, pretrained)


def _hf_file(name: str, file: str, local: bool) -> Optional[str]:
    """A file of the model (a folder's, or the Hub repository's from the cache or a download), or None."""
    if local:
        path = os.path.join(name, file)
        return path if os.path.isfile(path) else None
    from huggingface_hub import hf_hub_download, try_to_load_from_cache  # lazy: huggingface_hub: Hub files

    with contextlib.suppress(Exception):
        found = try_to_load_from_cache(name, file, cache_dir=hub_cache())
        if isinstance(found, str):
            return found
    if offline():
        return None
    with contextlib.suppress(Exception):
        return str(hf_hub_download(name, file, cache_dir=hub_cache()))
    return None


def _open_transformers(name: str, pretrained: bool) -> ImageBackbone:
    local = os.path.isdir(name)
    if not local and os.path.exists(name):
        raise ConfigError(f"model={name!r} is a file; give the folder that holds {CONFIG} and the weights")
    if not local and "/" not in name:
        arch = name if name in ARCHS else "resnet18"
        raise ConfigError(
            f"model={name!r} names no image backbone: write 'torchvision/{name}' or 'timm/{name}' (a library's model "
            f"with its pretrained weights), a Hugging Face vision model's id or folder, or train anycl's own from "
            f"scratch with encoder_options={{'arch': {arch!r}}} (command line: --encoder-options '{{\"arch\": \"{arch}\"}}')"
        )
    config_file = _hf_file(name, CONFIG, local)
    if config_file is None:
        where = f"the folder {name!r}" if local else f"the local Hugging Face cache ({hub_cache()})"
        off = " and downloads are off (HF_HUB_OFFLINE=1)" if offline() and not local else ""
        raise ConfigError(
            f"cannot open the image model {name!r}: {where} has no {CONFIG}{off}. Check the name, download it once "
            f"where there is a network (hf download {name}), or pass the path of a local folder"
        )
    raw = read_json(config_file)
    kind = raw.get("model_type") if isinstance(raw, dict) else None
    fam = hf_family(kind, name)
    config_cls = transformers_class(fam.config_class)
    with _quiet():
        config = config_cls.from_pretrained(os.path.dirname(config_file))
        if pretrained:
            if not any(_hf_file(name, f, local) for f in HF_WEIGHTS):
                where = f"the folder {name!r}" if local else f"the local Hugging Face cache ({hub_cache()})"
                raise ConfigError(
                    f"the pretrained weights of {name!r} are not found: {where} lacks {' or '.join(HF_WEIGHTS)}; "
                    f"download them (hf download {name}) or pass encoder_options={{'pretrained': False}}"
                )
            model = _from_pretrained(fam, name, config)
        else:
            model = transformers_class(fam.model_class)(config, **dict(fam.kwargs))
    processor_file = _hf_file(name, PREPROCESSOR, local)
    processor = read_json(processor_file) if processor_file else None
    recipe = hf_recipe(fam, config, processor if isinstance(processor, dict) else None)
    dim = int(config.hidden_size)
    return ImageBackbone("transformers", name, model.float(), dim, recipe, pretrained, hf=fam, processor=processor)


def _from_pretrained(fam: HFFamily, name: str, config: Any) -> nn.Module:
    cls = transformers_class(fam.model_class)
    try:
        model, info = cls.from_pretrained(
            name,
            config=config,
            dtype=torch.float32,
            output_loading_info=True,
            cache_dir=hub_cache(),
            **dict(fam.kwargs),
        )
    except (OSError, RuntimeError) as exc:
        raise ConfigError(f"cannot load the weights of {name!r}: {' '.join(str(exc).split())[:300]}") from None
    missing = list(info.get("missing_keys", ()))
    if missing:
        raise ConfigError(
            f"the checkpoint {name!r} has no weights for {len(missing)} parameter(s) of a {fam.label} model "
            f"(e.g. {sorted(missing)[:3]}); it is not a {fam.label} checkpoint, or it is incomplete"
        )
    return model


# ---- the saved tower -------------------------------------------------------------------------------------
def library_state(encoder: ImageBackbone) -> Dict[str, torch.Tensor]:
    """The library model's own state dict (the keys its library names), on the CPU."""
    return {k: v.detach().contiguous().cpu() for k, v in encoder.model.state_dict().items()}


def save(encoder: ImageBackbone, directory: str) -> Dict[str, Any]:
    """Write the backbone's weights (and a transformers model's config and preprocessor settings); the spec."""
    d = Path(directory)
    if encoder.hf is not None:
        model: Any = encoder.model
        model.config.to_json_file(str(d / CONFIG))
        if encoder.processor:
            (d / PREPROCESSOR).write_text(json.dumps(encoder.processor, indent=2))
    safetensors.torch.save_file(library_state(encoder), str(d / WEIGHTS))
    return encoder.spec()


def _recipe(spec: Dict[str, Any], where: str) -> Recipe:
    try:
        recipe = Recipe(
            tuple(float(v) for v in spec["mean"]),
            tuple(float(v) for v in spec["std"]),
            int(spec["size"]),
            float(spec["eval_resize"]),
            bool(spec["fixed_size"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(
            f"{where}: the image backbone's recipe is incomplete or wrong ({exc}); save it again"
        ) from None
    return recipe


def load_saved(spec: Dict[str, Any], directory: str) -> ImageBackbone:
    """Rebuild a tower written by :func:`save` from its folder alone (JSON + safetensors, no network)."""
    d = Path(directory)
    where = f"the image tower in {directory!r}"
    family, name = spec.get("family"), spec.get("name")
    if family not in FAMILIES or not isinstance(name, str) or not name:
        raise ConfigError(f"{where} names an unknown backbone {family!r}/{name!r} (known families: {FAMILIES})")
    recipe = _recipe(spec, where)
    dim = spec.get("num_features")
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise ConfigError(f"{where}: num_features must be a positive integer, got {dim!r}")
    root = d.parent.parent  # the model folder: files are read only inside it
    build: Callable[[], nn.Module]
    hf, processor, head = None, None, None
    if family == "torchvision":
        arch = torchvision_arch(name)
        head = spec.get("removed_head") if isinstance(spec.get("removed_head"), str) else None

        def build() -> nn.Module:
            return build_torchvision(arch, None)[0]

    elif family == "timm":
        timm_name(name)

        def build() -> nn.Module:
            return build_timm(name, None)[0]

    else:
        hf = HF_BY_LABEL.get(str(spec.get("hf_family")))
        if hf is None:
            raise ConfigError(f"{where} names an unknown transformers family {spec.get('hf_family')!r}")
        fam = hf
        config = transformers_class(fam.config_class).from_dict(read_json(d / CONFIG, root=root))
        if (d / PREPROCESSOR).is_file():
            processor = read_json(d / PREPROCESSOR, root=root)

        def build() -> nn.Module:
            with _no_init():
                return transformers_class(fam.model_class)(config, **dict(fam.kwargs))

    module = load_checked(build, d / WEIGHTS, f"the image backbone {family}/{name} in anycl_config.json", root=root)
    return ImageBackbone(
        family, name, module.float(), dim, recipe, bool(spec.get("pretrained")), head=head, hf=hf, processor=processor
    )
