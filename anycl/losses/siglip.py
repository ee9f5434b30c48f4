"""Sigmoid pairwise loss (SigLIP): every (anchor, candidate) pair is an independent binary decision.

Reference: Zhai et al. 2023, "Sigmoid Loss for Language Image Pre-Training" (ICCV, arXiv:2303.15343).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .registry import ContrastiveLoss, full_precision, pair_inputs, register, same_label_mask

_BLOCK_ELEMS = 1 << 19  # CPU: elements per block of rows in the elementwise passes (one block on a GPU)


class _SigmoidPairs(torch.autograd.Function):
    """Σ_ij softplus(-z_ij L_ij), L = e^{t'} x yᵀ + b, z = +1 on the positives: one (B, N) buffer, which
    the backward turns into its own gradient in place (see :func:`sigmoid_pairs`)."""

    @staticmethod
    def forward(ctx, x, y, t_prime, bias, positives):
        t = t_prime.exp()
        logits = (x * t) @ y.T
        logits += bias
        n = x.shape[0]
        step = _step(n, logits)
        total = x.new_zeros(())
        for s in range(0, n, step):  # softplus(-L) = softplus(L) - L: every pair as a negative, then fix the positives
            total += F.softplus(logits[s : s + step]).sum()
        total -= _positive_logits(logits, positives).sum()
        ctx.save_for_backward(x, y, t, logits, positives)
        return total

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        if getattr(ctx, "consumed", False):
            raise RuntimeError("siglip: backward ran twice through the same graph (its buffer is consumed)")
        ctx.consumed = True
        x, y, t, g, positives = ctx.saved_tensors
        n = x.shape[0]
        step = _step(n, g)
        for s in range(0, n, step):  # dℓ/dL = σ(L) - [positive], in place over the logits
            g[s : s + step].sigmoid_()
        if positives is None:
            g.diagonal()[:] -= 1.0
        else:
            g[:, :n].sub_(positives.to(g.dtype))
        gy = g @ y
        need_x, need_y, need_t, need_b = ctx.needs_input_grad[:4]
        grad_x = gy * (t * grad) if need_x else None
        grad_y = g.T @ (x * (t * grad)) if need_y else None
        grad_t = ((gy * x).sum() * t * grad).reshape(t.shape) if need_t else None
        grad_b = (g.sum() * grad).reshape(t.shape) if need_b else None
        return grad_x, grad_y, grad_t, grad_b, None


def _step(n: int, logits: torch.Tensor) -> int:
    return max(1, _BLOCK_ELEMS // max(1, logits.shape[1])) if logits.device.type == "cpu" else max(1, n)


def _positive_logits(logits: torch.Tensor, positives) -> torch.Tensor:
    n = logits.shape[0]
    return logits.diagonal() if positives is None else logits[:, :n][positives]


def sigmoid_pairs(
    x: torch.Tensor, y: torch.Tensor, t_prime: torch.Tensor, bias: torch.Tensor, positives=None
) -> torch.Tensor:
    r""":math:`-\sum_{ij} \log\sigma(z_{ij}(e^{t'} x_i \cdot y_j + b))` for x (B, D), y (N ≥ B, D):
    :math:`z_{ij} = 1` on the diagonal, or where ``positives`` (B, B) bool is True (then it must hold the
    diagonal), else −1. Gradients for x, y, t' and b; no B×N temporaries beyond the logits, which
    become their own gradient in the backward."""
    if bias.dim() != 0 or t_prime.dim() != 0:
        raise ValueError("sigmoid_pairs: t_prime and bias must be scalars")
    return _SigmoidPairs.apply(x, y, t_prime, bias, positives)


@register("siglip", "sigmoid")
class SigLIP(ContrastiveLoss):
    r"""With :math:`x, y` the L2-normalised anchors and candidates, :math:`t = e^{t'}` and bias :math:`b`:

    .. math:: L = -\frac{1}{B} \sum_{i} \sum_{j} \log \sigma\big(z_{ij}\,(t\, x_i \cdot y_j + b)\big)

    with :math:`z_{ij} = 1` for the positive pair (and for same-label pairs when ``labels`` are given)
    and :math:`-1` otherwise.

    Args:
        temperature: initial :math:`1/t` (default 0.1, i.e. :math:`t = 10`, :math:`t' = \log 10`,
            the paper's initialisation).
        bias: initial :math:`b` (default −10, the paper's: it offsets the many negatives at the start).
        learnable: train :math:`t'` and :math:`b` (default True); else they stay fixed.

    Inputs:
        anchor, positive: (B, D). negative: optional (B, K, D) hard negatives, queue: optional (M, D):
        extra candidates, negatives of every anchor. labels: optional (B,).
    """

    def __init__(self, temperature: float = 0.1, bias: float = -10.0, learnable: bool = True):
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"siglip: temperature must be > 0, got {temperature}")
        t_prime = torch.tensor(math.log(1.0 / temperature))
        b = torch.tensor(float(bias))
        if learnable:
            self.t_prime, self.bias = nn.Parameter(t_prime), nn.Parameter(b)
        else:
            self.register_buffer("t_prime", t_prime)
            self.register_buffer("bias", b)

    def forward(self, anchor, positive, negative=None, labels=None, queue=None):
        anchor, positive, extra = pair_inputs(anchor, positive, negative, queue, "siglip")
        batch = anchor.shape[0]
        with full_precision(anchor):
            x = F.normalize(anchor, dim=-1)
            y = F.normalize(positive, dim=-1)
            if extra is not None:
                y = torch.cat([y, F.normalize(extra, dim=-1)])
            same = same_label_mask(labels, batch, x.device)
            return sigmoid_pairs(x, y, self.t_prime.float(), self.bias.float(), same) / batch

    def extra_repr(self) -> str:
        return f"t={float(self.t_prime.detach().exp()):.4g}, bias={float(self.bias.detach()):.4g}"
