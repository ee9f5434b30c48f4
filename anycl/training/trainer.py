"""Where Accelerate steps: the training loop.

The :class:`Trainer` owns an ``accelerate.Accelerator`` (device placement on CPU/CUDA/MPS, mixed
precision, gradient accumulation, trackers such as TensorBoard), a warm-up + cosine learning-rate
schedule, a tqdm progress bar with the loss and items/s, periodic evaluation and callbacks.

One step: the sampler's batch for this process → the model embeds each side → the loss sees the
embeddings only → backward → optimiser step. Hooks for what other parts add (mined negatives refreshed
by the sampler, an EMA target updated by a loss) are called at the marked places.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any, Callable, Dict, List, Optional, Sequence

import torch

from anycl.data.batching import BatchBuilder, BatchStream, to_device
from anycl.data.inputs import Rows
from anycl.errors import ConfigError
from anycl.losses.base import split_loss  # noqa: F401  (kept importable from here)
from anycl.progress import SubSteps

from .accelerator import LR_SCHEDULES, make_accelerator, tracker_config, warmup_cosine  # noqa: F401  (importable here)
from .args import TrainingArgs
from .checkpoint import Checkpointer, checkpoint_root, resolve_resume
from .gradcache import gradcache_step, make_gradcache
from .optimizer import make_optimizer
from .step import TrainingModule, check_finite
from .stream_steps import LockstepBatches, end_of_stream_epoch, streamed_epoch

log = logging.getLogger("anycl")


class Trainer:
    """Runs the training loop. ``fit`` builds one; users with their own parts can too.

    Args:
        model: the :class:`~anycl.model.ContrastiveModel`.
        loss: a loss module (embeddings in, scalar out).
        rows: the training :class:`~anycl.data.Rows`.
        sampler: a :class:`~anycl.sampling.Sampler`.
        builder: the :class:`~anycl.data.batching.BatchBuilder` turning rows into per-side features.
        args: :class:`TrainingArgs`.
        evaluator: optional ``evaluator(model) -> {metric: value}``.
        guide: optional :class:`~anycl.training.guide.Guide` (guided false-negative masking); a guide that
            collates items itself needs ``builder.keep_views``.
        callbacks: objects with any of ``on_step_end(trainer, step, logs)``,
            ``on_evaluate(trainer, step, metrics)``, ``on_train_end(trainer)``; or plain callables
            ``fn(trainer, step, logs)`` called after each optimiser step.
    """

    def __init__(
        self,
        model,
        loss,
        rows: Rows,
        sampler,
        builder: BatchBuilder,
        args: TrainingArgs,
        evaluator: Optional[Callable] = None,
        callbacks: Sequence[Any] = (),
        guide=None,
    ):
        self.model = model
        self.loss = loss
        self.rows = rows
        self.sampler = sampler
        self.builder = builder
        self.args = args
        self.evaluator = evaluator
        self.callbacks = list(callbacks)
        self.guide = guide  # anycl.training.guide.Guide or None
        self.history: List[Dict[str, Any]] = []
        self.eval_history: List[Dict[str, Any]] = []
        self.global_step = 0
        self.accelerator = None
        self.should_stop = (
            False  # set by a callback (anycl.training.best.EarlyStopping) to end training after this step
        )
        self.stream_epochs: List[
            Dict[str, Any]
        ] = []  # streamed data: each epoch's untrained rows (anycl.training.stream_steps)

    # -- hooks ----------------------------------------------------------------------------------------
    def _callback(self, name: str, *a) -> None:
        for cb in self.callbacks:
            fn = getattr(cb, name, None)
            if fn is None and name == "on_step_end" and callable(cb) and not hasattr(cb, "on_train_end"):
                fn = cb
            if fn is not None:
                fn(self, *a)

    def evaluate(self) -> Dict[str, float]:
        if self.evaluator is None:
            return {}
        model = self.accelerator.unwrap_model(self.module).model if self.accelerator else self.model
        metrics = self.evaluator(model)
        rec = {"step": self.global_step, **metrics}
        self.eval_history.append(rec)
        if self.accelerator is not None:
            self.accelerator.log({f"eval/{k}": v for k, v in metrics.items()}, step=self.global_step)
            if self.accelerator.is_main_process:
                log.info(
                    "evaluation at step %d: %s", self.global_step, ", ".join(f"{k}={v:.4f}" for k, v in metrics.items())
                )
        self._callback("on_evaluate", self.global_step, metrics)
        return metrics

    # -- the loop -------------------------------------------------------------------------------------
    def _epoch_batches(self, epoch: int, acc, skip: int = 0) -> tuple:
        bs = self.args.batch_size
        world = acc.num_processes
        if self.rows.streaming:  # each process batches its own share, in step with the others
            return streamed_epoch(self.rows, self.sampler, self.builder, bs, self.args.seed, epoch, skip, acc), None
        plan = self.sampler.plan(self.rows, epoch, bs * world)
        stream = BatchStream(
            self.rows,
            self.sampler,
            self.builder,
            bs,
            epoch,
            self.args.seed,
            rank=acc.process_index,
            world_size=world,
            plan=plan,
            skip_batches=skip,
        )
        workers = self.args.num_workers
        # its own generator: a DataLoader otherwise draws its base seed from the global RNG, which would
        # make a resumed run's dropout differ from the uninterrupted run's
        loader = torch.utils.data.DataLoader(
            stream,
            batch_size=None,
            num_workers=workers,
            pin_memory=acc.device.type == "cuda",
            persistent_workers=False,
            generator=torch.Generator().manual_seed(self.args.seed + epoch),
        )
        return loader, len(plan)

    def _setup_checkpoints(self, acc, scheduler) -> tuple:
        """Make the checkpointer and load ``resume_from``: (epoch, batches to skip, resumed?)."""
        args = self.args
        self.checkpointer = None
        if not (args.checkpoint_every or args.resume_from):
            return 0, 0, False

        root = checkpoint_root(args.output_dir) if args.output_dir else None
        self.checkpointer = Checkpointer(self, acc, scheduler, root, args.checkpoint_every, args.keep_checkpoints)
        path = resolve_resume(args.resume_from, args.output_dir)
        if path is None:
            self.checkpointer.clear()  # a fresh run: checkpoints of an earlier run must not pass for "latest"
            return 0, 0, False
        return (*self.checkpointer.resume(path), True)

    def _schedule(self, acc) -> tuple:
        """(total optimiser steps or None for an endless stream, epochs to run)."""
        args = self.args
        if self.rows.streaming:
            return args.max_steps, (args.epochs if not args.max_steps else 10**9)
        first_plan = self.sampler.plan(self.rows, 0, args.batch_size * acc.num_processes)
        if not first_plan:
            raise ConfigError(
                f"no batch of at least 2 distinct items can be formed from {len(self.rows)} rows with "
                f"batch_size={args.batch_size}; give more (distinct) rows"
            )
        wanted = args.batch_size * acc.num_processes
        largest = max(len(b) for b in first_plan)
        if len(first_plan) == 1 and largest < wanted:
            log.warning(
                "batch_size=%d is larger than the data: every step uses one batch of %d rows (all the "
                "rows that can share a batch)%s",
                args.batch_size,
                largest,
                "" if acc.num_processes == 1 else f" across {acc.num_processes} processes",
            )
        steps_per_epoch = math.ceil(len(first_plan) / args.gradient_accumulation_steps)
        if args.max_steps:
            return args.max_steps, math.ceil(args.max_steps / max(1, steps_per_epoch))
        return steps_per_epoch * args.epochs, args.epochs

    def _optimise(self, acc, batch, gen, gradcache, params, epoch: int) -> tuple:
        """One forward/backward (whole batch, or GradCache's mini-batches) and the optimiser step:
        (loss, extra loss terms)."""
        args = self.args
        with acc.accumulate(self.module):
            if gradcache is not None:  # anycl.training.gradcache: full-batch gradients, mini-batch memory
                loss, terms = gradcache_step(
                    gradcache,
                    acc,
                    self.module,
                    batch,
                    gen,
                    check=lambda value: check_finite(value, self.global_step, epoch),
                )
            else:
                with acc.autocast():
                    loss, terms = split_loss(self.module(batch, gen))
                check_finite(loss, self.global_step, epoch)
                acc.backward(loss)
            if acc.sync_gradients and args.max_grad_norm:
                acc.clip_grad_norm_(params, args.max_grad_norm)
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
        return loss, terms

    def _after_step(self, acc, epoch: int, batch, total: Optional[int], logs: Dict[str, Any], logged: bool) -> None:
        """What follows an optimiser step: EMA target, logging (when ``logged``), callbacks, re-mining,
        evaluation, checkpoint."""
        args = self.args
        hook = getattr(self.loss, "on_train_step_end", None)
        if hook is not None:
            hook(self.global_step, total)
        acc.unwrap_model(self.module).after_optimizer_step(self.global_step, total)  # EMA target
        if logged:
            acc.log(logs, step=self.global_step)
            self.history.append({"step": self.global_step, **logs})
        self._callback("on_step_end", self.global_step, logs)
        every = getattr(self.sampler, "refresh_every", None)
        if every and self.global_step % every == 0 and not (total and self.global_step >= total):
            self.sampler.refresh(acc.unwrap_model(self.module).model, self.rows, self.global_step)
        if args.eval_every and self.global_step % args.eval_every == 0:
            self.evaluate()
            self.module.train()
        if self.checkpointer is not None:
            self.checkpointer.step_done(epoch, batch["index"] + 1)

    def train(self):
        from accelerate.utils import set_seed  # lazy: accelerate: slow to import, only when training starts
        from tqdm.auto import tqdm  # lazy: only when a bar is drawn

        args = self.args
        started = time.perf_counter()
        acc = make_accelerator(args)
        self.accelerator = acc
        main = acc.is_main_process
        for part in (self.sampler, self.evaluator):  # a bar per mining pass and evaluation, from one process
            if hasattr(part, "show_progress"):
                part.show_progress = args.progress and main
            if not main and hasattr(part, "verbose"):  # mining statistics printed once, not once per process
                part.verbose = False
        set_seed(args.seed)
        if self.guide is not None:
            if self.guide.needs_views and not self.builder.keep_views:
                self.builder.keep_views = True
            if self.guide.chunk is None and args.gradcache_mini_batch:
                self.guide.chunk = args.gradcache_mini_batch  # the guide's activations stay mini-batch sized
        module = TrainingModule(self.model, self.loss, guide=self.guide)
        params = [p for p in module.parameters() if p.requires_grad]
        if not params:
            raise ConfigError("nothing to train: every parameter of the model and loss is frozen")
        optimizer = make_optimizer(params, args.lr, args.weight_decay, acc.device, acc.distributed_type)
        total, epochs = self._schedule(acc)
        if hasattr(self.sampler, "total_steps"):  # a mining curriculum follows training progress
            self.sampler.total_steps = total
        if self.guide is not None:  # on the training device before the first mining pass uses it
            self.guide.model.to(acc.device)
        if not args.log_every:  # every logged point goes to the trackers and the report alike
            args.log_every = max(1, total // 100) if total else 10
        warmup = int(args.warmup_ratio * total) if total else 0
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(warmup, total, args.lr_schedule))

        self.module, self.optimizer = acc.prepare(module, optimizer)
        gradcache = make_gradcache(args.gradcache_mini_batch, acc)
        start_epoch, skip, resumed = self._setup_checkpoints(acc, scheduler)  # anycl.training.checkpoint
        self.scheduler = scheduler
        if acc.log_with:
            acc.init_trackers("anycl", config=tracker_config(args))

        if self.evaluator is not None and not resumed and self.global_step == 0:
            self.evaluate()  # the baseline: the report and the model card show where training started
        bar = tqdm(
            total=total,
            initial=self.global_step,
            desc="train",
            unit="step",
            disable=not (args.progress and acc.is_main_process),
            dynamic_ncols=True,
        )
        if gradcache is not None and not bar.disable:  # a long step shows its mini-batches (anycl.progress)
            gradcache.progress = SubSteps(bar, lambda: self.global_step + 1)
        running, n_run, items, t0 = 0.0, 0, 0, time.perf_counter()
        done = False
        for epoch in range(start_epoch, epochs):
            self.epoch = epoch
            if not (resumed and epoch == start_epoch):  # a resumed sampler restored what refresh computed
                self.sampler.refresh(acc.unwrap_model(self.module).model, self.rows, self.global_step)
            epoch_skip = skip if epoch == start_epoch else 0
            loader, _ = self._epoch_batches(epoch, acc, epoch_skip)
            skipped_before = self.builder.skipped
            self.module.train()
            for batch in loader:
                batch = to_device(batch, acc.device)
                gen = None
                if acc.device.type in ("cpu", "cuda"):
                    gen = torch.Generator(device=acc.device)
                    gen.manual_seed(args.seed * 7_919 + epoch * 104_729 + batch["index"])
                loss, terms = self._optimise(acc, batch, gen, gradcache, params, epoch)
                running += float(loss.detach())
                n_run += 1
                items += batch["size"] * acc.num_processes
                if not acc.sync_gradients:
                    continue
                lr = scheduler.get_last_lr()[0]  # the rate this step used, before the schedule moves on
                if not acc.optimizer_step_was_skipped:
                    scheduler.step()
                self.global_step += 1
                rate = items / max(time.perf_counter() - t0, 1e-9)
                logs = {
                    "loss": running / n_run,
                    "lr": lr,
                    "items_per_s": rate,
                    "epoch": epoch,
                    **terms,
                }
                bar.update(1)
                bar.set_postfix(loss=f"{logs['loss']:.4f}", items_s=f"{rate:.1f}")
                logged = self.global_step % args.log_every == 0 or self.global_step == 1
                if logged:
                    running, n_run = 0.0, 0  # the logged loss is the mean since the last logged step
                self._after_step(acc, epoch, batch, total, logs, logged)
                if (total and self.global_step >= total) or self.should_stop:
                    done = True
                    break
            if isinstance(loader, LockstepBatches) and not (done or self.should_stop):
                skipped = self.builder.skipped - skipped_before
                self.stream_epochs.append(end_of_stream_epoch(loader, epoch, skipped, epoch_skip))
            if self.evaluator is not None and not args.eval_every and not self.should_stop:
                self.evaluate()
            if done or self.should_stop:
                break
        bar.close()
        if self.builder.skipped:
            log.warning(
                "skipped %d rows with unreadable items (first: %s)",
                self.builder.skipped,
                "; ".join(self.builder.skipped_examples),
            )
        self._callback("on_train_end")
        acc.wait_for_everyone()
        for tracker in acc.trackers:  # not acc.end_training(): it would destroy a launched process group
            tracker.finish()
        self.model = acc.unwrap_model(self.module).model
        self.model.eval()
        self.train_seconds = time.perf_counter() - started  # the whole call: refreshes, steps, evaluations
        return self.model
