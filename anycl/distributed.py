"""Cross-process negatives: every process's embeddings take part in every process's loss.

Naive data parallelism is wrong for contrastive learning: each process would only see the negatives
of its own B rows. When training runs in several processes (``accelerate launch``), the trainer's
``TrainingModule.compute_loss`` calls :func:`loss_across_processes`, which gathers the embeddings of
all W processes *with gradient* (:func:`gather_with_grad`) and lets the loss run on them in one of
three ways, chosen by the loss's class attribute ``distributed``:

``"global"`` (the default; right for every loss)
    The loss gets the gathered anchors, positives, negatives and labels — the whole global batch of
    N = W·B rows in the same order as a single process with batch N would see it — and computes the
    global loss on every process. Negative-free losses (VICReg's variance and covariance, Barlow
    Twins' cross-correlation, batch centring) thereby reduce their statistics over all processes.
    Memory: the embeddings grow linearly with W; a pairwise loss's N×N scores grow quadratically.

``"rows"`` (declared by losses that are a mean of per-anchor terms, e.g. InfoNCE)
    The loss gets the same gathered tensors plus the keyword ``rows=slice(start, stop)`` naming this
    process's anchors, and returns the mean of the terms of those anchors only: each process scores
    its own B anchors against all N candidates (targets offset by ``start`` = rank·B), so memory is
    linear in W (B×N scores). A symmetric loss also scores its own B positives against all anchors.
    anycl rescales the result by W·B/N, so the processes' mean is the global mean even when their
    batch sizes differ.

``"local"``
    No gathering: each process computes the loss on its own batch (negatives from its own rows only).

Why the gradients are right: the all-gather's backward sums the gradient that every process's loss
sends to each process's embeddings (an all-reduce), and data parallelism (DDP, or GradCache's own
all-reduce) averages parameter gradients over the W processes. For ``"global"``, each of the W
identical losses contributes dL/de, so the sum is W·dL/de and the average gives exactly dL/dθ of the
single-process step on the global batch. For ``"rows"``, the processes' losses sum to W·L, the same.
Tested: ``accelerate launch --cpu --num_processes 2`` with batch B gives the loss and update of one
process with batch 2B (``tests/test_distributed.py``).

Because gathering happens inside ``compute_loss``, it composes with GradCache (the cached embeddings
are gathered, the loss's gradient flows back to each process's cached embeddings) and with hard
negatives (given or mined: they are gathered row-aligned, B·K per process). A loss with a memory
queue sees the gathered batch, so enqueueing the gathered keys keeps the queue identical on every
process.

What a loss must declare (class attribute or attribute of a registered function):
``distributed = "global" | "rows" | "local"``; with ``"rows"``, ``forward`` takes ``rows=`` (a slice,
``None`` meaning all rows) and the anchors' targets are their positions in the gathered batch.
"""

from __future__ import annotations

import atexit
import os
import sys
from typing import Any, Dict, List, NoReturn, Optional, Tuple

import torch
import torch.distributed as dist

MODES = ("global", "rows", "local")


def process_info() -> Tuple[int, int]:
    """(rank, world size) of the default process group; (0, 1) when not running distributed."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def exit_process(code: int = 0) -> NoReturn:
    """End this process of a launched run: wait for every process, close the process group, run the
    ``atexit`` handlers, flush the standard streams and exit with ``code`` **without** the interpreter's
    teardown.

    Why: a gloo process group outlives ``destroy_process_group`` once ``torch._dynamo`` has been imported
    (it keeps references to the group), so gloo's worker threads are still running when Python shuts down.
    A thread still releasing the last collective of a backward pass (it holds a Python object) then needs
    the GIL of a finalising interpreter and the process aborts: ``terminate called without an active
    exception``, SIGABRT, and the launcher reports the whole run as failed after it finished. Seen
    under load in about 1 in 15 two-process CPU runs; exiting here skips that teardown. Call it as the
    last line of a script started by ``accelerate launch`` / ``torchrun``, after saving what it made.
    Without a process group it only flushes and exits."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed or broken stream: nothing more can reach it
            pass
    os._exit(code)


def _gather_sizes(n: int, device: torch.device, world: int) -> List[int]:
    mine = torch.tensor([n], dtype=torch.long, device=device)
    sizes = [torch.zeros_like(mine) for _ in range(world)]
    dist.all_gather(sizes, mine)
    return [int(s.item()) for s in sizes]


