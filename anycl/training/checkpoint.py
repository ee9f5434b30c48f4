"""Checkpoint and resume: a killed run continues where it stopped, ending with the same weights.

``fit(..., output_dir=d, checkpoint_every=N)`` writes ``d/checkpoints/step-<k>/`` every N optimiser
steps. A checkpoint holds no pickle: every file is JSON or safetensors (:mod:`anycl.statefile`), and
loading one runs no code. Its files:

- ``model.json`` + ``model.safetensors``: the state dict of the model with the loss (parameters,
  buffers such as a memory queue or an EMA target, and what a loss keeps with ``get_extra_state``,
  which must be plain data and tensors);
- ``optimizer.json`` + ``.safetensors``: the optimiser's state dict (AdamW moments and step counts);
- ``scheduler.json``: the learning-rate schedule's position; ``scaler.json`` with fp16;
- ``trainer.json`` (+ ``.safetensors``): the training progress: optimiser step, epoch, the next batch of
  that epoch (the epoch's batches are a deterministic plan, so a resumed run skips the ones already
  done with ``BatchStream(skip_batches=...)``) and the sampler's ``state_dict()`` (a sampler must put in
  it whatever ``refresh`` computed, e.g. mined negatives: on resume the epoch-start refresh of the
  resumed epoch is not run again);
- ``rng-<rank>.json`` + ``.safetensors``: every process's random states (Python, NumPy, torch CPU/CUDA);
- ``anycl_checkpoint.json``: step, epoch, format, the files anycl wrote (``files``: the folder's manifest) and,
  under ``fit``, what identifies the run (``run``: model, loss, batch size, data size, ...; a resume checks it,
  :mod:`anycl.fitting.resume`); written last.

A folder holding a pickle file (``*.pkl``, ``*.bin``, ``*.pt``, ...: Accelerate's format, which older
anycl versions wrote, or a planted file) is refused before anything is read from it.

``fit(..., resume_from="latest")`` loads the newest checkpoint of ``output_dir`` (and trains from
scratch, saying so, when there is none yet, so one command line serves first start and restarts);
``resume_from=<path>`` loads that checkpoint folder. Resume with the same number of processes.

Writes are atomic: a checkpoint is written into ``checkpoints/.tmp-step-<k>`` and renamed to
``step-<k>`` only once complete (its ``anycl_checkpoint.json`` written last); the ``latest`` pointer
file is replaced atomically after the rename. A process killed mid-write (or a write that fails, e.g.
on a full disk) leaves a ``.tmp-`` folder, which is never taken for a checkpoint and is removed by the
next save; the previous checkpoints stay as they were.

Removing checkpoints (older ones past ``keep``, all of them for a fresh run) removes only what anycl wrote:
a user's files in ``checkpoints/`` or in a checkpoint folder stay (:mod:`anycl.training.checkpoint_clear`).
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Set, Union

import numpy as np
import torch

from anycl.errors import AnyclError, ConfigError
from anycl.files import apply_umask, replace_folder, reworded
from anycl.statefile import StateFileError, load_state, save_state

from .checkpoint_clear import clear_checkpoints, keep_users_files, remove_checkpoint, written_files
from .checkpoint_find import (  # noqa: F401  (importable from here, as before)
    FOLDER,
    FORMAT,
    FORMAT_VERSION,
    MARKER,
    PICKLE_SUFFIXES,
    POINTER,
    check_checkpoint,
    checkpoint_root,
    complete_checkpoints,
    latest_checkpoint,
    resolve_resume,
)
from .optimizer import state_mismatch

log = logging.getLogger("anycl")


@dataclass
class TrainingState:
    """Where training stands, saved with every checkpoint as ``trainer.json``: the optimiser step, the epoch and
    the next batch of that epoch, the sampler's ``state_dict()`` and the state of each callback that keeps one
    (``"<position>:<class name>"`` → its ``checkpoint_state()``). The trainer makes it and applies it."""

    global_step: int = 0
    epoch: int = 0
    next_batch: int = 0
    sampler: Dict[str, Any] = field(default_factory=dict)
    callbacks: Dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> Dict[str, Any]:
        return {
            "format": 1,
            "global_step": self.global_step,
            "epoch": self.epoch,
            "next_batch": self.next_batch,
            "sampler": self.sampler,
            "callbacks": self.callbacks,
        }

    @classmethod
    def from_dict(cls, state: Dict[str, Any]) -> TrainingState:
        return cls(
            global_step=int(state["global_step"]),
            epoch=int(state["epoch"]),
            next_batch=int(state["next_batch"]),
            sampler=state.get("sampler") or {},
            callbacks=state.get("callbacks") or {},
        )


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


def rng_state() -> Dict[str, Any]:
    """This process's random states: Python, NumPy, torch CPU and (when present) CUDA."""
    state: Dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Dict[str, Any]) -> None:
    kind, keys, gauss = state["python"]
    random.setstate((kind, tuple(keys), gauss))
    np.random.set_state(tuple(state["numpy"]))
    torch.set_rng_state(state["torch"].to(torch.uint8))
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.to(torch.uint8) for s in state["cuda"]])


