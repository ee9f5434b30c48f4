"""What the :class:`~anycl.training.Trainer` asks of the parts it is given, declared in one place.

- the **sampler**: :class:`TrainingSampler` (:class:`anycl.sampling.Sampler` implements it, with defaults for
  every attribute; sampling sits beside training, so the trainer names the contract, not the class);
- the **callbacks**: :class:`Callback`, every hook a no-op. A callback of another class (an object with any of
  the hooks) or a plain function ``fn(trainer, step, logs)`` (called after each optimiser step) is seen
  through :func:`as_callback`;
- the **evaluator**: :class:`anycl.evaluation.base.Evaluator`, or any callable ``model -> {metric: value}``.
"""

from __future__ import annotations

from typing import Any, Dict, Iterator, List, Optional, Protocol, Sequence


class TrainingSampler(Protocol):
    """The sampler as the trainer uses it (see :class:`anycl.sampling.Sampler` for each part's meaning)."""

    refresh_every: Optional[int]  # the trainer calls refresh every this many optimiser steps too (None: never)
    show_progress: bool  # set by the trainer: fit's progress option, on the main process only
    verbose: bool  # set False by the trainer on every process but the main one
    total_steps: Optional[int]  # set by the trainer: the run's optimiser steps (None: an endless stream)

    def plan(self, rows, epoch: int, batch_size: int) -> List[List[int]]: ...

    def stream(self, rows, epoch: int, batch_size: int) -> Iterator[List[dict]]: ...

    def rows_for(self, rows, indices: Sequence[int]) -> List[dict]: ...

    def refresh(self, model, rows, step: int) -> None: ...

    def state_dict(self) -> Dict[str, Any]: ...

    def load_state_dict(self, state: Dict[str, Any]) -> None: ...


HOOKS = ("on_step_end", "on_evaluate", "on_train_end", "checkpoint_state", "load_checkpoint_state")


class Callback:
    """A training callback: the trainer calls each hook at its place; every hook here does nothing."""

    def on_step_end(self, trainer, step: int, logs: Dict[str, Any]) -> None:
        """After each optimiser step (``logs``: loss, lr, items/s, epoch and the loss's extra terms)."""

    def on_evaluate(self, trainer, step: int, metrics: Dict[str, float]) -> None:
        """After each evaluation."""

    def on_train_end(self, trainer) -> None:
        """Once, after the last step (before the model is handed back)."""

    def checkpoint_state(self) -> Optional[Dict[str, Any]]:
        """What a checkpoint keeps of this callback (plain data), or None: nothing."""
        return None

    def load_checkpoint_state(self, state: Dict[str, Any]) -> None:
        """Restore what :meth:`checkpoint_state` gave (on resume)."""


class _GivenCallback(Callback):
    """A callback of another class, or a plain function, seen as a :class:`Callback`: its hooks, those it has,
    looked up once. A callable with neither ``on_step_end`` nor ``on_train_end`` is called after each step."""

    def __init__(self, given: Any):
        self.given = given
        self.hooks = {name: getattr(given, name, None) for name in HOOKS}
        if self.hooks["on_step_end"] is None and self.hooks["on_train_end"] is None and callable(given):
            self.hooks["on_step_end"] = given

    def on_step_end(self, trainer, step: int, logs: Dict[str, Any]) -> None:
        if self.hooks["on_step_end"] is not None:
            self.hooks["on_step_end"](trainer, step, logs)

    def on_evaluate(self, trainer, step: int, metrics: Dict[str, float]) -> None:
        if self.hooks["on_evaluate"] is not None:
            self.hooks["on_evaluate"](trainer, step, metrics)

    def on_train_end(self, trainer) -> None:
        if self.hooks["on_train_end"] is not None:
            self.hooks["on_train_end"](trainer)

    def checkpoint_state(self) -> Optional[Dict[str, Any]]:
        return self.hooks["checkpoint_state"]() if self.hooks["checkpoint_state"] is not None else None

    def load_checkpoint_state(self, state: Dict[str, Any]) -> None:
        if self.hooks["load_checkpoint_state"] is not None:
            self.hooks["load_checkpoint_state"](state)


def as_callback(given: Any) -> Callback:
    """``given`` as a :class:`Callback` (itself when it is one)."""
    return given if isinstance(given, Callback) else _GivenCallback(given)