def gather_ints(values: List[int], device: torch.device) -> List[List[int]]:
    """Every process's list of ``len(values)`` integers, in rank order (``[values]`` without a process group)."""
    _, world = process_info()
    if world == 1:
        return [list(values)]
    mine = torch.tensor(list(values), dtype=torch.long, device=device)
    parts = [torch.zeros_like(mine) for _ in range(world)]
    dist.all_gather(parts, mine)
    return [[int(v) for v in p.tolist()] for p in parts]


def _all_gather_padded(x: torch.Tensor, sizes: List[int]) -> torch.Tensor:
    """All-gather along dim 0 when processes hold different numbers of rows (pad to the largest)."""
    biggest = max(sizes)
    if x.shape[0] < biggest:
        pad = x.new_zeros((biggest - x.shape[0], *x.shape[1:]))
        x = torch.cat([x, pad])
    parts = [torch.empty_like(x) for _ in sizes]
    dist.all_gather(parts, x.contiguous())
    return torch.cat([p[:n] for p, n in zip(parts, sizes)])


class _GatherWithGrad(torch.autograd.Function):
    """All-gather whose backward sums every process's gradient and returns this process's share."""

    @staticmethod
    def forward(ctx, x, sizes: List[int], rank: int):
        ctx.sizes, ctx.rank = sizes, rank
        return _all_gather_padded(x, sizes)

    @staticmethod
    def backward(ctx, grad):
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)  # sum over processes: each process's loss sends a gradient to these rows
        start = sum(ctx.sizes[: ctx.rank])
        return grad[start : start + ctx.sizes[ctx.rank]], None, None


def gather_with_grad(x: Optional[torch.Tensor], sizes: Optional[List[int]] = None) -> Optional[torch.Tensor]:
    """Concatenate ``x`` (n_r, …) from every process in rank order, keeping the gradient path.

    ``sizes`` (rows per process) is looked up when not given. Without a process group, returns ``x``.
    """
    if x is None:
        return None
    rank, world = process_info()
    if world == 1:
        return x
    if sizes is None:
        sizes = _gather_sizes(x.shape[0], x.device, world)
    if x.requires_grad:
        return _GatherWithGrad.apply(x, sizes, rank)
    return _all_gather_padded(x, sizes)


def loss_across_processes(
    loss,
    anchor: torch.Tensor,
    positive: torch.Tensor,
    negative: Optional[torch.Tensor] = None,
    labels: Optional[torch.Tensor] = None,
    target: Optional[Dict[str, torch.Tensor]] = None,
    guide: Optional[Dict[str, torch.Tensor]] = None,
    row_values: Optional[Dict[str, torch.Tensor]] = None,
):
    """Run ``loss`` on this process's embeddings with every process's rows as candidates.

    Inputs are this process's: anchor/positive (B, D), negative (B, K, D) or None, labels (B,) or None.
    One process: ``loss(anchor, positive, negative, labels)`` unchanged. See the module docstring for
    the modes a loss declares with its ``distributed`` attribute. ``target`` (momentum-target
    embeddings by side, no gradient; :mod:`anycl.losses.momentum`) is passed on as ``target=``, gathered
    like the other inputs; so is ``guide`` (a guide model's embeddings by side, negatives (B, K, D):
    :mod:`anycl.training.guide`), row-aligned with the gathered candidates. ``row_values`` (name → (B, …) tensor:
    a graded loss's scores, a teacher's embeddings) are gathered like the labels and passed as keywords
    of those names.
    """
    extras: Dict[str, Dict[str, torch.Tensor]] = {
        k: v for k, v in (("target", target), ("guide", guide)) if v is not None
    }
    kw: Dict[str, Any] = dict(extras)
    kw.update(row_values or {})
    mode = getattr(loss, "distributed", "global")
    if mode not in MODES:
        raise ValueError(f"loss {type(loss).__name__} declares distributed={mode!r}; it must be one of {MODES}")
    rank, world = process_info()
    if world == 1 or mode == "local":
        return loss(anchor, positive, negative, labels, **kw)
    sizes = _gather_sizes(anchor.shape[0], anchor.device, world)
    a, p, n = (gather_with_grad(t, sizes) for t in (anchor, positive, negative))
    lab = gather_with_grad(labels, sizes)
    kw = {name: {k: gather_with_grad(v, sizes) for k, v in d.items()} for name, d in extras.items()}
    kw.update({k: gather_with_grad(v, sizes) for k, v in (row_values or {}).items()})
    if mode == "global":
        return loss(a, p, n, lab, **kw)
    start = sum(sizes[:rank])
    out = loss(a, p, n, lab, rows=slice(start, start + sizes[rank]), **kw)
    scale = world * sizes[rank] / sum(sizes)
    if scale == 1:
        return out
    if isinstance(out, dict):
        return {**out, "loss": out["loss"] * scale}
    return out * scale
