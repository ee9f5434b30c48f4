"""Distillation: the student's embeddings regress a teacher model's embeddings (``distill_mse``), or the
student's scores of each anchor's candidates follow a teacher's scores of them (``distill_kl``, below).

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

import math
from typing import Any, Optional

import torch
import torch.nn.functional as F

from anycl.errors import ConfigError

from .base import ContrastiveLoss, as_float, check_pair, full_precision, negatives_3d
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


@register("distill_kl", "distill_kl_div")
class DistillKLDiv(ContrastiveLoss):
    """KL divergence from a teacher's distribution over each anchor's candidates (sentence-transformers'
    ``DistillKLDivLoss``; Lin et al. 2020 for dense retrieval).

    The candidates of an anchor are its positive and its hard negative(s); the teacher's scores of the pairs
    (e.g. a cross-encoder's) are the ``positive_score`` and ``negative_score`` columns. With s the student's
    similarity (dot product by default, as sentence-transformers) the loss is
    ``KL(softmax(teacher / T_t) ‖ softmax(s / T_s))`` averaged over the batch and times ``T_s²``.

    Args:
        similarity: ``"dot"`` (default) or ``"cosine"``.
        temperature: T of both the student and the teacher (default 1).
        student_temperature, teacher_temperature: each its own T (default ``temperature``).

    ``forward`` takes ``negative`` (B, K, D) with ``negative_score`` (B,) or (B, K); ``fit`` gives one
    negative column with its ``negative_score``.
    """

    in_batch_negatives = False
    score_columns = ("positive_score", "negative_score")
    score_range = None

    def __init__(
        self,
        similarity: str = "dot",
        temperature: float = 1.0,
        student_temperature: Optional[float] = None,
        teacher_temperature: Optional[float] = None,
    ):
        super().__init__()
        if similarity not in ("dot", "cosine"):
            raise ValueError(f"distill_kl: similarity must be 'dot' or 'cosine', got {similarity!r}")
        self.similarity = similarity
        self.student_temperature = float(temperature if student_temperature is None else student_temperature)
        self.teacher_temperature = float(temperature if teacher_temperature is None else teacher_temperature)
        for label, value in (
            ("student_temperature", self.student_temperature),
            ("teacher_temperature", self.teacher_temperature),
        ):
            if not 0 < value < math.inf:
                raise ValueError(f"distill_kl: {label} must be a positive finite number, got {value}")

    def forward(self, anchor, positive, negative=None, labels=None, positive_score=None, negative_score=None):
        check_pair(anchor, positive, "distill_kl")
        batch, dim = anchor.shape
        negative = negatives_3d(negative, batch, dim, "distill_kl")
        if negative is None or positive_score is None or negative_score is None:
            raise ValueError(
                "distill_kl needs hard negative(s) and the teacher's 'positive_score' and 'negative_score' columns"
            )
        with full_precision(anchor):
            a, p, n = as_float(anchor, positive, negative)
            if self.similarity == "cosine":
                a, p, n = F.normalize(a, dim=-1), F.normalize(p, dim=-1), F.normalize(n, dim=-1)
            student = torch.cat([(a * p).sum(-1, keepdim=True), (a.unsqueeze(1) * n).sum(-1)], dim=1)
            teacher = torch.cat(
                [
                    torch.as_tensor(positive_score).float().view(batch, 1),
                    torch.as_tensor(negative_score).float().view(batch, -1),
                ],
                dim=1,
            ).to(a.device)
            if teacher.shape != student.shape:
                raise ValueError(
                    f"distill_kl: the teacher's scores {tuple(teacher.shape)} do not match the candidates "
                    f"{tuple(student.shape)} (a positive_score and one negative_score per hard negative)"
                )
            log_p = torch.log_softmax(student / self.student_temperature, dim=1)
            q = torch.softmax(teacher.detach() / self.teacher_temperature, dim=1)
            return F.kl_div(log_p, q, reduction="batchmean") * self.student_temperature**2
