"""Embedding distillation: the student's embeddings regress a teacher model's embeddings (MSE).

``fit(data, loss="distill_mse", loss_options={"teacher": t})`` with ``t`` an anycl
:class:`~anycl.model.ContrastiveModel`, a ``sentence_transformers.SentenceTransformer``, or a path
(an anycl model folder or fit output folder, else a sentence-transformers model path or name).

Before training, ``fit`` opens the teacher and embeds every row's anchor with it once, without gradient
(:mod:`anycl.model.teacher`; the loss holds the teacher as given and never runs it), and each batch carries
those vectors (``teacher=`` (B, D_teacher)). The loss is sentence-transformers' ``MSELoss``: the mean over the
student's sides (anchor, and the positive when the data has pairs — e.g. a translation whose teacher vector is
the source sentence's) of ``mean((student − teacher)²)``. The teacher is never trained and is not saved with
the student.

Widths must match: a student narrower or wider than the teacher needs ``head=<teacher width>``.
"""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F

from anycl.errors import ConfigError

from .base import ContrastiveLoss, as_float, check_pair, full_precision
from .registry import register


@register("distill_mse", "mse")
class DistillMSE(ContrastiveLoss):
    """MSE between the student's embeddings and the teacher's embedding of each row's anchor.

    Args:
        teacher: the teacher (see the module docstring). Required.
        normalize: L2-normalise both the teacher's and the student's embeddings first (default False:
            the raw vectors, as sentence-transformers' ``MSELoss``).
        batch_size: rows the teacher embeds at once while ``fit`` precomputes its embeddings.

    ``teacher`` is kept as given: a loss never opens or runs a model.
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
        # a plain attribute, not a submodule: the teacher is neither trained nor saved with the student; fit
        # opens it (anycl.model.teacher.open_teacher) and hands its embeddings to forward as ``teacher=``
        self.__dict__["teacher"] = teacher
        self.normalize = bool(normalize)
        self.batch_size = int(batch_size)

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
