"""Progress bars: one tqdm bar per phase of work (an evaluation, a mining pass, an ``encode`` call).

The training loop's bar (steps, with the loss) is made in ``anycl/training/trainer.py``.
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from typing import Any, Callable


@contextmanager
def phase_bar(show, total: int, desc: str):
    """Yield a tqdm bar over ``total`` items (items/s, ETA), closed on exit, or None when ``show`` is
    falsy. ``show`` may also be a bar that an enclosing phase opened: it is yielded to advance, and
    left open for that phase to close."""
    if hasattr(show, "update"):
        yield show
        return
    if not show:
        yield None
        return
    from tqdm.auto import tqdm  # lazy: only when a bar is drawn

    bar = tqdm(total=total, desc=desc, unit="item", dynamic_ncols=True)
    try:
        yield bar
    finally:
        bar.close()


@contextmanager
def quiet_library_bars():
    """Hide transformers' own bars ("Loading weights", "Writing model shards") and huggingface_hub's
    while the block runs, unless anycl's logger is at DEBUG (verbose); the previous setting comes back."""
    if logging.getLogger("anycl").isEnabledFor(logging.DEBUG):
        yield
        return
    try:
        from transformers.utils import logging as tlog  # lazy: transformers: slow to import, only to quiet its bars
    except ImportError:  # pragma: no cover - a dependency
        yield
        return
    was = tlog.is_progress_bar_enabled()
    tlog.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            tlog.enable_progress_bar()


class SubSteps:
    """Progress inside one long optimiser step, on the training bar's postfix: ``sub(done, total)`` shows
    "step S: mini-batch done/total" (GradCache's passes; :mod:`anycl.training.gradcache`), at most once every
    ``every`` seconds, so that a step of minutes does not sit at ``?`` with nothing moving."""

    def __init__(self, bar: Any, step: Callable[[], int], every: float = 1.0):
        self.bar, self.step, self.every = bar, step, every
        self._last = float("-inf")

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self._last < self.every and done < total:
            return
        self._last = now
        self.bar.set_postfix_str(f"step {self.step()}: mini-batch {done}/{total}", refresh=True)
