"""Teachers for distillation: a model given as an anycl model, a sentence-transformers model or a path is
opened here (not by the loss: a loss sees embeddings, never a model), and embeds items once, without
gradient, before training."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import torch

from anycl.adapters.text_folder import check_no_code
from anycl.errors import ConfigError

from .contrastive import ContrastiveModel, load
from .folder import CONFIG_FILE


def open_teacher(teacher: Any, loss: str = "distill_mse"):
    """A ContrastiveModel / SentenceTransformer as given; a path → anycl model if it is one, else ST."""
    if isinstance(teacher, (str, os.PathLike)):
        p = Path(os.fspath(teacher))

        if (p / CONFIG_FILE).exists() or (p / "model" / CONFIG_FILE).exists():
            return load(str(p))
        check_no_code(os.fspath(teacher))  # no module the folder names is imported, whatever the library version
        try:
            from sentence_transformers import SentenceTransformer  # lazy: sentence-transformers

            return SentenceTransformer(os.fspath(teacher), device="cpu")
        except Exception as exc:
            raise ConfigError(
                f"{loss}: cannot open the teacher {os.fspath(teacher)!r} as an anycl model folder "
                f"or a sentence-transformers model ({type(exc).__name__}: {exc})"
            ) from None
    if hasattr(teacher, "encode"):
        return teacher
    raise ConfigError(
        f"{loss}: teacher must be an anycl model, a sentence-transformers model or a path, got {type(teacher).__name__}"
    )


@torch.no_grad()
def teacher_embeddings(
    teacher: Any, items: Sequence[Any], batch_size: int = 64, normalize: bool = False, modality: Any = None
) -> torch.Tensor:
    """The teacher's (N, D) float32 embeddings of ``items`` on the CPU, computed without gradient.

    An anycl teacher gives its tower's output (``normalize=False`` unless asked); a
    sentence-transformers teacher gives what its modules give (its own ``Normalize`` module included).
    """
    if isinstance(teacher, ContrastiveModel):
        return teacher.encode(list(items), modality=modality, batch_size=batch_size, normalize=normalize).float()
    emb = teacher.encode(
        list(items),
        batch_size=batch_size,
        convert_to_tensor=True,
        show_progress_bar=False,
        normalize_embeddings=normalize,
    )
    return emb.detach().float().cpu()
