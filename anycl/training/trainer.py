"""Where Accelerate steps: the training loop.

The :class:`Trainer` owns an ``accelerate.Accelerator`` (device placement on CPU/CUDA/MPS, mixed
precision, gradient accumulation, trackers such as TensorBoard), a warm-up + cosine learning-rate
schedule, a tqdm progress bar with the loss and items/s, periodic evaluation and callbacks.

One step: the sampler's batch for this process → the model embeds each side → the loss sees the
embeddings only → backward → optimiser step. Hooks for what other parts add (mined negatives refreshed
by the sampler, an EMA target updated by a loss) are called at the marked places. The epochs, their batches
and each step are :mod:`.epoch_loop`'s (a base class of the Trainer); this module sets the run up and finishes it.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch

from anycl.data.batching import BatchBuilder
from anycl.data.inputs import Rows
from anycl.errors import ConfigError
from anycl.evaluation.base import Evaluator
from anycl.losses.base import split_loss  # noqa: F401  (kept importable from here)

from .accelerator import LR_SCHEDULES, make_accelerator, tracker_config, warmup_cosine  # noqa: F401  (importable here)
from .args import TrainingArgs
from .checkpoint import Checkpointer, TrainingState, checkpoint_root, resolve_resume
from .contracts import Callback, TrainingSampler, as_callback
from .epoch_loop import EpochLoop
from .epochs import budget_applies, budget_eval_epochs, recipe_line, run_length
from .gradcache import make_gradcache
from .optimizer import make_optimizer
from .precision import log_precision
from .run_state import Run as _Run
from .step import TrainingModule

log = logging.getLogger("anycl")


class Trainer(EpochLoop):
    """Runs the training loop. ``fit`` builds one; users with their own parts can too.

    Args:
        model: the :class:`~anycl.model.ContrastiveModel`.
        loss: a loss module (embeddings in, scalar out).
        rows: the training :class:`~anycl.data.Rows`.
        sampler: a :class:`~anycl.sampling.Sampler` (what the trainer uses of it:
            :class:`~anycl.training.contracts.TrainingSampler`).
        builder: the :class:`~anycl.data.batching.BatchBuilder` turning rows into per-side features.
        args: :class:`TrainingArgs`.
        evaluator: optional ``evaluator(model) -> {metric: value}``; an
            :class:`~anycl.evaluation.base.Evaluator` also gets ``show_progress`` from ``args.progress``.
        guide: optional :class:`~anycl.training.guide.Guide` (guided false-negative masking); a guide that
            collates items itself needs ``builder.keep_views``.
        teacher: optional :class:`~anycl.model.distill_teacher.ViewTeacher` (distillation, with the ``distill``
            loss); one that embeds views sets ``builder.keep_views``.
        callbacks: :class:`~anycl.training.contracts.Callback` objects, objects of another class with any
            of ``on_step_end(trainer, step, logs)``, ``on_evaluate(trainer, step, metrics)``,
            ``on_train_end(trainer)`` (and ``checkpoint_state()`` / ``load_checkpoint_state(state)``), or
            plain callables ``fn(trainer, step, logs)`` called after each optimiser step.
    """

    def __init__(
        self,
        model,
        loss,
        rows: Rows,
        sampler: TrainingSampler,
        builder: BatchBuilder,
        args: TrainingArgs,
        evaluator: Optional[Callable] = None,
        callbacks: Sequence[Any] = (),
        guide=None,
        teacher=None,
    ):
        self.model = model
        self.loss = loss
        self.rows = rows
        self.sampler = sampler
        self.builder = builder
        self.args = args
        self.evaluator = evaluator
        self.callbacks = list(callbacks)  # as given
        self._hooks: List[Callback] = [as_callback(cb) for cb in self.callbacks]
        self.guide = guide  # anycl.training.guide.Guide or None
        self.teacher = teacher  # anycl.model.distill_teacher.ViewTeacher or None (distillation)
        self.history: List[Dict[str, Any]] = []
        self.eval_history: List[Dict[str, Any]] = []
        self.global_step = 0
        self.epoch = 0
        self.should_stop = False  # set by a callback (training.best.EarlyStopping): training ends after this step
        self.stream_epochs: List[Dict[str, Any]] = []  # streamed data: each epoch's untrained rows (stream_steps)
        # set by train(): the Accelerator, the prepared training module and optimiser, the LR schedule, the
        # checkpointer (None without checkpoint_every / resume_from) and the whole call's seconds
        self.accelerator: Any = None
        self.module: Any = None
        self.optimizer: Any = None
        self.scheduler: Any = None
        self.checkpointer: Optional[Checkpointer] = None
        self.train_seconds = 0.0

    # -- hooks ----------------------------------------------------------------------------------------
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
        for cb in self._hooks:
            cb.on_evaluate(self, self.global_step, metrics)
        return metrics

    # -- the state a checkpoint keeps -----------------------------------------------------------------
    def _keyed_callbacks(self) -> List[Tuple[str, Callback]]:
        """Each callback under its checkpoint key: position and class name (as given)."""
        return [(f"{i}:{type(cb).__name__}", hook) for i, (cb, hook) in enumerate(zip(self.callbacks, self._hooks))]

    def training_state(self, epoch: int, next_batch: int) -> TrainingState:
        """Where training stands after this step: ``next_batch`` of ``epoch`` is the next to train."""
        kept = {key: cb.checkpoint_state() for key, cb in self._keyed_callbacks()}
        callbacks = {key: state for key, state in kept.items() if state is not None}
        return TrainingState(self.global_step, epoch, next_batch, self.sampler.state_dict(), callbacks)

    def restore(self, state: TrainingState) -> None:
        """Continue from a checkpoint's :class:`TrainingState`."""
        self.global_step = state.global_step
        self.sampler.load_state_dict(state.sampler)
        for key, cb in self._keyed_callbacks():
            if key in state.callbacks:
                cb.load_checkpoint_state(state.callbacks[key])

    # -- setting up -----------------------------------------------------------------------------------
    def _start(self):
        """The Accelerator; the sampler and evaluator told whether to draw bars (one process draws them, one
        prints mining statistics); the seed."""
        from accelerate.utils import set_seed  # lazy: accelerate: slow to import, only when training starts

        acc = make_accelerator(self.args)
        self.accelerator = acc
        show = self.args.progress and acc.is_main_process
        self.sampler.show_progress = show  # a bar per mining pass
        if not acc.is_main_process:
            self.sampler.verbose = False  # mining statistics printed once, not once per process
        if isinstance(self.evaluator, Evaluator):
            self.evaluator.show_progress = show  # a bar per evaluation
            if self.evaluator.engine is None:  # evaluation computes as training does (bf16 under bf16 autocast)
                self.evaluator.engine = "torch-bf16" if acc.mixed_precision == "bf16" else "torch"
        set_seed(self.args.seed)
        return acc

    def _training_module(self, acc) -> Tuple[TrainingModule, List[torch.nn.Parameter], Any]:
        """The guide fitted to the batches, the model with its loss as one module, its trainable parameters
        and the optimiser."""
        if self.guide is not None:
            if self.guide.needs_views and not self.builder.keep_views:
                self.builder.keep_views = True
            if self.guide.chunk is None and self.args.gradcache_mini_batch:
                self.guide.chunk = self.args.gradcache_mini_batch  # the guide's activations stay mini-batch sized
        if self.teacher is not None and not self.teacher.cache:
            self.builder.keep_views = True  # the teacher embeds the views the student sees
        module = TrainingModule(self.model, self.loss, guide=self.guide, teacher=self.teacher)
        params = [p for p in module.parameters() if p.requires_grad]
        if not params:
            raise ConfigError("nothing to train: every parameter of the model and loss is frozen")
        args = self.args
        optimizer = make_optimizer(params, args.lr, args.weight_decay, acc.device, acc.distributed_type)
        return module, params, optimizer

    def _prepare(self, acc, module: TrainingModule, optimizer, total: Optional[int]) -> None:
        """The sampler's curriculum told the run's length, the guide on the device, the logging interval, the
        learning-rate schedule; the module and optimiser prepared by Accelerate."""
        args = self.args
        self.sampler.total_steps = total  # a mining curriculum follows training progress
        if self.guide is not None:  # on the training device before the first mining pass uses it
            self.guide.model.to(acc.device)
        if not args.log_every:  # every logged point goes to the trackers and the report alike
            args.log_every = max(1, total // 100) if total else 10
        warmup = int(args.warmup_ratio * total) if total else 0
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(warmup, total, args.lr_schedule))
        self.module, self.optimizer = acc.prepare(module, optimizer)
        self.scheduler = scheduler

    def _setup_checkpoints(self, acc) -> Tuple[int, int, bool]:
        """Make the checkpointer and load ``resume_from``: (epoch, batches to skip, resumed?)."""
        args = self.args
        self.checkpointer = None
        if not (args.checkpoint_every or args.resume_from):
            return 0, 0, False
        root = checkpoint_root(args.output_dir) if args.output_dir else None
        parts = {"model": acc.unwrap_model(self.module), "optimizer": self.optimizer, "scheduler": self.scheduler}
        self.checkpointer = Checkpointer(
            acc, parts, root, args.checkpoint_every, args.keep_checkpoints, run=args.run_identity
        )
        path = resolve_resume(args.resume_from, args.output_dir)
        if path is None:
            self.checkpointer.clear()  # a fresh run: checkpoints of an earlier run must not pass for "latest"
            return 0, 0, False
        state = self.checkpointer.resume(path)
        self.restore(state)
        return state.epoch, state.next_batch, True

    def _finish(self, acc) -> None:
        """Unreadable rows reported, the callbacks' end, the trackers closed, the trained model handed back."""
        if self.builder.skipped:
            log.warning(
                "skipped %d rows with unreadable items (first: %s)",
                self.builder.skipped,
                "; ".join(self.builder.skipped_examples),
            )
        for cb in self._hooks:
            cb.on_train_end(self)
        acc.wait_for_everyone()
        for tracker in acc.trackers:  # not acc.end_training(): it would destroy a launched process group
            tracker.finish()
        self.model = acc.unwrap_model(self.module).model
        self.model.eval()

    def train(self):
        started = time.perf_counter()
        acc = self._start()
        module, params, optimizer = self._training_module(acc)
        total, epochs = run_length(self.rows, self.sampler, self.args, acc.num_processes)
        eval_epochs = 1
        if budget_applies(self.rows, self.args):
            self.args.epochs = epochs  # the epochs the budget chose: what the run's record (config.yaml) repeats
            eval_epochs = budget_eval_epochs(epochs)  # about 10 evaluations, not one per (small) epoch
        if acc.is_main_process:
            log.info("training: %s", recipe_line(self.args.resolved_recipe, self.args, total, epochs))
            log_precision(self.args)  # what mixed_precision="auto" chose, once
        self._prepare(acc, module, optimizer, total)
        gradcache = make_gradcache(self.args.gradcache_mini_batch, acc)
        start = self._setup_checkpoints(acc)  # anycl.training.checkpoint
        if acc.log_with:
            acc.init_trackers("anycl", config=tracker_config(self.args))
        if self.evaluator is not None and not start[2] and self.global_step == 0:
            self.evaluate()  # the baseline: the report and the model card show where training started
        log_every = self.args.log_every or 1  # _prepare set it
        self._run_epochs(_Run(acc, params, gradcache, total, log_every, eval_epochs), epochs, start)
        self._finish(acc)
        self.train_seconds = time.perf_counter() - started  # the whole call: refreshes, steps, evaluations
        return self.model
