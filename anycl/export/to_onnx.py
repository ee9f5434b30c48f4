"""ONNX export of one tower: ``model.export_onnx(directory, modality=...)``.

The exported graph is the tower as :meth:`~anycl.model.ContrastiveModel.encode` runs it: the adapter's
on-device step (``prepare``: image normalisation, audio log-mels), the encoder, the projection head when
``encode`` uses it, and L2 normalisation (``normalize=True``). Its inputs are what the adapter's
``collate`` makes of evaluation views, so the CPU-side preprocessing stays in Python:

- text: ``input_ids``, ``attention_mask`` (and ``token_type_ids`` when the tokenizer makes them),
  int64 (batch, tokens); the tokenizer is saved beside the model (``tokenizer.json`` …), so
  ``tokenizers``/``transformers`` alone prepare inputs;
- image: ``pixels`` uint8 (batch, channels, size, size), the centre crop ``eval_view`` makes;
- audio: ``waveform`` float32 (batch, samples) at the adapter's sample rate (the centre window); with a
  pretrained ``transformers`` encoder, its feature extractor's output instead (``input_values`` or
  ``input_features``, and ``attention_mask`` where the family has one), the extractor's settings saved beside
  the model (``preprocessor_config.json``), so ``transformers`` alone prepares inputs.

The folder holds ``model.onnx``, ``anycl_onnx.json`` (inputs, output, modality, preprocessing options) and
a model card (``README.md``). Batch (and, for text, token) dimensions are dynamic. Needs ``onnx``
(``pip install 'anycl[onnx]'``); :func:`onnx_session` / :func:`run_onnx` run it with ONNX Runtime.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import warnings
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from anycl.errors import ConfigError
from anycl.files import check_export_folder

from .card import write_card
from .registry import register

ONNX_FILE = "model.onnx"
META_FILE = "anycl_onnx.json"
OUTPUT = "embedding"


class _ExportedTower(nn.Module):
    """The tower as ``encode`` runs it, with positional tensor inputs (what the exporter traces)."""

    def __init__(self, tower, names: Optional[List[str]], use_head: bool, normalize: bool):
        super().__init__()
        self.tower = tower
        self.names = names
        self.use_head = use_head
        self.normalize = normalize

    def forward(self, *tensors):
        feats = dict(zip(self.names, tensors)) if self.names else tensors[0]
        out = self.tower(feats, train=False, use_head=self.use_head).float()
        return F.normalize(out, dim=-1) if self.normalize else out


class RealMelSpectrogram(nn.Module):
    """torchaudio's ``MelSpectrogram`` (power 2, centred frames, one-sided) computed without complex
    tensors: frames × window against cosine and sine bases (a strided convolution), so the ONNX exporter
    can trace it (its STFT does not take complex outputs). Same numbers up to float rounding."""

    basis: torch.Tensor  # buffers (register_buffer), declared for type checkers
    fb: torch.Tensor

    def __init__(self, mel):
        super().__init__()
        spec = mel.spectrogram
        if spec.power != 2.0 or spec.normalized or not spec.center or spec.pad:
            raise ConfigError("only power-2, unnormalised, centred mel spectrograms can be exported to ONNX")
        n_fft, win = spec.n_fft, spec.window.float()
        left = (n_fft - win.numel()) // 2  # torch.stft centres a shorter window in the frame
        window = torch.zeros(n_fft)
        window[left : left + win.numel()] = win
        k = torch.arange(n_fft // 2 + 1, dtype=torch.float64).unsqueeze(1)
        t = torch.arange(n_fft, dtype=torch.float64).unsqueeze(0)
        angle = 2 * torch.pi * k * t / n_fft
        basis = torch.cat([torch.cos(angle), -torch.sin(angle)]) * window.double()
        self.register_buffer("basis", basis.float().unsqueeze(1))  # (2F, 1, n_fft)
        self.register_buffer("fb", mel.mel_scale.fb.float())  # (F, n_mels)
        self.n_fft, self.hop, self.pad_mode = n_fft, spec.hop_length, spec.pad_mode
        self.freqs = n_fft // 2 + 1

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        shape = wave.shape
        x = wave.reshape(-1, 1, shape[-1])
        x = F.pad(x, (self.n_fft // 2, self.n_fft // 2), mode=self.pad_mode)
        spec = F.conv1d(x, self.basis, stride=self.hop)  # (B, 2F, T)
        power = spec[:, : self.freqs].pow(2) + spec[:, self.freqs :].pow(2)
        mel = torch.matmul(power.transpose(1, 2), self.fb).transpose(1, 2)  # (B, n_mels, T)
        return mel.reshape(tuple(shape[:-1]) + tuple(mel.shape[-2:]))


def _default_views(adapter, modality: str) -> List[Any]:
    """Two evaluation views to trace with, when no example items are given: the adapter's ``example_views``."""
    views = adapter.example_views() if hasattr(adapter, "example_views") else None
    if views is None:
        raise ConfigError(
            f"give example items to export the {modality!r} tower: export_onnx(..., example=[item, item])"
        )
    return list(views)


