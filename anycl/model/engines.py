"""The engines that run a tower for :meth:`~anycl.model.ContrastiveModel.encode`, mining and evaluation.

- ``"torch"``: PyTorch in float32, the reference (``encode`` equals sentence-transformers' to about 1e-7);
- ``"torch-bf16"``: PyTorch under bfloat16 autocast (fast on CPUs with bf16 units, AVX-512 BF16 or AMX, and on
  GPUs from Ampere on; the result is float32);
- ``"onnx"``: ONNX Runtime (CPU) in float32, on a graph exported from the tower's current weights;
- ``"onnx-int8"``: the same graph with its weights dynamically quantised to int8 (ONNX Runtime's
  ``quantize_dynamic``);
- ``"auto"``: ``"torch-bf16"`` where :func:`~anycl.model.precision.bf16_supported` says the device has bf16
  units, else ``"torch"``.

The ONNX engines export the tower once per state of its weights (a change of any parameter or buffer, e.g. an
optimiser step, exports again at the next call: :func:`weights_state`) and keep the session for the tower while
it lives, so a mining pass during training pays one export. They run on the CPU only and need ``pip install 'anycl[onnx]'``.
The tolerances measured against ``"torch"`` are in docs/scale.md.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import tempfile
import time
import warnings
import weakref
from contextlib import nullcontext
from typing import Any, Callable, Dict, Optional, Tuple

import numpy as np
import torch

from anycl.errors import ConfigError, did_you_mean
from anycl.export.to_onnx import ONNX_FILE, export_graph, onnx_session, run_onnx

from .precision import bf16_supported

log = logging.getLogger("anycl")

ENGINES = ("auto", "torch", "torch-bf16", "onnx", "onnx-int8")
ONNX_ENGINES = ("onnx", "onnx-int8")
# the mining option precision's values as engines (precision="bf16" is engine="torch-bf16")
PRECISION_ENGINE = {"fp32": "torch", "bf16": "torch-bf16"}
ONNX_EXTRA = "pip install 'anycl[onnx]'"


def check_engine(engine: Any, option: str = "engine") -> str:
    """``engine`` when it is one of :data:`ENGINES`, else a :class:`~anycl.errors.ConfigError` naming ``option``."""
    if not isinstance(engine, str) or engine not in ENGINES:
        hint = did_you_mean(engine, list(ENGINES)) if isinstance(engine, str) else ""
        raise ConfigError(f"{option} must be one of {', '.join(map(repr, ENGINES))}, got {engine!r}{hint}")
    return engine


def engine_from(precision: Optional[str], engine: str, option: str = "engine") -> str:
    """The engine that ``precision`` (the older name of the torch engines: ``"fp32"``, ``"bf16"``; None: not
    given) and ``engine`` name together: ``"auto"`` settled by a precision given; a precision that names another
    engine than ``engine`` is a :class:`~anycl.errors.ConfigError`."""
    check_engine(engine, option)
    if precision is None:
        return engine
    if precision not in PRECISION_ENGINE:
        raise ConfigError(f"precision must be one of {tuple(PRECISION_ENGINE)}, got {precision!r}")
    named = PRECISION_ENGINE[precision]
    if engine not in ("auto", named):
        raise ConfigError(
            f"precision={precision!r} (the engine {named!r}) and {option}={engine!r} disagree: give one of them"
        )
    return named


def resolve_engine(engine: str, device: Any = None, option: str = "engine") -> str:
    """The concrete engine of ``engine`` on ``device`` (``"auto"``: ``"torch-bf16"`` where the device has bf16
    units, else ``"torch"``); an ONNX engine is checked here: the CPU only, onnxruntime installed."""
    check_engine(engine, option)
    kind = torch.device(device).type if device is not None else "cpu"
    if engine == "auto":
        return "torch-bf16" if bf16_supported(kind) else "torch"
    if engine in ONNX_ENGINES:
        if kind != "cpu":
            raise ConfigError(
                f"{option}={engine!r} runs on the CPU (ONNX Runtime's CPU provider) but the model is on {kind}: "
                f"use {option}='torch' or 'torch-bf16' there, or move the model to the CPU"
            )
        check_onnx_installed(engine, option)
    return engine


def check_onnx_installed(engine: str, option: str = "engine") -> None:
    """A :class:`~anycl.errors.ConfigError` naming the pip extra when onnx or onnxruntime is missing."""
    for package in ("onnx", "onnxruntime"):
        try:
            __import__(package)
        except ImportError:
            raise ConfigError(
                f"{option}={engine!r} needs the package {package} (not installed): {ONNX_EXTRA}, or use "
                f"{option}='torch' or 'torch-bf16'"
            ) from None


def tower_runner(model, tower, with_head: bool, engine: str) -> Callable[[Any], torch.Tensor]:
    """``collated features -> (B, D) float32 CPU tensor``: ``tower`` run by the concrete ``engine`` (not
    ``"auto"``: :func:`resolve_engine` first), as :meth:`~anycl.model.ContrastiveModel.encode` runs it (no
    dropout, the projection head when ``with_head``, not normalised)."""
    if engine in ONNX_ENGINES:
        return _OnnxRunner(model, tower, with_head, engine == "onnx-int8")

    def run(feats: Any) -> torch.Tensor:
        dev = next(iter(tower.parameters()), torch.empty(0)).device
        with engine_scope(engine, dev):  # nests in the caller's scope: the weights' bf16 copies stay cached there
            return tower(feats, train=False, use_head=with_head).float().cpu()

    return run


def engine_scope(engine: str, device: Any):
    """The context a torch engine runs in: bf16 autocast on ``device`` for ``"torch-bf16"``, else nothing. Held
    around a whole loop of batches, torch keeps the bf16 copies of the weights it casts until the outermost scope
    ends, so they are cast once per loop rather than once per batch."""
    if engine == "torch-bf16":
        return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)
    return nullcontext()


# tower -> {(with_head, int8): (the weights' state, the session)}; a tower's sessions go with it
_SESSIONS: weakref.WeakKeyDictionary[Any, Dict[Tuple[bool, bool], Tuple[Any, Any]]] = weakref.WeakKeyDictionary()


_BITS = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def _checksum(t: torch.Tensor) -> int:
    """The sum of a tensor's bit patterns (as integers): any update of its values changes it, short of a
    change that exactly cancels out in the sum."""
    t = t.detach()
    if t.is_complex():
        t = torch.view_as_real(t)
    flat = t.contiguous().reshape(-1)
    if flat.dtype == torch.bool:
        flat = flat.to(torch.uint8)
    bits = flat.view(_BITS[flat.element_size()]) if flat.is_floating_point() else flat
    return int(bits.cpu().numpy().sum(dtype=np.int64))  # numpy's integer sum: several times torch's here


def weights_state(tower) -> tuple:
    """A token of the state of ``tower``'s weights: each tensor's storage and the checksum of its values (the
    version counter would not do: torch's fused AdamW updates parameters without counting), and the adapter's
    options. Computed once per ``encode`` call (tens of ms for all-MiniLM-L6-v2's 22 M parameters)."""
    tensors = itertools.chain(tower.parameters(), tower.buffers())
    adapter = json.dumps(tower.adapter.config(), sort_keys=True, default=str)
    with torch.no_grad():
        return (adapter,) + tuple((t.data_ptr(), t.shape, _checksum(t)) for t in tensors)


class _OnnxRunner:
    """Runs the tower's ONNX graph; the graph is exported (and quantised) on the first batch when the weights
    changed since the session kept for this tower was made."""

    def __init__(self, model, tower, with_head: bool, int8: bool):
        self.model, self.tower, self.with_head, self.int8 = model, tower, with_head, int8
        self.session: Any = None

    def __call__(self, feats: Any) -> torch.Tensor:
        if self.session is None:
            self.session = onnx_session_for(self.model, self.tower, self.with_head, self.int8, feats)
        return torch.from_numpy(run_onnx(self.session, feats)).float()


def onnx_session_for(model, tower, with_head: bool, int8: bool, feats: Any):
    """The ONNX Runtime session of ``tower``'s current weights (exported, traced on ``feats``, and for
    ``int8`` quantised, when no session of this state is kept)."""
    if getattr(tower, "lora", None) is not None:
        raise ConfigError(
            "the onnx engines cannot run a tower with an unmerged LoRA adapter; merge it first "
            "(anycl.model.lora.merge_lora(model)) or use engine='torch' or 'torch-bf16'"
        )
    state = weights_state(tower)
    kept = _SESSIONS.setdefault(tower, {})
    hit = kept.get((with_head, int8))
    if hit is not None and hit[0] == state:
        return hit[1]
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="anycl_engine_") as tmp:
        fp32_dir = os.path.join(tmp, "fp32")
        os.makedirs(fp32_dir)
        export_graph(model, tower, feats, os.path.join(fp32_dir, ONNX_FILE), with_head)
        run_dir = fp32_dir
        if int8:
            run_dir = os.path.join(tmp, "int8")
            os.makedirs(run_dir)
            quantize_int8(os.path.join(fp32_dir, ONNX_FILE), os.path.join(run_dir, ONNX_FILE))
        session = onnx_session(run_dir, threads=torch.get_num_threads())  # read into memory: the files may go
    kept[(with_head, int8)] = (state, session)
    log.debug(
        "exported the %s tower to ONNX%s in %.1f s", tower.modality, " int8" if int8 else "", time.perf_counter() - t0
    )
    return session


def quantize_int8(src: str, dst: str) -> None:
    """ONNX Runtime's dynamic quantisation of the graph ``src`` into ``dst``: int8 weights (per output
    channel) for its matrix products, activations quantised per batch at run time."""
    from onnxruntime.quantization import QuantType, quantize_dynamic  # lazy: optional dependency (`onnx` extra)

    quiet = logging.getLogger()  # the quantiser logs advice ("run pre-processing first") at WARNING on the root
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quantize_dynamic(src, dst, weight_type=QuantType.QInt8, per_channel=True)
    finally:
        quiet.setLevel(level)
