"""Pretrained audio encoders from Hugging Face ``transformers``: ``fit(clips, modality="audio", model=...)``.

:func:`open_pretrained` loads a model by Hub name (from the local cache when downloads are off) or from a
local folder (``config.json``, ``preprocessor_config.json`` and the weights, as ``save_pretrained`` writes
them), with its own feature extractor. :class:`PretrainedAudioEncoder` runs it on the features the audio
adapter collates with that extractor, at the extractor's sample rate, and pools one embedding per clip
(:mod:`.audio_families`: which families, how each is fed and pooled).

Encoder options (``encoder_options``): ``freeze``: ``"feature_encoder"`` keeps the modules before the
transformer layers fixed (the convolutional feature encoder, feature projection and positional convolution
of wav2vec2 / HuBERT / WavLM; AST's patch embeddings; Whisper's convolutions and positions; CLAP's input
batch norm and patch embeddings), an int N also the first N layers (CLAP: HTSAT stages). Frozen modules
stay in evaluation mode while the rest trains (no dropout, fixed batch-norm statistics).

A saved tower (``towers/audio/``) holds ``config.json``, ``preprocessor_config.json`` and
``model.safetensors`` (the encoder's own weights; JSON and safetensors only), rebuilt by
:func:`load_saved` with no network.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Sequence, Union

import safetensors.torch  # its functions looked up when called (tests stand in for them)
import torch
from torch import nn

from anycl.errors import ConfigError

from .audio_augment import SPECTROGRAM_AUGMENTS
from .audio_families import (
    BY_LABEL,
    SUPPORTED,
    Family,
    collate,
    embed,
    embedding_dim,
    family_of,
    max_samples,
    transformers_class,
)
from .frozen_parts import FrozenParts
from .transformers_loading import no_init as _no_init
from .transformers_loading import quiet_transformers as _quiet

CONFIG = "config.json"
PREPROCESSOR = "preprocessor_config.json"
WEIGHTS = "model.safetensors"
SOURCE_WEIGHTS = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
KIND = "transformers"


@dataclass
class AudioFeatures:
    """How a batch of views becomes the model's features: what the audio adapter keeps of a pretrained
    encoder (picklable and small: data-loader workers get a copy)."""

    family: Family
    extractor: Any
    fusion: bool

    def collate(self, items: Sequence[torch.Tensor], window: int) -> Dict[str, Any]:
        """The model's features of a batch of views at the extractor's rate (see :mod:`.audio_families`)."""
        return collate(self.family, self.extractor, self.fusion, items, window)


class PretrainedAudioEncoder(FrozenParts):
    """A ``transformers`` audio model as an anycl encoder: collated features (a dict) → (N, D) embeddings.

    The audio adapter takes ``sampling_rate``, ``max_samples`` (the longest clip the model takes whole) and
    ``features`` (how to collate a batch) from it when the tower is made; ``lora_module`` / ``lora_targets``
    are where :mod:`anycl.model.lora` puts LoRA layers by default.
    """

    accepts_windows = True  # audio_families.embed averages a window axis itself

    def __init__(self, family: Family, model: nn.Module, extractor: Any, base_model: str, freeze: Any = None):
        super().__init__()
        self.family = family
        self.model = model
        self.extractor = extractor
        self.features = AudioFeatures(family, extractor, bool(getattr(model.config, "enable_fusion", False)))
        self.takes_mask = bool(getattr(extractor, "return_attention_mask", False))
        self.embedding_dim = embedding_dim(family, model.config)
        self.sampling_rate = int(extractor.sampling_rate)
        self.max_samples = max_samples(family, extractor, model.config)
        self.freeze(freeze)
        self.anycl_spec: Dict[str, Any] = {"family": family.label, "base_model": base_model, "freeze": freeze}

    def check_adapter_options(
        self, options: Dict[str, Any], augment: Dict[str, Any], mel_defaults: Dict[str, Any], rate_given: bool
    ) -> None:
        """Refuse audio adapter options this encoder would not use: log-mel settings, spectrogram augmentations,
        a sample rate other than its feature extractor's."""
        label = self.family.label
        mel = sorted(k for k, v in options.items() if k in mel_defaults and v != mel_defaults[k])
        if mel:
            raise ConfigError(
                f"adapter_options {mel} shape anycl's own log-mels; a pretrained {label} encoder is fed by its "
                f"feature extractor ({PREPROCESSOR}). Leave them out"
            )
        spec = [k for k in SPECTROGRAM_AUGMENTS if augment[k]]
        if spec:
            raise ConfigError(
                f"augment settings {spec} act on anycl's own log-mels and do not apply to a pretrained {label} "
                f"encoder; set them to 0 (waveform augmentations: segment, gain_db, noise_p, shift)"
            )
        if rate_given and options["sample_rate"] != self.sampling_rate:
            raise ConfigError(
                f"adapter_options sample_rate={options['sample_rate']}, but the pretrained {label} encoder takes "
                f"{self.sampling_rate} Hz audio (anycl resamples every clip to it); leave sample_rate out"
            )

    def check_window(self, samples: int, seconds: float) -> None:
        """Refuse a window longer than the model takes whole (its feature extractor would cut it)."""
        if self.max_samples is not None and samples > self.max_samples:
            raise ConfigError(
                f"clip_seconds={seconds} is longer than the {self.max_samples / self.sampling_rate:g} s this "
                f"{self.family.label} model takes whole; set adapter_options clip_seconds to at most that"
            )

    @property
    def lora_module(self) -> nn.Module:
        return self.model

    @property
    def lora_targets(self) -> List[str]:
        """The family's attention query and value projections, as this transformers version names them."""
        names = {n.rsplit(".", 1)[-1] for n, _ in self.model.named_modules()}
        return [t for t in self.family.lora_targets if t in names]

    def freeze(self, spec: Any) -> None:
        """Keep the stem (``"feature_encoder"``), or the stem and the first N layers (an int), fixed."""
        if spec is None:
            return
        layers = next((x for x in (_get(self.model, p, None) for p in self.family.layers) if x is not None), None)
        if layers is None:  # pragma: no cover - a transformers version that moved them again
            raise ConfigError(f"cannot find the layers of this {self.family.label} model to freeze")
        if isinstance(spec, bool) or not (spec == "feature_encoder" or isinstance(spec, int)):
            raise ConfigError(
                f"encoder_options freeze must be 'feature_encoder' or a number of layers (0-{len(layers)}), "
                f"got {spec!r}; fit(freeze='audio') keeps the whole encoder fixed"
            )
        if isinstance(spec, int) and not 0 <= spec <= len(layers):
            raise ConfigError(f"encoder_options freeze={spec}: this {self.family.label} model has {len(layers)} layers")
        parts = [_get(self.model, name) for name in self.family.stem if _get(self.model, name, None) is not None]
        parts += list(layers[: spec if isinstance(spec, int) else 0])
        for part in parts:
            if hasattr(part, "_freeze_parameters"):  # wav2vec2's feature encoder: also skips its input grads
                part._freeze_parameters()
        self.freeze_parts(parts)

    def forward(self, features: Dict[str, Any]) -> torch.Tensor:
        if not isinstance(features, dict):
            raise ValueError(
                f"a pretrained {self.family.label} encoder takes the features its audio adapter collates (a dict), "
                f"got a {type(features).__name__}"
            )
        return embed(self.family, self.model, features, self.takes_mask)


