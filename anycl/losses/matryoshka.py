r"""Matryoshka representation learning: one loss over nested prefixes of the embedding.

Kusupati et al. 2022 ("Matryoshka Representation Learning", arXiv:2205.13147). The wrapped loss is
computed on the first :math:`d` dimensions of every embedding, re-normalised, for each
:math:`d` in ``dims``, and the results are summed with ``weights``:

.. math:: L = \sum_k w_k \, \ell\big(\hat a_{:d_k}, \hat p_{:d_k}, \hat n_{:d_k}\big),
   \qquad \hat x_{:d} = x_{:d} / \lVert x_{:d} \rVert

so that a prefix of the trained embedding (``model.encode(..., truncate_dim=64)``) is a usable
embedding on its own. ``fit(..., matryoshka_dims=[384, 256, 128, 64])`` wraps the chosen loss.

Because it is a loss of embeddings like any other, GradCache, cross-process gathering and given or
mined hard negatives work unchanged (the prefixes are cut after gathering). Losses with state tied to
the embedding width or to one call per step are refused: a predictor sized by ``build`` (BYOL,
SimSiam), a momentum target or a memory queue (MoCo).
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from anycl.errors import ConfigError

from .base import ContrastiveLoss, copy_capabilities


def check_dims(
    dims: Sequence[int], weights: Optional[Sequence[float]] = None, width: Optional[int] = None
) -> Tuple[List[int], List[float]]:
    """Validate ``matryoshka_dims`` (positive ints, strictly descending, none above ``width``) and
    ``matryoshka_weights``; returns (dims, weights) as lists."""
    if isinstance(dims, (str, bytes)) or not hasattr(dims, "__iter__"):
        raise ConfigError(f"matryoshka_dims must be a list of ints such as [384, 256, 128, 64], got {dims!r}")
    dims = list(dims)
    if not dims or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in dims):
        raise ConfigError(f"matryoshka_dims must be a non-empty list of positive ints, got {dims!r}")
    if any(a <= b for a, b in zip(dims, dims[1:])):
        raise ConfigError(f"matryoshka_dims must be strictly descending (largest first), got {dims}")
    if width is not None and dims[0] > width:
        raise ConfigError(f"matryoshka_dims {dims} go above the embedding width {width}")
    if weights is None:
        weights = [1.0] * len(dims)
    if isinstance(weights, (str, bytes)) or not hasattr(weights, "__iter__"):
        raise ConfigError(f"matryoshka_weights must be a list of numbers, got {weights!r}")
    weights = list(weights)
    if len(weights) != len(dims):
        raise ConfigError(f"matryoshka_weights has {len(weights)} entries for {len(dims)} matryoshka_dims")
    if any(isinstance(w, bool) or not isinstance(w, (int, float)) or w < 0 for w in weights) or not any(weights):
        raise ConfigError(f"matryoshka_weights must be non-negative numbers, not all 0, got {weights}")
    return dims, [float(w) for w in weights]


def truncate(x: Optional[torch.Tensor], dim: int) -> Optional[torch.Tensor]:
    """The first ``dim`` features of the last axis, L2-normalised (None stays None)."""
    if x is None:
        return None
    return F.normalize(x[..., :dim], dim=-1)


class MatryoshkaLoss(ContrastiveLoss):
    """Weighted sum of ``loss`` on the truncated, re-normalised embeddings (see the module docstring).

    Args:
        loss: the wrapped loss module (any registered loss without width-tied state).
        dims: prefix widths, strictly descending (e.g. ``[384, 256, 128, 64]``).
        weights: one non-negative weight per width (default all 1).

    Returns the weighted sum as ``{"loss": L, "loss@<d>": ℓ_d, ...}`` so each width's term is logged.

    >>> from anycl.losses import InfoNCE
    >>> m = MatryoshkaLoss(InfoNCE(), dims=[8, 4])
    >>> a = torch.randn(6, 8); sorted(m(a, a)["loss"].shape)
    []
    """

    def __init__(self, loss: torch.nn.Module, dims: Sequence[int], weights: Optional[Sequence[float]] = None):
        super().__init__()
        name = getattr(loss, "registry_name", type(loss).__name__)
        if getattr(loss, "momentum_target", None) or hasattr(loss, "queue"):
            raise ConfigError(
                f"matryoshka_dims cannot wrap {name!r}: its momentum target / memory queue is "
                f"tied to one call per step at the full width"
            )
        if getattr(type(loss), "build", ContrastiveLoss.build) is not ContrastiveLoss.build:
            raise ConfigError(
                f"matryoshka_dims cannot wrap {name!r}: it holds a predictor sized to the full embedding width"
            )
        self.dims, self.weights = check_dims(dims, weights)
        self.inner = loss
        copy_capabilities(
            self,
            loss,
            (
                "in_batch_negatives",
                "accepts_negatives",
                "needs_labels",
                "negative_free",
                "distributed",
                "accepts_guide",
            ),
        )
        if hasattr(loss, "registry_name"):
            self.registry_name = loss.registry_name

    def forward(self, anchor, positive, negative=None, labels=None, **kwargs):
        width = anchor.shape[-1]
        if self.dims[0] > width:
            raise ValueError(f"matryoshka: dims {self.dims} go above the embedding width {width}")
        total = 0.0
        terms = {}
        for d, w in zip(self.dims, self.weights):
            out = self.inner(truncate(anchor, d), truncate(positive, d), truncate(negative, d), labels, **kwargs)
            value = out["loss"] if isinstance(out, dict) else out
            terms[f"loss@{d}"] = value.detach()
            total = total + w * value
        return {"loss": total, **terms}

    def __getattr__(self, name: str):
        """Attributes the wrapper does not have are the wrapped loss's (a guide's margin, a temperature)."""
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name == "inner":
                raise
            return getattr(super().__getattr__("inner"), name)

    def on_train_step_end(self, step: int, total: Optional[int]) -> None:
        hook = getattr(self.inner, "on_train_step_end", None)
        if hook is not None:
            hook(step, total)

    def extra_repr(self) -> str:
        return f"dims={self.dims}, weights={self.weights}"
