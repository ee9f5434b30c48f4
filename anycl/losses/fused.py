r"""Log-sum-exp sums over one logits matrix with hand-written backwards: the softmax losses' common core.

Every softmax contrastive loss here (InfoNCE and its symmetric/CLIP form, SimCLR, DCL) is, per row,
:math:`\mathrm{LSE}_j(L_{ij}) - (\text{target term})` with :math:`L = s\, q\, c^\top`. The target term
is a dot product per row, read here off the same matrix (so that a loss near 0 keeps its precision:
the target's logit minus the row's maximum is exactly 0 when the target is the maximum); the B×N part is
computed here with one (n, N) buffer that lives from forward to backward and becomes the
gradient in place:

* :func:`row_lse` — :math:`\sum_i \mathrm{LSE}_j L_{ij}` over rows. With ``gram=True`` the
  candidates are the queries themselves (then ``extra``): SimCLR's and DCL's 2B×2B Gram matrix, whose
  backward is one (n, n)·(n, D) product once the gradient is symmetrised in place (not two).
* :func:`row_col_ce` — :math:`\sum_i \mathrm{LSE}_j L_{ij} + \sum_{j<n} \mathrm{LSE}_i L_{ij}` minus
  the diagonal's targets: the two directions of symmetric InfoNCE (CLIP) read off one matrix (rows: anchors → candidates; columns:
  positives → anchors).

Masked entries (false negatives) are set to ``MASK_VALUE`` as the plain formulas do, and get exactly no
gradient (as through ``masked_fill``), also in a fully masked row. Elementwise passes run over blocks
of rows that stay in cache. The buffers are consumed by the backward: calling backward twice through
the same graph (``retain_graph=True``) raises.
"""

from __future__ import annotations

from typing import Iterator, Optional, Sequence

import torch

from .registry import MASK_VALUE

_BLOCK_ELEMS = 1 << 19  # CPU: elements per block of rows in the elementwise passes (2 MiB of float32)
_SYM_BLOCK = 256  # CPU: side of the square tiles of the in-place symmetrisation
_GPU_SYM_BLOCK = 4096  # on a GPU, blocks only cost kernel launches: one block of rows, large tiles


