"""The Hugging Face ``transformers`` audio families anycl trains, each fed its own way and pooled to one
embedding per clip (:mod:`.audio_pretrained` loads, freezes and saves them).

- **waveform** (wav2vec2, HuBERT, WavLM): the feature extractor normalises each clip and pads the batch to
  the window; the clip's real samples give the frames the pooling averages
  (``_get_feat_extract_output_lengths``); the attention mask goes to the model only where its feature
  extractor says the model takes one (``return_attention_mask``; the base models were trained without);
- **AST** (audio-spectrogram-transformer): Kaldi filter banks padded to the model's ``max_length`` frames;
  the mean of the patch tokens whose first frame holds audio (the [CLS] and distillation tokens left out);
- **Whisper** (its encoder): log-mels padded to the model's 30 s input (``chunk_length``); the mean of the
  encoder frames (two mel frames each) that hold audio;
- **CLAP** (its audio tower, HTSAT + projection): the feature extractor repeats short clips to its
  ``max_length_s`` (no padding to mask); the embedding is CLAP's own: its projection of HTSAT's mean over
  the final feature map (``audio_embeds``).

Collated features are a dict of tensors (the model input, ``attention_mask`` where a family has one, CLAP's
``is_longer`` for fused models); ``eval_crop="windows"`` gives each tensor a window axis after the batch,
whose embeddings :func:`embed` averages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from anycl.errors import ConfigError


@dataclass(frozen=True)
class Family:
    """How anycl loads, feeds, pools, freezes and adapts one ``transformers`` audio architecture."""

    label: str  # in messages and the saved spec
    kind: str  # "waveform" | "ast" | "whisper" | "clap"
    model_class: str  # the transformers class loaded from a checkpoint
    config_class: str
    extractor_class: str
    input_name: str  # the model input's key in the collated features
    input_dims: int  # dimensions of one batch of that input (a window axis adds one)
    stem: Tuple[str, ...]  # the modules before the transformer layers (freeze="feature_encoder")
    layers: Tuple[str, ...]  # the layer list's dotted path, by transformers version (freeze=N: the first N)
    lora_targets: Tuple[str, ...]  # default LoRA target modules (attention query and value, by version)


_WAVE_STEM = ("feature_extractor", "feature_projection", "encoder.pos_conv_embed")

# by config.model_type
FAMILIES: Dict[str, Family] = {
    "wav2vec2": Family(
        "wav2vec2", "waveform", "Wav2Vec2Model", "Wav2Vec2Config", "Wav2Vec2FeatureExtractor",
        "input_values", 2, _WAVE_STEM, ("encoder.layers",), ("q_proj", "v_proj"),
    ),
    "hubert": Family(
        "hubert", "waveform", "HubertModel", "HubertConfig", "Wav2Vec2FeatureExtractor",
        "input_values", 2, _WAVE_STEM, ("encoder.layers",), ("q_proj", "v_proj"),
    ),
    "wavlm": Family(
        "wavlm", "waveform", "WavLMModel", "WavLMConfig", "Wav2Vec2FeatureExtractor",
        "input_values", 2, _WAVE_STEM, ("encoder.layers",), ("q_proj", "v_proj"),
    ),
    "audio-spectrogram-transformer": Family(  # transformers 5: layers.N.attention.q_proj; 4: encoder.layer, query
        "ast", "ast", "ASTModel", "ASTConfig", "ASTFeatureExtractor",
        "input_values", 3, ("embeddings",), ("layers", "encoder.layer"), ("q_proj", "v_proj", "query", "value"),
    ),
    "whisper": Family(
        "whisper", "whisper", "WhisperEncoder", "WhisperConfig", "WhisperFeatureExtractor",
        "input_features", 3, ("conv1", "conv2", "embed_positions"), ("layers",), ("q_proj", "v_proj"),
    ),
    "clap": Family(
        "clap", "clap", "ClapAudioModelWithProjection", "ClapAudioConfig", "ClapFeatureExtractor",
        "input_features", 4, ("audio_model.audio_encoder.batch_norm", "audio_model.audio_encoder.patch_embed"),
        ("audio_model.audio_encoder.layers",), ("query", "value"),
    ),
}  # fmt: skip
FAMILIES["clap_audio_model"] = FAMILIES["clap"]
BY_LABEL = {f.label: f for f in FAMILIES.values()}
SUPPORTED = "wav2vec2, hubert, wavlm, audio-spectrogram-transformer (AST), whisper, clap"

# Kaldi filter banks (AST): 25 ms frames every 10 ms, edges snipped
_KALDI_WIN_S, _KALDI_HOP_S = 0.025, 0.010


def family_of(config: Any, name: str) -> Family:
    """The family of a ``transformers`` config, or a ConfigError naming the supported ones."""
    kind = getattr(config, "model_type", None)
    if kind not in FAMILIES:
        raise ConfigError(
            f"{name!r} is a {kind!r} model; anycl trains these transformers audio models: {SUPPORTED} "
            f"(or pass encoder=<your nn.Module>)"
        )
    return FAMILIES[kind]


def transformers_class(name: str):
    import transformers  # lazy: transformers: slow to import, only for pretrained audio encoders

    if name == "WhisperEncoder":
        from transformers.models.whisper.modeling_whisper import WhisperEncoder  # lazy: as above

        return WhisperEncoder
    return getattr(transformers, name)


def max_samples(family: Family, extractor: Any, model_config: Any) -> Optional[int]:
    """The longest clip the model takes whole (its feature extractor would cut a longer one), or None."""
    rate = int(extractor.sampling_rate)
    if family.kind == "ast":
        return int(round(((int(model_config.max_length) - 1) * _KALDI_HOP_S + _KALDI_WIN_S) * rate))
    if family.kind == "whisper":
        return int(extractor.n_samples)
    if family.kind == "clap":
        return int(extractor.nb_max_samples)
    return None


def _frames_ast(n: int, rate: int, limit: int) -> int:
    win, hop = int(round(_KALDI_WIN_S * rate)), int(round(_KALDI_HOP_S * rate))
    return max(1, min(limit, 1 + (n - win) // hop)) if n >= win else 1


def collate(family: Family, extractor: Any, fusion: bool, items: Sequence[torch.Tensor], window: int) -> Dict[str, Any]:
    """Features of a batch of views (each (S,), or (K, S) evaluation windows) from the family's extractor."""
    windows = items[0].dim() == 2 if items else False
    waves: List[np.ndarray] = []
    for x in items:
        for w in x.unbind(0) if windows else (x,):
            waves.append(w.detach().cpu().float().numpy())
    rate = int(extractor.sampling_rate)
    shortest = int(round(_KALDI_WIN_S * rate))  # 25 ms: less is no frame for a spectrogram model
    lengths = [len(w) for w in waves]
    waves = [np.pad(w, (0, shortest - len(w))) if len(w) < shortest else w for w in waves]
    if family.kind == "waveform":
        out = extractor(
            waves,
            sampling_rate=rate,
            padding="max_length",
            max_length=max(window, *map(len, waves)),
            return_attention_mask=True,
            return_tensors="pt",
        )
        feats = {"input_values": out["input_values"], "attention_mask": out["attention_mask"].long()}
    elif family.kind == "ast":
        out = extractor(waves, sampling_rate=rate, return_tensors="pt")
        limit = int(out["input_values"].shape[1])
        frames = torch.tensor([_frames_ast(n, rate, limit) for n in lengths])
        feats = {"input_values": out["input_values"], "attention_mask": _mask(frames, limit)}
    elif family.kind == "whisper":
        out = extractor(waves, sampling_rate=rate, return_attention_mask=True, return_tensors="pt")
        feats = {"input_features": out["input_features"], "attention_mask": out["attention_mask"].long()}
    else:  # clap
        out = extractor(waves, sampling_rate=rate, return_tensors="pt")
        feats = {"input_features": out["input_features"]}
        if fusion:
            feats["is_longer"] = out["is_longer"]
    feats = {k: (v.float() if v.is_floating_point() else v) for k, v in feats.items()}
    if windows:
        n, k = len(items), items[0].shape[0]
        feats = {key: v.reshape((n, k) + tuple(v.shape[1:])) for key, v in feats.items()}
    return feats