def features_for(model, items: Sequence[Any], modality: Optional[str] = None) -> Any:
    """The collated features ``encode`` would feed the tower for ``items`` (raw items, loaded here)."""
    tower = model.tower(modality or model.sides.get("anchor", model.modalities[0]))
    ad = tower.adapter
    return ad.collate([ad.eval_view(ad.load(x)) for x in items])


def _as_inputs(feats: Any) -> tuple:
    if isinstance(feats, dict):
        names = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in feats]
        names += sorted(k for k in feats if k not in names and torch.is_tensor(feats[k]))
        return names, tuple(feats[k] for k in names)
    if torch.is_tensor(feats):
        return None, (feats,)
    raise ConfigError(f"cannot export a tower whose collated batch is a {type(feats).__name__}; ONNX needs tensors")


def export_graph(
    model, tower, feats: Any, path: str, use_head: bool, normalize: bool = False, opset: int = 17
) -> List[str]:
    """Trace ``tower`` of ``model`` (as ``encode`` runs it, with or without its projection head) on the
    collated ``feats`` and write the graph to the ``.onnx`` file ``path``; returns the input names.
    No card, no tokenizer files: :func:`export_onnx` adds those, and the ``onnx`` engines of
    :mod:`anycl.model.engines` run the bare graph."""
    adapter = tower.adapter
    names, inputs = _as_inputs(feats)
    if names is None:
        names = [getattr(adapter, "onnx_input_name", "input")]
        keyed = None
    else:
        keyed = list(names)
    axes = dict(getattr(adapter, "onnx_dynamic_axes", {0: "batch"}))
    per_input = getattr(adapter, "onnx_input_axes", None)  # an adapter whose inputs differ in shape says each's
    dynamic = {
        n: dict((per_input(n, feats.get(n) if isinstance(feats, dict) else None) if per_input else None) or axes)
        for n in names
    }
    dynamic[OUTPUT] = {0: "batch"}
    wrapper = _ExportedTower(tower, keyed, use_head, normalize).eval()
    was_training = model.training
    model.eval()
    replace_mel = getattr(adapter, "mel_replaced", None)  # audio: a mel spectrogram ONNX can trace
    with replace_mel(RealMelSpectrogram) if replace_mel is not None else contextlib.nullcontext():
        try:
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the TorchScript exporter's tracer and deprecation warnings
                wrapper(*(t.cpu() for t in inputs))  # lazy imports and per-device transforms happen outside the trace
                torch.onnx.export(
                    wrapper,
                    tuple(t.cpu() for t in inputs),
                    path,
                    input_names=names,
                    output_names=[OUTPUT],
                    dynamic_axes=dynamic,
                    opset_version=opset,
                    dynamo=False,
                    do_constant_folding=True,
                )
        finally:
            model.train(was_training)
    return list(names)


