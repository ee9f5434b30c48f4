"""Checkpoint and resume: a killed run continues where it stopped, ending with the same weights.

``fit(..., output_dir=d, checkpoint_every=N)`` writes ``d/checkpoints/step-<k>/`` every N optimiser
steps through Accelerate's state saving (``accelerator.save_state``): the model (with the loss's
parameters and buffers: memory queue, EMA target), the optimiser, the learning-rate schedule, every
process's random states (Python, NumPy, torch CPU/CUDA), and, registered with
``register_for_checkpointing``:

- the loss module's ``state_dict()`` (so state a loss keeps with ``get_extra_state`` is kept too);
- the training progress: optimiser step, epoch, the next batch of that epoch (the epoch's batches
  are a deterministic plan, so a resumed run skips the ones already done with
  ``BatchStream(skip_batches=...)``) and the sampler's ``state_dict()`` (a sampler must put in it
  whatever ``refresh`` computed, e.g. mined negatives: on resume the epoch-start refresh of the
  resumed epoch is not run again).

``fit(..., resume_from="latest")`` loads the newest checkpoint of ``output_dir`` (and trains from
scratch, saying so, when there is none yet, so one command line serves first start and restarts);
``resume_from=<path>`` loads that checkpoint folder. Resume with the same number of processes.

Writes are atomic: a checkpoint is written into ``checkpoints/.tmp-step-<k>`` and renamed to
``step-<k>`` only once complete (its ``anycl_checkpoint.json`` written last); the ``latest`` pointer
file is replaced atomically after the rename. A process killed mid-write leaves a ``.tmp-`` folder,
which is never taken for a checkpoint and is removed by the next save.
"""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from torch import nn

from .errors import ConfigError

log = logging.getLogger("anycl")

FOLDER = "checkpoints"
MARKER = "anycl_checkpoint.json"
POINTER = "latest"
_STEP = re.compile(r"^step-(\d+)$")


def checkpoint_root(output_dir: str) -> Path:
    return Path(output_dir) / FOLDER


def complete_checkpoints(root: Path) -> List[Tuple[int, Path]]:
    """(step, folder) of every complete checkpoint under ``root``, oldest first."""
    if not root.is_dir():
        return []
    out = []
    for p in root.iterdir():
        m = _STEP.match(p.name)
        if m and p.is_dir() and (p / MARKER).is_file():
            out.append((int(m.group(1)), p))
    return sorted(out)


def latest_checkpoint(root: Path) -> Optional[Path]:
    """The checkpoint the ``latest`` pointer names, else the complete one with the highest step."""
    pointer = root / POINTER
    if pointer.is_file():
        target = root / pointer.read_text().strip()
        if (target / MARKER).is_file():
            return target
    done = complete_checkpoints(root)
    return done[-1][1] if done else None


def resolve_resume(resume_from: Any, output_dir: Optional[str]) -> Optional[Path]:
    """The checkpoint folder to load for ``resume_from`` (None: train from scratch)."""
    if resume_from is None or resume_from is False:
        return None
    if resume_from == "latest" or resume_from is True:
        if not output_dir:
            raise ConfigError("resume_from='latest' needs output_dir (the folder whose checkpoints/ to resume from)")
        found = latest_checkpoint(checkpoint_root(output_dir))
        if found is None:
            log.info("resume_from='latest': no checkpoint in %s yet; training from the start",
                     checkpoint_root(output_dir))
        return found
    path = Path(os.fspath(resume_from))
    if not path.is_dir():
        raise ConfigError(f"resume_from={os.fspath(resume_from)!r} is not a folder; give a checkpoint folder "
                          f"(output_dir/checkpoints/step-N) or 'latest'")
    if not (path / MARKER).is_file():
        raise ConfigError(f"{os.fspath(path)!r} is not a complete anycl checkpoint (it has no {MARKER}; a run killed "
                          f"while writing leaves such a folder); use resume_from='latest' or another step")
    return path


class Progress:
    """Where training stands, saved with every checkpoint (a custom object for Accelerate)."""

    def __init__(self, trainer):
        self.trainer = trainer
        self.epoch = 0
        self.next_batch = 0

    def state_dict(self) -> Dict[str, Any]:
        return {"format": 1, "global_step": self.trainer.global_step, "epoch": self.epoch,
                "next_batch": self.next_batch, "sampler": self.trainer.sampler.state_dict()}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.trainer.global_step = int(state["global_step"])
        self.epoch, self.next_batch = int(state["epoch"]), int(state["next_batch"])
        self.trainer.sampler.load_state_dict(state.get("sampler") or {})