def _mask(lengths: torch.Tensor, size: int) -> torch.Tensor:
    return (torch.arange(size)[None, :] < lengths[:, None]).long()


def _masked_mean(hidden: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    w = keep.to(hidden.dtype).unsqueeze(-1)
    return (hidden * w).sum(1) / w.sum(1).clamp_min(1.0)


def embed(family: Family, model: Any, feats: Dict[str, Any], takes_mask: bool) -> torch.Tensor:
    """(N, D) clip embeddings: the model on the features, pooled; a window axis is averaged over."""
    x = feats[family.input_name]
    if x.dim() == family.input_dims + 1:  # (N, K, ...): K evaluation windows per clip
        n, k = x.shape[:2]
        flat = {key: v.flatten(0, 1) for key, v in feats.items()}
        return embed(family, model, flat, takes_mask).view(n, k, -1).mean(dim=1)
    if x.dim() != family.input_dims:
        raise ValueError(f"the {family.label} encoder takes {family.input_dims}-D {family.input_name}, got {x.shape}")
    mask = feats.get("attention_mask")
    if family.kind == "waveform":
        assert mask is not None
        hidden = model(x, attention_mask=mask if takes_mask else None).last_hidden_state
        frames = model._get_feat_extract_output_lengths(mask.sum(-1))
        return _masked_mean(hidden, torch.arange(hidden.shape[1], device=x.device)[None] < frames[:, None])
    if family.kind == "ast":
        assert mask is not None
        hidden = model(x).last_hidden_state[:, 2:]  # the patch tokens, frequency-major
        cfg = model.config
        t_dim = (int(cfg.max_length) - int(cfg.patch_size)) // int(cfg.time_stride) + 1
        f_dim = hidden.shape[1] // t_dim
        starts = torch.arange(t_dim, device=x.device) * int(cfg.time_stride)
        keep = starts[None, :] < mask.sum(-1)[:, None]  # (N, t_dim): the patch starts on audio
        return _masked_mean(hidden, keep.repeat(1, f_dim))
    if family.kind == "whisper":
        assert mask is not None
        hidden = model(x).last_hidden_state
        frames = torch.div(mask.sum(-1) + 1, 2, rounding_mode="floor")  # the encoder halves the frames
        return _masked_mean(hidden, torch.arange(hidden.shape[1], device=x.device)[None] < frames[:, None])
    extra = {"is_longer": feats["is_longer"]} if "is_longer" in feats else {}
    return model(input_features=x, **extra).audio_embeds


def embedding_dim(family: Family, config: Any) -> int:
    if family.kind == "clap":
        return int(config.projection_dim)
    return int(config.d_model if family.kind == "whisper" else config.hidden_size)
