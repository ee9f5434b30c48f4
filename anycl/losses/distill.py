"""Embedding distillation: the student's embeddings regress a teacher model's embeddings (MSE).

``fit(data, loss="distill_mse", loss_options={"teacher": t})`` with ``t`` an anycl
:class:`~anycl.model.ContrastiveModel`, a ``sentence_transformers.SentenceTransformer``, or a path
(an anycl model folder or fit output folder, else a sentence-transformers model path or name).

Before training, ``fit`` embeds every row's anchor with the teacher once, without gradient
(:func:`teacher_embeddings`), and each batch carries those vectors (``teacher=`` (B, D_teacher)). The loss
is sentence-transformers' ``MSELoss``: the mean over the student's sides (anchor, and the positive when
the data has pairs — e.g. a translation whose teacher vector is the source sentence's) of
``mean((student − teacher)²)``. The teacher is never trained and is not saved with the student.

Widths must match: a student narrower or wider than the teacher needs ``head=<teacher width>``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from ..model import CONFIG_FILE, ContrastiveModel, load
from .base import ContrastiveLoss, as_float, check_pair, full_precision
from .registry import register


def _open_teacher(teacher: Any):
    """A ContrastiveModel / SentenceTransformer as given; a path → anycl model if it is one, else ST."""
    if isinstance(teacher, (str, os.PathLike)):
        p = Path(os.fspath(teacher))

        if (p / CONFIG_FILE).exists() or (p / "model" / CONFIG_FILE).exists():
            return load(str(p))
        try:
            from sentence_transformers import SentenceTransformer  # lazy: sentence-transformers

            return SentenceTransformer(os.fspath(teacher), device="cpu")
        except Exception as exc:
            raise ConfigError(
                f"distill_mse: cannot open the teacher {os.fspath(teacher)!r} as an anycl model folder "
                f"or a sentence-transformers model ({type(exc).__name__}: {exc})"
            ) from None
    if hasattr(teacher, "encode"):
        return teacher
    raise ConfigError(
        f"distill_mse: teacher must be an anycl model, a sentence-transformers model or a path, "
        f"got {type(teacher).__name__}"
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


@register("distill_mse", "mse")
class DistillMSE(ContrastiveLoss):
    """MSE between the student's embeddings and the teacher's embedding of each row's anchor.

    Args:
        teacher: the teacher (see the module docstring). Required.
        normalize: L2-normalise both the teacher's and the student's embeddings first (default False:
            the raw vectors, as sentence-transformers' ``MSELoss``).
        batch_size: rows the teacher embeds at once while ``fit`` precomputes its embeddings.
    """

    in_batch_negatives = False
    accepts_negatives = False
    needs_teacher = True

    def __init__(self, teacher: Any = None, normalize: bool = False, batch_size: int = 64):
        super().__init__()
        if teacher is None:
            raise ConfigError(
                "distill_mse needs a teacher: loss_options={'teacher': <anycl model, "
                "sentence-transformers model, or path>}"
            )
        # a plain attribute, not a submodule: the teacher is neither trained nor saved with the student
        self.__dict__["teacher"] = _open_teacher(teacher)
        self.normalize = bool(normalize)
        self.batch_size = int(batch_size)

    def embed_teacher(self, items: Sequence[Any], modality: Any = None) -> torch.Tensor:
        return teacher_embeddings(self.__dict__["teacher"], items, self.batch_size, self.normalize, modality)

    def forward(self, anchor, positive, negative=None, labels=None, teacher=None):
        check_pair(anchor, positive, "distill_mse")
        if teacher is None:
            raise ValueError("distill_mse needs the teacher's embeddings (teacher=, (B, D)); fit computes them")
        with full_precision(anchor):
            a, p, t = as_float(anchor, positive, teacher.detach())
            if t.shape != a.shape:
                raise ValueError(
                    f"distill_mse: the teacher's embeddings {tuple(t.shape)} and the student's "
                    f"{tuple(a.shape)} differ in width; give the student head={t.shape[-1]}"
                )
            if self.normalize:
                a, p = F.normalize(a, dim=1), F.normalize(p, dim=1)
            return (F.mse_loss(a, t) + F.mse_loss(p, t)) / 2