def _has_extra_state(module: nn.Module) -> bool:
    return any(type(m).get_extra_state is not nn.Module.get_extra_state for m in module.modules())


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(str(path), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class Checkpointer:
    """Saves and restores the trainer's state through its Accelerator (see the module docstring).

    Args:
        trainer: the :class:`~anycl.training.Trainer` (its ``sampler``, ``loss``, ``global_step``).
        accelerator: the run's Accelerator, after ``prepare``.
        scheduler: the learning-rate scheduler (not prepared by Accelerate, so registered here).
        directory: where ``step-<k>`` folders go (``output_dir/checkpoints``); None: resume only.
        every: save every this many optimiser steps (None: never).
        keep: complete checkpoints to keep (older ones are deleted after a save); None keeps all.
    """

    def __init__(self, trainer, accelerator, scheduler, directory: Optional[str], every: Optional[int],
                 keep: Optional[int] = 2):
        if every is not None and (isinstance(every, bool) or not isinstance(every, int) or every < 1):
            raise ConfigError(f"checkpoint_every must be a positive number of steps, got {every!r}")
        if keep is not None and (not isinstance(keep, int) or keep < 1):
            raise ConfigError(f"keep_checkpoints must be a positive integer or None, got {keep!r}")
        self.trainer, self.acc = trainer, accelerator
        self.root = Path(directory) if directory else None
        self.every, self.keep = every, keep
        self.progress = Progress(trainer)
        objects = [scheduler, self.progress]
        if isinstance(trainer.loss, nn.Module):
            objects.append(trainer.loss)
        accelerator.register_for_checkpointing(*objects)
        self.safe = not _has_extra_state(accelerator.unwrap_model(trainer.module))

    # -- resume ----------------------------------------------------------------------------------------
    def resume(self, path: Path) -> Tuple[int, int]:
        """Load ``path``; return (epoch, next batch of that epoch) to continue from."""
        self.acc.load_state(str(path))
        log.info("resumed from %s at step %d (epoch %d, batch %d)", path, self.trainer.global_step,
                 self.progress.epoch, self.progress.next_batch)
        return self.progress.epoch, self.progress.next_batch

    # -- save ------------------------------------------------------------------------------------------
    def step_done(self, epoch: int, next_batch: int) -> Optional[Path]:
        """Called after every optimiser step; saves when the step count is a multiple of ``every``."""
        if self.root is None or not self.every or self.trainer.global_step % self.every:
            return None
        return self.save(epoch, next_batch)

    def save(self, epoch: int, next_batch: int) -> Path:
        acc, step = self.acc, self.trainer.global_step
        self.progress.epoch, self.progress.next_batch = epoch, next_batch
        name = f"step-{step}"
        tmp, final = self.root / f".tmp-{name}", self.root / name
        if acc.is_main_process:
            self.root.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(tmp, ignore_errors=True)  # left by a run killed while writing
            tmp.mkdir()
        acc.wait_for_everyone()
        acc.save_state(str(tmp), safe_serialization=self.safe)
        acc.wait_for_everyone()
        if acc.is_main_process:
            info = {"step": step, "epoch": epoch, "next_batch": next_batch, "processes": acc.num_processes,
                    "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
            with open(tmp / MARKER, "w") as f:  # written last: its presence means complete
                json.dump(info, f)
                f.flush()
                os.fsync(f.fileno())
            if final.exists():
                old = self.root / f".old-{name}"
                shutil.rmtree(old, ignore_errors=True)
                os.replace(final, old)
                os.replace(tmp, final)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, final)
            pointer_tmp = self.root / f".{POINTER}.tmp"
            pointer_tmp.write_text(name)
            os.replace(pointer_tmp, self.root / POINTER)
            _fsync_dir(self.root)
            self._prune(final)
        acc.wait_for_everyone()
        return final

    def _prune(self, newest: Path) -> None:
        if self.keep is None:
            return
        done = [p for _, p in complete_checkpoints(self.root) if p != newest]
        for p in done[:max(0, len(done) - (self.keep - 1))]:
            shutil.rmtree(p, ignore_errors=True)

    def clear(self) -> None:
        """Remove every checkpoint (a fresh run with ``overwrite=True``)."""
        if self.root is not None and self.acc.is_main_process and self.root.exists():
            shutil.rmtree(self.root)
        self.acc.wait_for_everyone()
