"""GradCache: the gradients of a large contrastive batch at the memory of a mini-batch.

One engine for every modality and every registered loss (Gao et al. 2021, "Scaling deep contrastive
learning batch size under memory limited setup"). A loss sees embeddings only, so a step splits into:

1. **Embed without grad**: each side's features (``anchor``, ``positive``, ``negative``; a tensor or a
   dict of tensors, hard negatives flattened row-major as B·K rows) are cut into mini-batches of
   ``mini_batch`` rows and embedded with ``torch.no_grad()``. Before each mini-batch the random state
   is saved: the CPU generator, the CUDA/MPS generators of the devices the inputs live on, and the
   ``torch.Generator`` the trainer hands to ``adapter.prepare`` (batched augmentations).
2. **Loss on the cached embeddings**: the full-batch embeddings become leaf tensors and
   ``TrainingModule.compute_loss(emb, batch)`` runs on them (any loss; a dict with ``"loss"`` works;
   cross-process gathering inside ``compute_loss`` composes with this). Its backward leaves
   d loss / d embedding on the leaves (and gradients on any parameters of the loss itself).
3. **Re-embed with grad and back-propagate**: every mini-batch is embedded again under its replayed
   random state — the same dropout masks and augmentations as in step 1 — and
   ``torch.autograd.backward(embedding, cached_gradient)`` accumulates the parameter gradients.

Only one mini-batch's activations are alive at a time; the extra cost is one more forward pass.

What is and is not the same as an uncached step:

- Dropout and random ``prepare`` augmentations: identical between the two passes, so the gradient
  is exactly that of the loss on the embeddings computed in step 1. Those masks are drawn per
  mini-batch, so they differ from the masks a single full-batch forward would draw (both are valid
  samples of the same distribution).
- Batch normalisation inside the encoder or head normalises each mini-batch by its own statistics
  (like per-device BatchNorm in data-parallel training). Running statistics are updated once per
  mini-batch, not twice: they are restored after the replay pass.
- Without BatchNorm and with dropout off, the gradients equal the uncached full-batch gradients up
  to floating-point rounding (tested).

An adapter whose collated batches hold more than per-row tensors can define
``slice_batch(features, start, stop)``; otherwise tensors (and lists) whose first dimension is the
number of rows are sliced and everything else is passed to each mini-batch unchanged.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

import torch
import torch.distributed as dist
from torch import nn

from anycl.errors import ConfigError
from anycl.losses.base import split_loss

SIDES = ("anchor", "positive", "negative")


# -- slicing a collated batch into mini-batches of rows ------------------------------------------------
def count_rows(features: Any, adapter=None) -> int:
    """Rows in a collated batch: the adapter's ``count`` when given, else the first tensor's length."""
    if adapter is not None:
        return int(adapter.count(features))
    if torch.is_tensor(features):
        return int(features.shape[0])
    if isinstance(features, dict):
        for v in features.values():
            if torch.is_tensor(v) and v.dim() > 0:
                return int(v.shape[0])
    if isinstance(features, (list, tuple)):
        return len(features)
    raise TypeError(f"cannot tell how many rows a batch of type {type(features).__name__} holds")


def slice_rows(features: Any, start: int, stop: int, n: int) -> Any:
    """Rows ``start:stop`` of a batch of ``n`` rows: per-row tensors/lists sliced, the rest kept."""
    if torch.is_tensor(features):
        return features[start:stop] if features.dim() > 0 and features.shape[0] == n else features
    if isinstance(features, dict):
        return {k: slice_rows(v, start, stop, n) for k, v in features.items()}
    if isinstance(features, (list, tuple)) and len(features) == n:
        return type(features)(features[start:stop]) if isinstance(features, list) else tuple(features[start:stop])
    return features


def mini_batches(n: int, size: int) -> List[Tuple[int, int]]:
    return [(s, min(s + size, n)) for s in range(0, n, size)]


# -- random state ------------------------------------------------------------------------------------
def _devices(obj: Any, out: Optional[set] = None) -> set:
    out = set() if out is None else out
    if torch.is_tensor(obj):
        if obj.device.type != "cpu":
            out.add(obj.device)
    elif isinstance(obj, dict):
        for v in obj.values():
            _devices(v, out)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            _devices(v, out)
    return out


class RandState:
    """Snapshot of every random generator a forward pass can draw from; ``restore()`` replays it.

    Captures the CPU generator, the CUDA generator of each CUDA device in ``devices`` (and the current
    one), the MPS generator when inputs are on MPS, and ``generator`` (the per-batch generator
    handed to ``adapter.prepare``), whatever device it lives on.
    """

    def __init__(self, generator: Optional[torch.Generator] = None, devices: Iterable[torch.device] = ()):
        self.generator = generator
        self.cpu = torch.get_rng_state()
        self.cuda: List[Tuple[int, torch.Tensor]] = []
        self.mps = None
        devs = set(devices)
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            idx = {d.index if d.index is not None else torch.cuda.current_device() for d in devs if d.type == "cuda"}
            idx.add(torch.cuda.current_device())
            self.cuda = [(i, torch.cuda.get_rng_state(i)) for i in sorted(idx)]
        if any(d.type == "mps" for d in devs) and hasattr(torch, "mps"):
            self.mps = torch.mps.get_rng_state()
        self.gen = generator.get_state() if generator is not None else None

    def restore(self) -> None:
        torch.set_rng_state(self.cpu)
        for i, state in self.cuda:
            torch.cuda.set_rng_state(state, i)
        if self.mps is not None:
            torch.mps.set_rng_state(self.mps)
        if self.generator is not None and self.gen is not None:  # gen: the generator's state, kept with it
            self.generator.set_state(self.gen)


# -- batch-norm running statistics -------------------------------------------------------------------
def _norm_buffers(module: nn.Module) -> List[Tuple[nn.Module, Dict[str, torch.Tensor]]]:
    out: List[Tuple[nn.Module, Dict[str, torch.Tensor]]] = []
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._NormBase) and m.track_running_stats and m.training:
            out.append((m, {k: v.detach().clone() for k, v in m.named_buffers(recurse=False) if v is not None}))
    return out


def _restore_norm_buffers(saved) -> None:
    with torch.no_grad():
        for m, bufs in saved:
            for k, v in bufs.items():
                getattr(m, k).copy_(v)


# -- the engine --------------------------------------------------------------------------------------
class GradCache:
    """Runs one training step's forward and backward with GradCache.

    Args:
        mini_batch: rows embedded at once (per side; hard negatives count B·K rows). ``>= 1``.

    Use :meth:`step` (what :class:`~anycl.training.Trainer` does when ``gradcache_mini_batch`` is set),
    or the two halves :meth:`forward` / :meth:`backward` in a loop of your own::

        gc = GradCache(32)
        loss, terms = gc.step(training_module, batch, generator)   # gradients are now in .grad
        optimizer.step()
    """

    def __init__(self, mini_batch: int):
        if isinstance(mini_batch, bool) or not isinstance(mini_batch, int) or mini_batch < 1:
            raise ConfigError(
                f"gradcache_mini_batch must be a positive integer (rows per mini-batch), got {mini_batch!r}"
            )
        self.mini_batch = int(mini_batch)
        self.progress: Optional[Callable[[int, int], None]] = None  # (passes done, passes of the step)
        self._done = self._total = 0

    def _tick(self) -> None:
        self._done += 1
        if self.progress is not None:
            self.progress(self._done, self._total)

    # -- pass 1 ----------------------------------------------------------------------------------------
    def embed_without_grad(self, model, batch: Dict[str, Any], generator: Optional[torch.Generator] = None):
        """Embed each side by mini-batches with no grad; return (embeddings by side, replay plan)."""
        plan: List[Tuple[str, int, int, int, RandState]] = []
        emb: Dict[str, torch.Tensor] = {}
        with torch.no_grad():
            for side in SIDES:
                if side not in batch:
                    continue
                feats = batch[side]
                adapter = model.tower(side).adapter
                n = count_rows(feats, adapter)
                devices = _devices(feats)
                parts = []
                for start, stop in mini_batches(n, self.mini_batch):
                    state = RandState(generator, devices)
                    parts.append(
                        model({side: take_rows(adapter, feats, start, stop, n)}, train=True, generator=generator)[side]
                    )
                    plan.append((side, start, stop, n, state))
                    self._tick()
                emb[side] = torch.cat(parts) if len(parts) > 1 else parts[0]
        return emb, plan

    # -- pass 2 ----------------------------------------------------------------------------------------
    def backward_through_model(
        self,
        model,
        batch: Dict[str, Any],
        grads: Dict[str, Optional[torch.Tensor]],
        plan,
        generator: Optional[torch.Generator] = None,
    ) -> None:
        """Re-embed every mini-batch with grad under its saved random state; back-propagate ``grads``."""
        after = RandState(generator, _devices({s: batch[s] for s in SIDES if s in batch}))
        saved_norms = _norm_buffers(model)
        try:
            for side, start, stop, n, state in plan:
                g = grads.get(side)
                if g is None:  # the loss did not use this side
                    self._tick()
                    continue
                adapter = model.tower(side).adapter
                state.restore()
                out = model({side: take_rows(adapter, batch[side], start, stop, n)}, train=True, generator=generator)[
                    side
                ]
                torch.autograd.backward(out, g[start:stop].to(out.dtype))
                self._tick()
        finally:
            _restore_norm_buffers(saved_norms)
            after.restore()

    def step(
        self,
        module,
        batch: Dict[str, Any],
        generator: Optional[torch.Generator] = None,
        backward: Optional[Callable[[torch.Tensor], None]] = None,
        check: Optional[Callable[[torch.Tensor], None]] = None,
        autocast: Optional[Callable[[], Any]] = None,
    ):
        """Forward + backward of one batch. Returns ``(loss, terms)`` like the uncached step.

        Args:
            module: a :class:`~anycl.training.TrainingModule` (``.model``, ``.compute_loss``).
            batch: a built batch (``anchor``, ``positive``[, ``negative``, ``num_negatives``, ``labels``]).
            generator: the per-batch generator handed to ``adapter.prepare``.
            backward: how to back-propagate the loss onto the cached embeddings (the trainer passes
                ``accelerator.backward``, which applies gradient-accumulation and fp16 loss scaling;
                the cached gradients carry that scaling into pass 2). Default ``loss.backward()``.
            check: called with the loss before any backward (the trainer's finite-loss check).
            autocast: a context-manager factory wrapping both embedding passes and the loss.
        """
        if getattr(module, "second_tower", None) is not None:  # fit refuses it first (anycl.fitting.loss)
            raise ConfigError("GradCache embeds with one model; this loss trains a second copy of it (second_tower)")
        model = module.model
        ctx = autocast or _nullcontext
        self._done = 0  # both passes embed every mini-batch of every side: the step's sub-steps
        self._total = 2 * sum(
            len(mini_batches(count_rows(batch[s], model.tower(s).adapter), self.mini_batch))
            for s in SIDES
            if s in batch
        )
        with ctx():
            emb, plan = self.embed_without_grad(model, batch, generator)
            leaves = {s: e.detach().requires_grad_(True) for s, e in emb.items()}
            loss, terms = split_loss(module.compute_loss(leaves, batch))
        if check is not None:
            check(loss)
        (backward or _plain_backward)(loss)
        grads = {s: leaf.grad for s, leaf in leaves.items()}
        with ctx():
            self.backward_through_model(model, batch, grads, plan, generator)
        return loss.detach(), terms


def take_rows(adapter, feats, start: int, stop: int, n: int):
    """Rows ``start:stop`` of one side's collated features of ``n`` rows: the adapter's ``slice_batch`` when it
    has one (features that are not row-major), else :func:`slice_rows`. GradCache's mini-batches and the guide's
    (:mod:`anycl.training.guide`) embed through it."""
    custom = getattr(adapter, "slice_batch", None)
    if custom is not None:
        return custom(feats, start, stop)
    return slice_rows(feats, start, stop, n)


def _plain_backward(loss: torch.Tensor) -> None:
    loss.backward()


class _nullcontext:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def average_gradients(parameters: Iterable[torch.nn.Parameter], world_size: int) -> None:
    """All-reduce (mean) the gradients of ``parameters`` across processes.

    GradCache back-propagates outside the DDP wrapper's forward, so the trainer runs it under
    ``no_sync`` and averages the gradients itself once per optimiser step.
    """
    if world_size <= 1 or not (dist.is_available() and dist.is_initialized()):
        return
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world_size
    offset = 0
    for g in grads:
        k = g.numel()
        g.copy_(flat[offset : offset + k].view_as(g))
        offset += k


# -- the trainer's hook ------------------------------------------------------------------------------
def make_gradcache(mini_batch: Optional[int], accelerator=None) -> Optional[GradCache]:
    """The engine for ``TrainingArgs.gradcache_mini_batch`` (None: off); refuses sharded set-ups."""
    if mini_batch is None:
        return None
    gc = GradCache(mini_batch)
    if accelerator is not None:
        kind = str(getattr(accelerator, "distributed_type", "")).upper()
        if "DEEPSPEED" in kind or "FSDP" in kind or "MEGATRON" in kind:
            raise ConfigError(
                f"gradcache_mini_batch works with single-device and DDP training, not with {kind.split('.')[-1]} "
                f"(it back-propagates through the model outside the engine's forward); turn one of them off"
            )
    return gc


def gradcache_step(gc: GradCache, accelerator, module, batch, generator, check=None):
    """One GradCache step inside the trainer's ``accelerator.accumulate`` block.

    ``module`` is what ``accelerator.prepare`` returned (DDP-wrapped with several processes): the
    engine runs on the unwrapped module under ``no_sync`` and, on the steps where the optimiser steps,
    averages the gradients across processes itself (the same mean DDP would take).
    """
    inner = accelerator.unwrap_model(module)
    no_sync = getattr(module, "no_sync", None) if accelerator.num_processes > 1 else None
    with no_sync() if no_sync is not None else contextlib.nullcontext():
        loss, terms = gc.step(
            inner, batch, generator, backward=accelerator.backward, check=check, autocast=accelerator.autocast
        )
    if accelerator.sync_gradients:
        average_gradients([p for p in inner.parameters() if p.requires_grad], accelerator.num_processes)
    return loss, terms
