"""The audio CNN's shipped starting weights: ``anycl-audio-cnn-v2``, made by anycl in two stages on audio from Debian
packages (none of them a benchmark set's): pretrained without labels on about 132 minutes of recorded telephone
prompts in five languages, game sound effects and voices, and instrument and drum samples; then trained with
supervised contrast so that clips of one speaker (13 Festival voices, 17 OpenArena characters) lie close, beside the
unlabelled clips. Shipped inside the package (safetensors, 0.4 MB), so ``fit(..., modality="audio")`` starts from
them offline, with no download and no pickle: they are the default start of the default encoder since issue 29's
round 8 (worst margin over its targets −0.015 on the test splits against −0.034 from random weights; −0.007 since
round 9 fine-tunes from them for the whole step budget, :func:`anycl.fitting.recipe.start_budget`; 15 of 16 targets
met, read again on 2026-12-07).

How they were made, and what they were measured to buy, is in ``weights/anycl-audio-cnn-v2.json`` (both stages'
corpora, step counts and commands, the file's SHA-256) and in ``benchmarks/results/audio_protocol.md`` (round 8). They
fit the default encoder only: the default ``channels``, ``embedding_dim`` and ``pooling`` on the adapter's default
log-mels (16 kHz, 64 mels, 25 ms / 10 ms, 50 Hz to 8 kHz). :func:`mismatch` says why another setting cannot start
from them.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from pathlib import Path
from typing import Any, Dict, Mapping, Optional

import torch
from torch import nn

from anycl.errors import ConfigError

log = logging.getLogger("anycl")

NAME = "anycl-audio-cnn-v2"
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


@functools.lru_cache(maxsize=1)
def card() -> Dict[str, Any]:
    """The shipped weights' record (``weights/<NAME>.json``)."""
    return json.loads((WEIGHTS_DIR / f"{NAME}.json").read_text())


def _frames(settings: Mapping[str, Any]) -> Dict[str, Any]:
    """The log-mel front end the weights were trained on, resolved as the adapter resolves its options (a setting left
    to its default, ``n_fft`` or ``f_max``, is the number it stands for)."""
    rate = int(settings["sample_rate"])
    win = int(round(settings["win_ms"] * rate / 1000))
    return {
        "sample_rate": rate,
        "n_mels": int(settings["n_mels"]),
        "win_length": win,
        "hop_length": int(round(settings["hop_ms"] * rate / 1000)),
        "n_fft": int(settings["n_fft"]) if settings["n_fft"] else 1 << (win - 1).bit_length(),
        "f_min": float(settings["f_min"]),
        "f_max": float(settings["f_max"]) if settings["f_max"] else rate / 2,
    }


def mismatch(encoder: nn.Module, adapter: Any) -> Optional[str]:
    """None when ``encoder`` (an :class:`~adapters.audio_encoder.AudioCNN`) behind ``adapter`` (an AudioAdapter, read
    for its resolved log-mel settings) is the shipped weights' setting; else what differs, in words."""
    want = card()
    spec = dict(getattr(encoder, "anycl_spec", {}))
    spec.setdefault("pooling", "mean+max")
    for key in ("channels", "embedding_dim", "pooling"):
        if spec.get(key) != want["encoder"][key]:
            return f"the encoder's {key}={spec.get(key)!r} (the shipped weights have {want['encoder'][key]!r})"
    for key, value in _frames(want["adapter"]).items():
        have = getattr(adapter, key)
        if have != value:
            return f"the adapter's {key}={have!r} (the shipped weights were trained with {value!r})"
    return None


def load_into(encoder: nn.Module) -> None:
    """Copy the shipped weights into ``encoder`` (the default AudioCNN), after checking the file's SHA-256."""
    from safetensors.torch import load  # lazy: only where the shipped weights are used

    path = WEIGHTS_DIR / f"{NAME}.safetensors"
    if not path.is_file():
        raise ConfigError(
            f"the shipped audio weights {path} are missing: reinstall anycl, or pass "
            f"encoder_options={{'pretrained': False}} to start from random weights"
        )
    data = path.read_bytes()  # read once: checked, then loaded
    digest = hashlib.sha256(data).hexdigest()
    if digest != card()["sha256"]:
        raise ConfigError(
            f"the shipped audio weights {path} are damaged (SHA-256 {digest}, expected "
            f"{card()['sha256']}): reinstall anycl"
        )
    with torch.no_grad():
        encoder.load_state_dict(load(data), strict=True)
    vars(encoder)["anycl_start"] = NAME  # the recipe line says where the encoder started (a plain attribute)


def start(encoder: nn.Module, pretrained: Optional[bool], adapter: Any):
    """``pretrained``: None (the default) starts ``encoder`` from the shipped weights where its setting is theirs and
    says in one INFO line why not otherwise; True insists (a setting that is not theirs is a ConfigError naming it);
    False leaves its random weights."""
    if pretrained is not None and not isinstance(pretrained, bool):
        raise ConfigError(f"the audio encoder's pretrained must be true, false or left out, got {pretrained!r}")
    if pretrained is False:
        return encoder
    why = mismatch(encoder, adapter)
    if why is not None:
        if pretrained:
            raise ConfigError(
                f"pretrained=True: the shipped audio weights ({NAME}) do not fit {why}; use the default setting, or "
                f"pass pretrained=False to start from random weights"
            )
        log.info("the audio encoder starts from random weights: the shipped %s do not fit %s", NAME, why)
        return encoder
    load_into(encoder)
    return encoder