@register("onnx")
def export_onnx(
    model,
    directory: str,
    modality: Optional[str] = None,
    example: Optional[Sequence[Any]] = None,
    normalize: bool = True,
    opset: int = 17,
    overwrite: bool = False,
) -> str:
    """Write one tower of ``model`` as ONNX into ``directory``; returns the ``model.onnx`` path.

    Args:
        modality: the tower (default: the anchor side's).
        example: raw items to trace with (default: the adapter's ``example_views``; text, image and audio have them).
        normalize: bake ``encode``'s L2 normalisation into the graph.
        opset: the ONNX opset (17 has the STFT that audio towers need).
        overwrite: write into a folder that is not empty (files of the same names, e.g. ``model.onnx`` or
            ``README.md``, are replaced, the others kept); without it such a folder is refused.
    """
    check_export_folder(directory, overwrite, "the ONNX export")
    try:
        import onnx  # lazy: optional dependency (the `onnx` extra)
    except ImportError as exc:
        raise ConfigError("ONNX export needs the package onnx: pip install 'anycl[onnx]'") from exc
    name = modality or model.sides.get("anchor", model.modalities[0])
    tower = model.tower(name)
    mod = tower.modality
    if getattr(tower, "lora", None) is not None:
        raise ConfigError(
            "this tower carries an unmerged LoRA adapter; merge it first (anycl.model.lora.merge_lora(model))"
        )
    adapter = tower.adapter
    if example is not None:
        feats = features_for(model, list(example), name)
    else:
        views = _default_views(adapter, mod)
        feats = adapter.collate(views)
    out_dir = Path(directory)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / ONNX_FILE
    names = export_graph(model, tower, feats, str(path), tower.encode_with_head, normalize=normalize, opset=opset)
    onnx.checker.check_model(str(path))
    meta: Dict[str, Any] = {
        "modality": mod,
        "inputs": names,
        "output": OUTPUT,
        "normalized": normalize,
        "projection_head": tower.encode_with_head,
        "opset": opset,
        "adapter": adapter.config(),
    }
    st = getattr(tower.encoder, "st", None)
    if st is not None:
        if hasattr(st.tokenizer, "save_pretrained"):  # a transformers tokenizer: its files
            st.tokenizer.save_pretrained(str(out_dir))
        else:  # a `tokenizers.Tokenizer` (StaticEmbedding): its one file; inputs are input_ids + offsets
            st.tokenizer.save(str(out_dir / "tokenizer.json"))
        limit = float(st.max_seq_length or 0)
        meta["max_seq_length"] = int(limit) if math.isfinite(limit) else None
    extractor = getattr(tower.encoder, "extractor", None)  # a pretrained audio encoder's feature extractor
    if extractor is not None and hasattr(extractor, "save_pretrained"):
        extractor.save_pretrained(str(out_dir))
    (out_dir / META_FILE).write_text(json.dumps(meta, indent=2, default=str))

    write_card(model, str(out_dir), kind="onnx", modality=name)
    return str(path)


def onnx_session(directory: str, threads: Optional[int] = None):
    """An ONNX Runtime CPU session for a folder written by :func:`export_onnx`."""
    try:
        import onnxruntime as ort  # lazy: optional dependency (the `onnx` extra)
    except ImportError as exc:
        raise ConfigError("running an ONNX export needs onnxruntime: pip install 'anycl[onnx]'") from exc
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
    return ort.InferenceSession(os.path.join(directory, ONNX_FILE), opts, providers=["CPUExecutionProvider"])


def run_onnx(session, feats: Any):
    """Embeddings (numpy, (N, D)) of collated features (as :func:`features_for` makes them)."""
    names = [i.name for i in session.get_inputs()]
    if isinstance(feats, dict):
        arrays = {n: feats[n].cpu().numpy() for n in names}
    else:
        arrays = {names[0]: feats.cpu().numpy()}
    return session.run(None, arrays)[0]
