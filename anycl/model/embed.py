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

PRECISIONS = ("fp32", "bf16")


def is_anycl_model(model) -> bool:
    """Whether ``model`` is an anycl :class:`~anycl.model.ContrastiveModel` (towers by side), as opposed to a
    plain embedding model with an ``encode`` method (a sentence-transformers model, say) that mining and the
    embedding helpers also take. Duck-typed, so stand-ins in tests count too."""
    return hasattr(model, "tower") and hasattr(model, "sides")


def _device_type(model) -> str:
    dev = getattr(model, "device", None)
    return torch.device(dev).type if dev is not None else "cpu"


def embed_all(
    model,
    items: Sequence[Any],
    side: Optional[str] = None,
    modality: Optional[str] = None,
    batch_size: int = 64,
    precision: str = "fp32",
    bar=None,
) -> torch.Tensor:
    """``(N, D)`` L2-normalised float32 embeddings of ``items`` on the CPU.

    ``model``: an anycl model, a sentence-transformers model (anything with ``encode``) or a plain
    callable ``items -> embeddings``. For an anycl model, ``side`` picks the prompt (``anycl.data.prompts``)
    and, without ``modality``, the tower (the side's modality, else the anchor's).
    ``precision="bf16"`` embeds under bfloat16 autocast (about twice as fast on CPUs with bf16 units and
    on GPUs; the neighbours found barely change, see docs/text.md); the result is float32 either way.
    ``bar``: a tqdm bar advanced by the items embedded.
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "fp32":
        return _embed(model, items, side, modality, batch_size, bar)
    with torch.autocast(_device_type(model), dtype=torch.bfloat16):
        return _embed(model, items, side, modality, batch_size, bar)


def _embed(model, items, side, modality, batch_size: int, bar) -> torch.Tensor:
    if is_anycl_model(model):  # encode advances the bar itself
        if modality is None and side is not None:
            modality = model.sides.get(side, model.sides.get("anchor"))
        prompt = model.prompt_for(side) if side and hasattr(model, "prompt_for") else None
        extra = {"prompt": prompt} if prompt else {}
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
    model, side: str, batch_size: int, precision: str = "fp32", bar=None
) -> Callable[[List[Any]], torch.Tensor]:
    """``items -> embeddings``: :func:`embed_all` with the other arguments bound."""
    return lambda items: embed_all(model, items, side=side, batch_size=batch_size, precision=precision, bar=bar)


def embed_with_tower(
    model, items: Sequence[Any], tower, batch_size: int, with_head: bool, device, show_progress, prompt: Optional[str]
) -> torch.Tensor:
    """(N, D) float32 outputs of ``model``'s ``tower`` for raw items, in order, on the CPU: the loop under
    :meth:`ContrastiveModel.encode` (evaluation views, no dropout, texts batched longest first)."""
    adapter = tower.adapter
    dev = torch.device(device) if device else model.device
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
    with phase_bar(show_progress, len(items), f"encode ({tower.modality})") as bar:
        try:
            for start in range(0, len(items), batch_size):
                views = []
                for i in order[start : start + batch_size]:
                    adapter.validate(items[i], f"item {i}")
                    views.append(adapter.eval_view(adapter.load(items[i])))
                feats = to_device(adapter.collate(views, **extra), dev)
                out.append(tower(feats, train=False, use_head=with_head).float().cpu())
                if bar is not None:
                    bar.update(len(views))
        finally:
            model.train(was_training)
    if not out:
        raise DataError("encode() got no items")
    emb = torch.cat(out)
    return emb[torch.argsort(torch.tensor(order))] if by_length else emb