def _blocks(n: int, width: int, device: torch.device) -> Iterator[tuple]:
    if device.type != "cpu":
        yield 0, n
        return
    step = max(1, _BLOCK_ELEMS // max(1, width))
    for s in range(0, n, step):
        yield s, min(n, s + step)


def _mask_block(
    x: torch.Tensor, mask: Optional[torch.Tensor], diags: Sequence[int], s: int, e: int, period: int, value: float
) -> None:
    """Fill, in place, rows s..e of a matrix (``x`` = those rows): ``mask[s:e]`` over the first columns,
    and the entries (i, (i + d) mod period) for each offset d in ``diags``."""
    if mask is not None:
        x[:, : mask.shape[1]].masked_fill_(mask[s:e], value)
    if diags:
        rows = torch.arange(e - s, device=x.device)
        for d in diags:
            x[rows, (rows + s + d) % period] = value


def _once(ctx) -> None:
    if getattr(ctx, "consumed", False):
        raise RuntimeError(
            "anycl fused loss: backward ran twice through the same graph; its buffers are "
            "consumed by the first backward (do not use retain_graph=True through the loss)"
        )
    ctx.consumed = True


class _RowLSE(torch.autograd.Function):
    """Σ_i LSE_j (s · q_i · cand_j), cand = c (or [q; c] with gram), masked. See :func:`row_lse`."""

    @staticmethod
    def forward(ctx, q, c, scale, mask, diags, gram, targets):
        n = q.shape[0]
        if gram:
            cands = q if c is None else torch.cat([q, c])
        else:
            cands = c
        logits = (q * scale) @ cands.T
        sums = torch.empty(n, dtype=q.dtype, device=q.device)
        total = q.new_zeros(())
        for s, e in _blocks(n, logits.shape[1], logits.device):
            x = logits[s:e]
            _mask_block(x, mask, diags, s, e, n, MASK_VALUE)
            top = x.amax(dim=1, keepdim=True)
            x.sub_(top)
            if targets is None:
                total += top.sum()
            else:  # the target's shifted logit from the same matrix: exactly 0 when it is the row's max
                total -= x[torch.arange(e - s, device=x.device), targets[s:e]].sum()
            x.exp_()  # in place: from here on the buffer holds the row-shifted exponentials
            sm = x.sum(dim=1)
            total += sm.log().sum()
            full = top.squeeze(1) <= MASK_VALUE  # every entry masked: the plain formula gives no gradient
            if bool(full.any()):
                x[full] = 0.0
                sm = torch.where(full, torch.ones_like(sm), sm)
            sums[s:e] = sm
        ctx.save_for_backward(q, c, scale, logits, sums, targets)
        ctx.gram = bool(gram)
        return total

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        q, c, scale, exps, sums, targets = ctx.saved_tensors
        inv = (grad / sums).unsqueeze(1)  # G = diag(inv) · exps
        need_q, need_c, need_s = ctx.needs_input_grad[:3]
        if not ctx.gram:
            gq = (exps @ c) * inv  # G c, the row normalisation folded into an (n, D) tensor
            grad_c = exps.T @ (q * (scale * inv)) if need_c else None
            if targets is not None:  # the targets' -1 entries of G
                gq -= c[targets] * grad
                if need_c:
                    grad_c.index_add_(0, targets, q * (-scale * grad))
            grad_q = gq * scale if need_q else None
            grad_s = (gq * q).sum().reshape(scale.shape) if need_s else None
            return grad_q, grad_c, grad_s, None, None, None, None
        _once(ctx)
        n = q.shape[0]
        if targets is not None:  # G = diag(inv)·exps - grad at the targets
            rows = torch.arange(n, device=q.device)
            exps[rows, targets] -= sums  # scaled by inv = grad / sums below
        _symmetrize_scaled(exps[:, :n], inv.squeeze(1))  # H = G_blk + G_blkᵀ, in place
        x = exps[:, :n] @ q
        extra = None
        if c is not None:
            ext = exps[:, n:]
            ext.mul_(inv)
            extra = ext @ c
        grad_q = grad_s = grad_c = None
        if need_q:
            grad_q = (x if extra is None else x + extra) * scale
        if need_s:  # Σ G_blk ∘ (q qᵀ) = ½ Σ H ∘ (q qᵀ)
            s_val = 0.5 * (x * q).sum() + (0.0 if extra is None else (extra * q).sum())
            grad_s = s_val.reshape(scale.shape)
        if c is not None and need_c:
            grad_c = exps[:, n:].T @ (q * scale)
        return grad_q, grad_c, grad_s, None, None, None, None


def _symmetrize_scaled(m: torch.Tensor, inv: torch.Tensor) -> None:
    """In place: ``m`` (n, n) ← diag(inv)·m + (diag(inv)·m)ᵀ, block by block (temporaries block×block)."""
    n, block = m.shape[0], (_SYM_BLOCK if m.device.type == "cpu" else _GPU_SYM_BLOCK)
    for i in range(0, n, block):
        ie = min(n, i + block)
        for j in range(i, n, block):
            je = min(n, j + block)
            t = m[i:ie, j:je] * inv[i:ie].unsqueeze(1)
            t += (m[j:je, i:ie] * inv[j:je].unsqueeze(1)).T
            m[i:ie, j:je] = t
            if j != i:
                m[j:je, i:ie] = t.T


def row_lse(
    q: torch.Tensor,
    c: Optional[torch.Tensor],
    scale: torch.Tensor,
    mask: Optional[torch.Tensor] = None,
    diags: Sequence[int] = (),
    gram: bool = False,
    targets: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    r""":math:`\sum_i \log \sum_j \exp(L_{ij})` with :math:`L = s\, q\, C^\top` and masked entries at
    ``MASK_VALUE``.

    Args:
        q: (n, D) queries. c: (N, D) candidates, or with ``gram`` the extra candidates after the queries
            themselves (``C = [q; c]``; None for none). scale: scalar tensor s (may require grad).
        mask: optional (n, W) bool, True where candidate j < W is masked for row i.
        diags: with ``gram``, column offsets d: entry (i, (i + d) mod n) is masked for every row (0: the
            query itself; B in a 2B-row Gram: the other view).
        targets: optional (n,) long, a column per row (never masked): returns
            :math:`\sum_i (\mathrm{LSE}_i - L_{i, t_i})`, the summed cross-entropy, with the target logit
            read off the same matrix (exact when the target is the row's largest logit).
    """
    if diags and not gram:
        raise ValueError("row_lse: diags= needs gram=True")
    return _RowLSE.apply(q, c, scale, mask, tuple(int(d) for d in diags), bool(gram), targets)


class _RowColLSE(torch.autograd.Function):
    """Σ_i (LSE_row_i - L_ii) + Σ_{j<n} (LSE_col_j - L_jj) of L = s q cᵀ with per-direction masks. See
    :func:`row_col_ce`."""

    @staticmethod
    def forward(ctx, q, c, scale, row_mask, col_mask):
        n = q.shape[0]
        logits = (q * scale) @ c.T
        diag = logits.diagonal().clone()  # the targets: row i's and column i's is entry (i, i)
        lse_r = torch.empty(n, dtype=q.dtype, device=q.device)
        col_top = torch.full((n,), float("-inf"), dtype=q.dtype, device=q.device)
        col_sum = torch.zeros(n, dtype=q.dtype, device=q.device)
        for s, e in _blocks(n, logits.shape[1], logits.device):
            x = logits[s:e]
            xr = x
            if row_mask is not None:
                xr = x.clone()
                _mask_block(xr, row_mask, (), s, e, n, MASK_VALUE)
            top = xr.amax(dim=1, keepdim=True)
            lse_r[s:e] = (top.squeeze(1) - diag[s:e]) + (xr - top).exp_().sum(dim=1).log()
            xc = x[:, :n] if col_mask is None else x[:, :n].masked_fill(col_mask[s:e], MASK_VALUE)
            new_top = torch.maximum(col_top, xc.amax(dim=0))  # online log-sum-exp down the columns
            col_sum = col_sum * (col_top - new_top).exp() + (xc - new_top).exp_().sum(dim=0)
            col_top = new_top
        lse_c = (col_top - diag) + col_sum.log()
        ctx.save_for_backward(q, c, scale, logits, lse_r + diag, lse_c + diag)
        ctx.masks = (row_mask, col_mask)
        return lse_r.sum() + lse_c.sum()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        _once(ctx)
        q, c, scale, g, lse_r, lse_c = ctx.saved_tensors
        row_mask, col_mask = ctx.masks
        n = q.shape[0]
        for s, e in _blocks(n, g.shape[1], g.device):  # the logits become the gradient G, in place
            x = g[s:e]
            col = (x[:, :n] - lse_c).exp_()
            if col_mask is not None:
                col.masked_fill_(col_mask[s:e], 0.0)
            x.sub_(lse_r[s:e].unsqueeze(1)).exp_()
            if row_mask is not None:
                _mask_block(x, row_mask, (), s, e, n, 0.0)
            x[:, :n] += col
            x[torch.arange(e - s, device=x.device), torch.arange(s, e, device=x.device)] -= 2.0
        need_q, need_c, need_s = ctx.needs_input_grad[:3]
        gc = (g @ c) * grad
        grad_q = gc * scale if need_q else None
        grad_c = g.T @ (q * (scale * grad)) if need_c else None
        grad_s = (gc * q).sum().reshape(scale.shape) if need_s else None
        return grad_q, grad_c, grad_s, None, None


def row_col_ce(
    q: torch.Tensor,
    c: torch.Tensor,
    scale: torch.Tensor,
    row_mask: Optional[torch.Tensor] = None,
    col_mask: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    r"""Both directions' summed cross-entropies off one logits matrix :math:`L = s\, q\, c^\top` (n, N ≥ n),
    the target of row i and of column i being entry (i, i):
    :math:`\sum_i (\log\sum_{j<N} e^{L_{ij}} - L_{ii}) + \sum_{j<n} (\log\sum_{i} e^{L_{ij}} - L_{jj})`.

    ``row_mask``: optional (n, W ≤ N) bool, entries masked for the rows' sums; ``col_mask``: optional
    (n, n) bool in L's orientation (True at (i, j): row i is not a candidate of column j).
    """
    if c.shape[0] < q.shape[0]:
        raise ValueError(f"row_col_ce: need at least as many candidates as queries, got {c.shape[0]} < {q.shape[0]}")
    return _RowColLSE.apply(q, c, scale, row_mask, col_mask)