def _get(module: nn.Module, dotted: str, *default):
    try:
        for part in dotted.split("."):
            module = getattr(module, part)
    except AttributeError:
        if default:
            return default[0]
        raise
    return module


# ---- opening a checkpoint ----------------------------------------------------------------------------
def _missing_in_cache(name: str) -> List[str]:
    from huggingface_hub import try_to_load_from_cache  # lazy: huggingface_hub: only to name what is missing

    def cached(f: str) -> bool:
        try:
            return isinstance(try_to_load_from_cache(name, f), str)
        except Exception:  # noqa: BLE001 - an invalid repo id is simply not cached
            return False

    missing = [f for f in (CONFIG, PREPROCESSOR) if not cached(f)]
    if not any(cached(f) for f in SOURCE_WEIGHTS):
        missing.append(f"{SOURCE_WEIGHTS[0]} (or {SOURCE_WEIGHTS[2]})")
    return missing


def _unavailable(name: str, exc: Exception) -> ConfigError:
    from huggingface_hub import constants  # lazy: huggingface_hub: only for this message

    missing = _missing_in_cache(name)
    where = f"the local Hugging Face cache ({constants.HF_HUB_CACHE}) lacks {', '.join(missing)}" if missing else ""
    if constants.HF_HUB_OFFLINE:
        return ConfigError(
            f"cannot open the audio model {name!r}: {where or 'it is not in the local Hugging Face cache'}, and "
            f"downloads are off (HF_HUB_OFFLINE=1). Download it once where there is a network (hf download {name}) "
            f"or pass the path of a local folder"
        )
    first = " ".join(str(exc).split())[:300]
    return ConfigError(
        f"cannot open the audio model {name!r} ({first}){'; ' + where if where else ''}. Check the name, or pass "
        f"the path of a local folder"
    )


def _check_folder(path: str) -> None:
    files = set(os.listdir(path))
    missing = [f for f in (CONFIG, PREPROCESSOR) if f not in files]
    if not files & set(SOURCE_WEIGHTS):
        missing.append(f"{SOURCE_WEIGHTS[0]} (or {SOURCE_WEIGHTS[2]})")
    if missing:
        raise ConfigError(
            f"{path!r} is not a transformers audio model folder: it lacks {', '.join(missing)} (write one with "
            f"model.save_pretrained(folder) and feature_extractor.save_pretrained(folder))"
        )


