"""One path from raw items to embeddings: mining, evaluation and the guide model call :func:`embed_all`;
for an anycl model it goes through :meth:`ContrastiveModel.encode` (options, then the result's
normalisation, truncation and quantisation), whose batched loop over a tower is :func:`embed_with_tower`.
"""

from __future__ import annotations

from typing import Any, Callable, List, Optional, Sequence

import torch
import torch.nn.functional as F

from anycl.data.batching import to_device
from anycl.errors import ConfigError, DataError
from anycl.progress import phase_bar

from .engines import ONNX_ENGINES, PRECISION_ENGINE, engine_from, engine_scope, resolve_engine, tower_runner

PRECISIONS = tuple(PRECISION_ENGINE)  # the older names of the torch engines


def is_anycl_model(model) -> bool:
    """Whether ``model`` is an anycl :class:`~anycl.model.ContrastiveModel` (towers by side), as opposed to a
    plain embedding model with an ``encode`` method (a sentence-transformers model, say) that mining and the
    embedding helpers also take. Duck-typed, so stand-ins in tests count too."""
    return hasattr(model, "tower") and hasattr(model, "sides")


def _device_type(model) -> str:
    dev = getattr(model, "device", None)
    return torch.device(dev).type if dev is not None else "cpu"


def model_engine(model, engine: str, precision: Optional[str] = None, option: str = "engine") -> str:
    """The concrete engine (:mod:`anycl.model.engines`) that embeds with ``model``: ``engine`` with ``precision``
    (:func:`~anycl.model.engines.engine_from`), ``"auto"`` settled by the model's device for an anycl model and
    as ``"torch"`` for another (a sentence-transformers model or a callable runs as it is); an ONNX engine is
    for anycl models only."""
    engine = engine_from(precision, engine, option)
    if is_anycl_model(model):
        return resolve_engine(engine, _device_type(model), option)
    if engine in ONNX_ENGINES:
        raise ConfigError(
            f"{option}={engine!r} runs anycl models only (it exports their towers); this is a "
            f"{type(model).__name__}: use {option}='torch' or 'torch-bf16'"
        )
    return "torch" if engine == "auto" else engine


def embed_all(
    model,
    items: Sequence[Any],
    side: Optional[str] = None,
    modality: Optional[str] = None,
    batch_size: int = 64,
    precision: Optional[str] = None,
    bar=None,
    engine: str = "torch",
) -> torch.Tensor:
    """``(N, D)`` L2-normalised float32 embeddings of ``items`` on the CPU.

    ``model``: an anycl model, a sentence-transformers model (anything with ``encode``) or a plain
    callable ``items -> embeddings``. For an anycl model, ``side`` picks the prompt (``anycl.data.prompts``)
    and, without ``modality``, the tower (the side's modality, else the anchor's).
    ``engine``: what runs the model (:mod:`anycl.model.engines`: ``"torch"``, ``"torch-bf16"``, ``"onnx"``,
    ``"onnx-int8"``, ``"auto"``); the ONNX engines and ``"auto"``'s choice of bf16 apply to anycl models (another
    model under ``"auto"`` runs as it is). ``precision``: the older name of the two torch engines
    (``"fp32"``: ``"torch"``, ``"bf16"``: ``"torch-bf16"``; it settles ``"auto"`` and must agree with any other
    engine). The result is float32 either way. ``bar``: a tqdm bar advanced by the items embedded.
    """
    engine = model_engine(model, engine, precision)
    if is_anycl_model(model):
        return _embed(model, items, side, modality, batch_size, bar, engine)
    with engine_scope(engine, _device_type(model)):
        return _embed(model, items, side, modality, batch_size, bar, "torch")


def _embed(model, items, side, modality, batch_size: int, bar, engine: str) -> torch.Tensor:
    if is_anycl_model(model):  # encode advances the bar itself
        if modality is None and side is not None:
            modality = model.sides.get(side, model.sides.get("anchor"))
        prompt = model.prompt_for(side) if side and hasattr(model, "prompt_for") else None
        extra: dict = {"prompt": prompt} if prompt else {}
        if engine != "torch":
            extra["engine"] = engine
        return model.encode(items, modality=modality, batch_size=batch_size, show_progress=bar, **extra)
    if hasattr(model, "encode"):  # sentence-transformers (or alike)
        e = model.encode(list(items), batch_size=batch_size, convert_to_tensor=True, show_progress_bar=False)
        out = F.normalize(torch.as_tensor(e).float().cpu(), dim=-1)
    elif callable(model):
        out = F.normalize(torch.as_tensor(model(list(items))).float(), dim=-1)
    else:
        raise ConfigError(
            f"cannot embed with a {type(model).__name__}: pass an anycl model, a "
            f"SentenceTransformer or a callable(items) -> embeddings"
        )
    if bar is not None:
        bar.update(len(items))
    return out


def embedder(
    model, side: str, batch_size: int, precision: Optional[str] = None, bar=None, engine: str = "torch"
) -> Callable[[List[Any]], torch.Tensor]:
    """``items -> embeddings``: :func:`embed_all` with the other arguments bound."""
    return lambda items: embed_all(
        model, items, side=side, batch_size=batch_size, precision=precision, bar=bar, engine=engine
    )


def embed_with_tower(
    model,
    items: Sequence[Any],
    tower,
    batch_size: int,
    with_head: bool,
    device,
    show_progress,
    prompt: Optional[str],
    engine: str = "torch",
) -> torch.Tensor:
    """(N, D) float32 outputs of ``model``'s ``tower`` for raw items, in order, on the CPU: the loop under
    :meth:`ContrastiveModel.encode` (evaluation views, no dropout, texts batched longest first), the tower
    run by ``engine`` (:mod:`anycl.model.engines`)."""
    adapter = tower.adapter
    dev = torch.device(device) if device else model.device
    concrete = resolve_engine(engine, dev)
    run = tower_runner(model, tower, with_head, concrete)
    was_training = model.training
    model.eval()
    if dev != model.device:
        model.to(dev)
    out = []
    # texts are embedded longest first, so each batch pads to a similar length; order restored below
    by_length = bool(items) and all(isinstance(x, str) for x in items)
    order = sorted(range(len(items)), key=lambda i: -len(items[i])) if by_length else range(len(items))
    extra = {"prompt": prompt} if prompt else {}
    # show_progress: True (a bar of its own) or an enclosing phase's tqdm bar to advance
    # one engine scope around the loop: bf16 weights cast once per call, not once per batch
    with phase_bar(show_progress, len(items), f"encode ({tower.modality})") as bar, engine_scope(concrete, dev):
        try:
            for start in range(0, len(items), batch_size):
                views = []
                for i in order[start : start + batch_size]:
                    adapter.validate_for_encode(items[i], f"item {i}")
                    views.append(adapter.eval_view(adapter.load(items[i])))
                feats = to_device(adapter.collate(views, **extra), dev)
                out.append(run(feats))
                if bar is not None:
                    bar.update(len(views))
        finally:
            model.train(was_training)
    if not out:
        raise DataError("encode() got no items")
    emb = torch.cat(out)
    return emb[torch.argsort(torch.tensor(order))] if by_length else emb
