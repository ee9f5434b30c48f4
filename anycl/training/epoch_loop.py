"""The Trainer's epoch loop: the epochs from where training starts (or resumes), one epoch's batches, one
optimiser step (whole batch or GradCache's mini-batches) and what follows it (the LR schedule, logging, callbacks,
re-mining, evaluation, checkpoints).

:class:`EpochLoop` is a base class of :class:`anycl.training.trainer.Trainer`: its methods are the Trainer's
(a subclass or a test may replace one, ``Trainer._optimise`` for example) and read the state the Trainer sets up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple

import torch

from anycl.data.batching import to_device
from anycl.losses.base import split_loss
from anycl.progress import SubSteps

from .epochs import epoch_batches
from .gradcache import gradcache_step
from .run_state import Meter as _Meter
from .run_state import Run as _Run
from .step import check_finite
from .stream_steps import LockstepBatches, end_of_stream_epoch

if TYPE_CHECKING:
    from anycl.data.batching import BatchBuilder
    from anycl.data.inputs import Rows

    from .args import TrainingArgs
    from .checkpoint import Checkpointer, TrainingState
    from .contracts import Callback, TrainingSampler


class EpochLoop:
    """The epochs, their batches and each optimiser step of :meth:`Trainer.train`."""

    if TYPE_CHECKING:  # what the Trainer sets (its __init__ and train()) and gives
        args: TrainingArgs
        rows: Rows
        sampler: TrainingSampler
        builder: BatchBuilder
        evaluator: Any
        module: Any
        optimizer: Any
        scheduler: Any
        checkpointer: Optional[Checkpointer]
        global_step: int
        epoch: int
        should_stop: bool
        history: List[Dict[str, Any]]
        stream_epochs: List[Dict[str, Any]]
        _hooks: List[Callback]

        def evaluate(self) -> Dict[str, float]: ...

        def training_state(self, epoch: int, next_batch: int) -> TrainingState: ...

    def _batch_generator(self, acc, epoch: int, batch) -> Optional[torch.Generator]:
        """The batch's own augmentation / dropout generator, seeded by (seed, epoch, batch index)."""
        if acc.device.type not in ("cpu", "cuda"):
            return None
        gen = torch.Generator(device=acc.device)
        gen.manual_seed(self.args.seed * 7_919 + epoch * 104_729 + batch["index"])
        return gen

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

    def _count_step(self, run: _Run, epoch: int, terms: Dict[str, Any]) -> Tuple[Dict[str, Any], bool]:
        """An optimiser step done: the LR schedule moves, the step is counted and its logs made: (logs, whether
        this step is logged)."""
        meter = run.meter
        lr = self.scheduler.get_last_lr()[0]  # the rate this step used, before the schedule moves on
        if not run.acc.optimizer_step_was_skipped:
            self.scheduler.step()
        self.global_step += 1
        rate = meter.rate()
        logs = {"loss": meter.mean_loss(), "lr": lr, "items_per_s": rate, "epoch": epoch}
        logs.update(terms)
        run.bar.update(1)
        run.bar.set_postfix(loss=f"{logs['loss']:.4f}", items_s=f"{rate:.1f}")
        logged = self.global_step % run.log_every == 0 or self.global_step == 1
        if logged:
            meter.logged()
        return logs, logged

    def _after_step(self, acc, epoch: int, batch, total: Optional[int], logs: Dict[str, Any], logged: bool) -> None:
        """What follows an optimiser step: the loss's and the EMA target's updates, logging (when ``logged``),
        callbacks, re-mining, evaluation, checkpoint."""
        args = self.args
        acc.unwrap_model(self.module).after_optimizer_step(self.global_step, total)
        if logged:
            acc.log(logs, step=self.global_step)
            self.history.append({"step": self.global_step, **logs})
        for cb in self._hooks:
            cb.on_step_end(self, self.global_step, logs)
        every = self.sampler.refresh_every
        if every and self.global_step % every == 0 and not (total and self.global_step >= total):
            self.sampler.refresh(acc.unwrap_model(self.module).model, self.rows, self.global_step)
        if args.eval_every and self.global_step % args.eval_every == 0:
            self.evaluate()
            self.module.train()
        if self.checkpointer is not None and self.checkpointer.due(self.global_step):
            self.checkpointer.save(self.training_state(epoch, batch["index"] + 1))

    def _run_epoch(self, run: _Run, epoch: int, skip: int) -> bool:
        """One epoch's batches from ``skip`` on; True when training is done (the last step, or stopped)."""
        acc, total = run.acc, run.total
        loader = epoch_batches(self.rows, self.sampler, self.builder, self.args, epoch, acc, skip)
        skipped_before = self.builder.skipped
        self.module.train()
        done = False
        for batch in loader:
            batch = to_device(batch, acc.device)
            gen = self._batch_generator(acc, epoch, batch)
            loss, terms = self._optimise(acc, batch, gen, run.gradcache, run.params, epoch)
            run.meter.add(loss, batch["size"] * acc.num_processes)
            if not acc.sync_gradients:
                continue
            logs, logged = self._count_step(run, epoch, terms)
            self._after_step(acc, epoch, batch, total, logs, logged)
            if (total and self.global_step >= total) or self.should_stop:
                done = True
                break
        if isinstance(loader, LockstepBatches) and not (done or self.should_stop):
            skipped = self.builder.skipped - skipped_before
            self.stream_epochs.append(end_of_stream_epoch(loader, epoch, skipped, skip))
        return done

    def _run_epochs(self, run: _Run, epochs: int, start: Tuple[int, int, bool]) -> None:
        """The epochs from ``start`` (epoch, batches to skip, resumed?): each refreshes the sampler (not the
        resumed one: its sampler restored what refresh computed), trains, and evaluates without eval_every (every
        ``run.eval_epochs`` epochs and after the last)."""
        from tqdm.auto import tqdm  # lazy: only when a bar is drawn

        acc, (start_epoch, skip, resumed) = run.acc, start
        show = self.args.progress and acc.is_main_process
        run.bar = tqdm(
            total=run.total, initial=self.global_step, desc="train", unit="step", disable=not show, dynamic_ncols=True
        )
        if run.gradcache is not None and not run.bar.disable:  # a long step shows its mini-batches (anycl.progress)
            run.gradcache.progress = SubSteps(run.bar, lambda: self.global_step + 1)
        run.meter = _Meter()  # from the first step on
        for epoch in range(start_epoch, epochs):
            self.epoch = epoch
            first = epoch == start_epoch
            if not (resumed and first):
                self.sampler.refresh(acc.unwrap_model(self.module).model, self.rows, self.global_step)
            done = self._run_epoch(run, epoch, skip if first else 0)
            due = (epoch + 1) % run.eval_epochs == 0 or epoch + 1 == epochs or done
            if self.evaluator is not None and not self.args.eval_every and not self.should_stop and due:
                self.evaluate()
            if done or self.should_stop:
                break
        run.bar.close()