def open_pretrained(model: Union[str, os.PathLike], **options: Any) -> PretrainedAudioEncoder:
    """Load ``model`` (a local folder or a Hub name) with its feature extractor, for training; ``options``
    are the encoder options (``freeze``)."""
    if not isinstance(model, (str, os.PathLike)) or not os.fspath(model):
        raise ConfigError(
            f"model= for audio takes a Hub name or a folder ({SUPPORTED}), got {type(model).__name__} {model!r:.60}; "
            f"pass a module as encoder="
        )
    unknown = sorted(set(options) - {"freeze"})
    if unknown:
        raise ConfigError(f"unknown encoder_options {unknown} for a pretrained audio model; valid: freeze")
    name = str(os.fspath(model))
    local = os.path.isdir(name)
    if local:
        _check_folder(name)
    elif os.path.exists(name):
        raise ConfigError(f"model={name!r} is a file; give the folder that holds {CONFIG} and the weights")
    import transformers  # lazy: transformers: slow to import, only for pretrained audio encoders

    with _quiet():
        try:
            config = transformers.AutoConfig.from_pretrained(name)
        except OSError as exc:
            raise _unavailable(name, exc) from None
        family = family_of(config, name)
        try:
            extractor = transformers_class(family.extractor_class).from_pretrained(name)
        except OSError as exc:
            raise _unavailable(name, exc) from None
        loaded = _load_weights(family, name)
    return PretrainedAudioEncoder(family, loaded, extractor, base_model=name, freeze=options.get("freeze"))


def _load_weights(family: Family, name: str) -> nn.Module:
    """The family's model with the checkpoint's weights (float32); an error when the checkpoint lacks some."""
    cls = transformers_class("WhisperForAudioClassification" if family.kind == "whisper" else family.model_class)
    try:
        model, info = cls.from_pretrained(name, dtype=torch.float32, output_loading_info=True)
    except OSError as exc:
        raise _unavailable(name, exc) from None
    except RuntimeError as exc:  # weights of other shapes than the config says
        raise ConfigError(f"cannot load the weights of {name!r}: {' '.join(str(exc).split())[:300]}") from None
    missing = [k for k in info.get("missing_keys", ()) if "masked_spec_embed" not in k]  # masked pretraining's
    if family.kind == "whisper":  # the encoder of an audio classifier: its head is not used
        model, missing = model.encoder, [k for k in missing if k.startswith("encoder.")]
    if missing:
        raise ConfigError(
            f"the checkpoint {name!r} has no weights for {len(missing)} parameter(s) of a {family.label} encoder "
            f"(e.g. {sorted(missing)[:3]}); it is not a {family.label} checkpoint, or it is incomplete"
        )
    return model


# ---- the saved tower -------------------------------------------------------------------------------
def save(encoder: PretrainedAudioEncoder, directory: str) -> Dict[str, Any]:
    """Write the tower's config, feature-extractor settings and weights; return the spec :func:`load_saved` takes."""
    d = Path(directory)
    model: Any = encoder.model  # a transformers PreTrainedModel
    model.config.to_json_file(str(d / CONFIG))
    encoder.extractor.to_json_file(str(d / PREPROCESSOR))
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    safetensors.torch.save_file(state, str(d / WEIGHTS))
    return {"kind": KIND, **encoder.anycl_spec}


def load_saved(spec: Dict[str, Any], directory: str) -> PretrainedAudioEncoder:
    """Rebuild a tower written by :func:`save` from its folder alone (JSON + safetensors, no network)."""
    d = Path(directory)
    family = BY_LABEL.get(str(spec.get("family")))
    if family is None:
        raise ConfigError(f"the audio tower in {directory!r} names an unknown family {spec.get('family')!r}")
    missing = [f for f in (CONFIG, PREPROCESSOR, WEIGHTS) if not (d / f).is_file()]
    if missing:
        raise ConfigError(f"the audio tower in {directory!r} lacks {', '.join(missing)}; save the model again")
    config = transformers_class(family.config_class).from_dict(json.loads((d / CONFIG).read_text()))
    extractor = transformers_class(family.extractor_class).from_dict(json.loads((d / PREPROCESSOR).read_text()))
    with _no_init():
        model = transformers_class(family.model_class)(config)
    model.load_state_dict(safetensors.torch.load_file(str(d / WEIGHTS)))
    return PretrainedAudioEncoder(
        family, model.float(), extractor, base_model=str(spec.get("base_model") or directory), freeze=spec.get("freeze")
    )