class Checkpointer:
    """Saves and restores a run's state (see the module docstring): no pickle, no Accelerate state files.

    Args:
        accelerator: the run's Accelerator, after ``prepare`` (processes, the fp16 scaler, its step count).
        parts: name → an object with ``state_dict()`` / ``load_state_dict()``, saved as ``<name>.json`` (+
            ``.safetensors``): the training module (model with loss, unwrapped) as ``"model"``, the optimiser,
            the learning-rate scheduler.
        directory: where ``step-<k>`` folders go (``output_dir/checkpoints``); None: resume only.
        every: save every this many optimiser steps (None: never).
        keep: complete checkpoints to keep (older ones are deleted after a save); None keeps all.
        run: what identifies the run, written into every checkpoint's marker (:mod:`anycl.fitting.resume`
            makes it and checks it on resume); None: nothing recorded.

    The training progress (:class:`TrainingState`) is handed to :meth:`save` and returned by :meth:`resume`;
    ``state`` holds the last one saved or loaded.
    """

    def __init__(
        self,
        accelerator,
        parts: Mapping[str, Any],
        directory: Union[str, os.PathLike, None],
        every: Optional[int],
        keep: Optional[int] = 2,
        run: Optional[Mapping[str, Any]] = None,
    ):
        if every is not None and (isinstance(every, bool) or not isinstance(every, int) or every < 1):
            raise ConfigError(f"checkpoint_every must be a positive number of steps, got {every!r}")
        if keep is not None and (not isinstance(keep, int) or keep < 1):
            raise ConfigError(f"keep_checkpoints must be a positive integer or None, got {keep!r}")
        self.acc, self.parts = accelerator, dict(parts)
        self.root = Path(directory) if directory else None
        self.every, self.keep = every, keep
        self.run = dict(run) if run is not None else None
        self.state = TrainingState()

    # -- the files -------------------------------------------------------------------------------------
    def write_files(self, folder: Path) -> None:
        """Write this process's part of a checkpoint of ``state`` into ``folder`` (the main process: everything
        shared)."""
        acc = self.acc
        if acc.is_main_process:
            for name, part in self.parts.items():
                save_state(part.state_dict(), folder, name)
            if getattr(acc, "scaler", None) is not None:
                save_state(acc.scaler.state_dict(), folder, "scaler")
            trainer_state = self.state.as_dict()
            trainer_state["accelerator_step"] = int(getattr(acc, "step", 0))
            save_state(trainer_state, folder, "trainer")
        save_state(rng_state(), folder, f"rng-{acc.process_index}")

    def read_files(self, folder: Path) -> None:
        """Load the parts, the random states and (into ``state``) the training progress from ``folder``."""
        acc = self.acc
        try:
            for name, part in self.parts.items():
                part.load_state_dict(load_state(folder, name))
                wrong = state_mismatch(part) if isinstance(part, torch.optim.Optimizer) else None
                if wrong:  # load_state_dict checks no shapes: a wrong one would fail at the next step
                    raise ConfigError(f"cannot resume from {str(folder)!r}: its {name} state does not fit: {wrong}")
            if getattr(acc, "scaler", None) is not None and (folder / "scaler.json").is_file():
                acc.scaler.load_state_dict(load_state(folder, "scaler"))
            trainer_state = load_state(folder, "trainer")
            self.state = TrainingState.from_dict(trainer_state)
            if hasattr(acc, "step"):
                acc.step = int(trainer_state.get("accelerator_step", 0))
            rng_name = f"rng-{acc.process_index}"
            if not (folder / f"{rng_name}.json").is_file():
                raise ConfigError(
                    f"checkpoint {str(folder)!r} has no random states for process {acc.process_index} "
                    f"({rng_name}.json); resume with the number of processes that wrote it"
                )
            set_rng_state(load_state(folder, rng_name))
        except StateFileError as exc:
            raise ConfigError(f"cannot resume from {str(folder)!r}: {exc}") from exc
        except AnyclError:
            raise
        except (RuntimeError, KeyError, TypeError, ValueError, IndexError) as exc:  # torch's "size mismatch", ...
            raise ConfigError(
                f"cannot resume from {str(folder)!r}: its state does not fit this run ({type(exc).__name__}: "
                f"{' '.join(str(exc).split())[:300]}); resume with the model, loss and options that wrote it"
            ) from exc

    # -- resume ----------------------------------------------------------------------------------------
    def resume(self, path: Path) -> TrainingState:
        """Load ``path``; return the training progress it saved (the trainer continues from it)."""
        check_checkpoint(path)
        self.read_files(path)
        state = self.state
        log.info(
            "resumed from %s at step %d (epoch %d, batch %d)", path, state.global_step, state.epoch, state.next_batch
        )
        return state

    # -- save ------------------------------------------------------------------------------------------
    def due(self, step: int) -> bool:
        """Whether optimiser step ``step`` is one to save (a multiple of ``every``, with a directory)."""
        return self.root is not None and bool(self.every) and step % (self.every or 1) == 0

    def save(self, state: TrainingState) -> Path:
        """Write a checkpoint of the parts and ``state`` as ``step-<global_step>``."""
        if self.root is None:
            raise ConfigError("saving a checkpoint needs a directory (output_dir)")
        self.state = state
        acc, step, epoch, next_batch = self.acc, state.global_step, state.epoch, state.next_batch
        name = f"step-{step}"
        tmp, final = self.root / f".tmp-{name}", self.root / name
        foreign: Set[str] = set()  # the user's files in a left-over .tmp- folder (not in its manifest)
        if acc.is_main_process:
            self.root.mkdir(parents=True, exist_ok=True)
            foreign = set(remove_checkpoint(tmp))  # left by a run killed while writing (a user's files stay)
            tmp.mkdir(exist_ok=True)
        acc.wait_for_everyone()
        try:
            self.write_files(tmp)
        except OSError as exc:  # e.g. a full disk: the earlier checkpoints are untouched
            raise reworded(
                exc,
                f"writing checkpoint {tmp} failed ({exc.strerror or exc}); the earlier "
                f"checkpoints in {self.root} are unchanged",
            ) from exc
        acc.wait_for_everyone()
        if acc.is_main_process:
            info: Dict[str, Any] = {
                "format": FORMAT,
                "format_version": FORMAT_VERSION,
                "step": step,
                "epoch": epoch,
                "next_batch": next_batch,
                "processes": acc.num_processes,
                "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
                "files": sorted({p.name for p in tmp.iterdir()} - foreign) + [MARKER],  # what a removal removes
            }
            if self.run is not None:
                info["run"] = self.run
            with open(tmp / MARKER, "w") as f:  # written last: its presence means complete
                json.dump(info, f)
                f.flush()
                os.fsync(f.fileno())
            apply_umask(tmp)
            # this step written again (resumed from an earlier one) where a user put a file: it moves over
            if final.is_dir() and not final.is_symlink() and set(os.listdir(final)) - written_files(final):
                keep_users_files(final, tmp)
            replace_folder(tmp, final, self.root / f".old-{name}")
            pointer_tmp = self.root / f".{POINTER}.tmp"
            pointer_tmp.write_text(name)
            os.replace(pointer_tmp, self.root / POINTER)
            _fsync_dir(self.root)
            self._prune(final)
        acc.wait_for_everyone()
        return final

    def _prune(self, newest: Path) -> None:
        if self.keep is None or self.root is None:
            return
        done = [p for _, p in complete_checkpoints(self.root) if p != newest]
        for p in done[: max(0, len(done) - (self.keep - 1))]:
            left = remove_checkpoint(p)
            if left:
                log.warning("%s: removed the checkpoint and kept %s, which anycl did not write", p, ", ".join(left))

    def clear(self) -> None:
        """Remove every checkpoint anycl wrote (a fresh run), and only those: a user's files stay."""
        if self.root is not None and self.acc.is_main_process:
            clear_checkpoints(self.root)
        self.acc.wait_for_everyone()
