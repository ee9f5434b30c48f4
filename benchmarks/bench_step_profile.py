"""Where a training step's time goes, for audio and images, and today's path against the faster one.

Each run is the user's call, ``anycl.fit(items, modality=..., max_steps=N)`` with the modality's default
recipe (audio: the AudioCNN on log-mels, 1 s windows, batch 64; images: preset ``small`` at 28 px, the default
encoder), timed by wrapping the library's own functions (the wrappers time and call through, nothing else):

==================  ==================================================================================
region              the functions it times (exclusive: a region inside another counts only once)
==================  ==================================================================================
decode              ``AudioAdapter.load`` / ``ImageAdapter.load`` (read, decode, mix down, resample)
augment (item)      ``AudioAdapter.augment`` (random window, gain, shift) / ``ImageAdapter.augment``
                    (random resized crop + flip: for images this is also the crop & resize)
features            ``AudioAdapter.log_mel`` (log-mels) / ``ImageAdapter.prepare`` less its colour ops
                    (to float, normalise)
augment (batch)     the batched augmentations on the training device: audio ``spectrogram_view``
                    (off in the default recipe), image ``photometric`` (jitter, greyscale)
collate             the adapter's ``collate`` (stacking the views)
forward             ``TrainingModule.forward`` less the regions above: encoder, head, loss
backward+optimiser  ``Accelerator.backward``, the optimiser's ``step`` and ``zero_grad``, gradient clipping
other               the rest of the epoch loop (sampler, batch assembly, to_device, callbacks, logging)
==================  ==================================================================================

The data work is decode + augment (item) + features + augment (batch) + collate. Throughput is the items
trained (anchors) per second of the training loop (``Trainer._run_epoch``: set-up, checks, evaluation and
saving are left out, alike for both paths). A run's time includes its first epoch, where every item is decoded;
the table's last row is the data work's share of the steps after it (most items are cached by then; those
the first epoch left out, in_batch's drop_last, are decoded later), and the 20 % verdict reads that row (the
whole run's where a run is one epoch).

``--compare`` runs today's code against this checkout: ``git archive`` of ``--base`` (default ``f51fb65``, main
before this work: the decoded-item cache of ``adapters/item_cache.py``, the channels-last encoders of
``adapters/conv_layout.py``, the image crop and flip of ``image_augment.CropFlip`` and the log-mels of
``adapters/audio_mel.py``) unpacked in a temporary folder, each run a fresh Python importing anycl from one of
the two trees (it checks where anycl came from), with the same data, seed and settings; the two alternate, the
one that goes first swapping per round, ``--rounds`` rounds. It prints the table for both, the median of the
rounds' ratios (new / today, round by round) and met / not met against ``--target`` (1.3×), and whether the new
path's data work is under 20 % of its step. Same quality (``tests/test_step_profile.py``): the cache and the
crop and flip give the same batches for a seed, the channels-last encoders and the log-mels the same numbers
up to float rounding, so the last losses of the two paths agree to rounding, not bit for bit (bf16 autocast
rounds both, and the runs drift apart a little over the steps).

Speed ratios mean something only on an idle machine: run it with nothing else running. ``--check-idle`` runs
``../shared/tools/idle-check`` first and prints its line (``benchmarks/idle.py``); the 1-minute load is printed
after every run.

The audio data: Debian's sonic-pi samples (``--audio-data sonic-pi``, the default: 165 clips, which today's
cache of 256 clips already held, so its ratio comes from the encoder and the log-mels), or ``synthetic``:
``--audio-clips`` WAV files of 1.5-4 s at 44.1 kHz (320 by default: more than today's cache held). Images:
``--images`` 28-px grey PNGs made from scikit-learn's digits.

Usage (the first about 4 minutes on the 2-core machine, the second about 2; both measured loaded, so less idle):
    python benchmarks/bench_step_profile.py --compare --check-idle
    python benchmarks/bench_step_profile.py --compare --modality audio --audio-data synthetic
(after a merge, "new" is the checkout the script sits in, with whatever else was merged since ``--base``)
    options: --modality audio,image --audio-steps 30 --image-steps 20 --rounds 3 --threads 1
             --audio-data sonic-pi|synthetic --audio-clips 320 --images 1024 --target 1.3 --base REV --check-idle
    without --compare: this checkout's profile alone
    a smoke test (~1 min): --compare --rounds 1 --audio-steps 6 --image-steps 4 --images 256
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # a child run imports anycl from its PYTHONPATH (today's tree or this checkout)

REGIONS = (
    "decode",
    "augment (item)",
    "features",
    "augment (batch)",
    "collate",
    "forward",
    "backward+optimiser",
    "other",
)
EVALUATION = "evaluation"  # evaluation inside the loop: timed, left out of the step's time
ROOT = "other"  # the training loop's region: everything inside it not taken by another
DATA_REGIONS = ("decode", "augment (item)", "features", "augment (batch)", "collate")

TODAY = "f51fb65"  # main before this work (the module docstring lists what changed since)
DATA_TARGET = 0.2  # the data work's share of a step to stay under
RESULT = "RESULT "  # a child run's line of results


# -- the timers ------------------------------------------------------------------------------------------------
class Timers:
    """Exclusive wall time per region: a region entered inside another is taken out of the outer one."""

    def __init__(self) -> None:
        self.total: Dict[str, float] = {}
        self._stack: List[List[Any]] = []  # [region, start, time of children]
        self.items = 0
        self.first_epoch: Optional[Tuple[Dict[str, float], int]] = None  # the totals and steps after epoch 1

    @contextlib.contextmanager
    def region(self, name: str) -> Iterator[None]:
        if not self._stack and name != ROOT:  # outside the training loop (set-up, checks): not a step's time
            yield
            return
        sync()
        frame = [name, time.perf_counter(), 0.0]
        self._stack.append(frame)
        try:
            yield
        finally:
            sync()
            elapsed = time.perf_counter() - frame[1]
            self._stack.pop()
            self.total[name] = self.total.get(name, 0.0) + elapsed - frame[2]
            if self._stack:
                self._stack[-1][2] += elapsed

    def reset(self) -> None:
        self.total, self._stack, self.items, self.first_epoch = {}, [], 0, None


TIMERS = Timers()


def sync() -> None:
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def _wrap(owner: Any, attr: str, region: str) -> Callable[[], None]:
    """Time ``owner.attr`` as ``region``; returns the undo. A class's method is wrapped where it is defined (a
    base class of the adapter or trainer since the split into one-job modules; the class itself in ``--base``)."""
    if isinstance(owner, type):
        owner = next(c for c in owner.__mro__ if attr in c.__dict__)
    original = owner.__dict__[attr] if isinstance(owner, type) else getattr(owner, attr)

    @functools.wraps(original)
    def timed(*args, **kwargs):
        with TIMERS.region(region):
            return original(*args, **kwargs)

    setattr(owner, attr, timed)
    return lambda: setattr(owner, attr, original)


@contextlib.contextmanager
def timed_library() -> Iterator[None]:
    """Wrap the library's functions of one step with timers (and take the wrappers off afterwards)."""
    from accelerate import Accelerator
    from accelerate.optimizer import AcceleratedOptimizer

    from anycl.adapters import audio as audio_mod
    from anycl.adapters import image as image_mod
    from anycl.data import batching

    try:  # the module whose prepare calls photometric: image_views since the split, image in --base
        from anycl.adapters import image_views as image_views_mod
    except ImportError:
        image_views_mod = image_mod
    from anycl.training import trainer as trainer_mod
    from anycl.training.step import TrainingModule

    undo = [
        _wrap(audio_mod.AudioAdapter, "load", "decode"),
        _wrap(audio_mod.AudioAdapter, "augment", "augment (item)"),
        _wrap(audio_mod.AudioAdapter, "log_mel", "features"),
        _wrap(audio_mod, "spectrogram_view", "augment (batch)"),
        _wrap(image_mod.ImageAdapter, "load", "decode"),
        _wrap(image_mod.ImageAdapter, "augment", "augment (item)"),
        _wrap(image_mod.ImageAdapter, "prepare", "features"),
        _wrap(image_views_mod, "photometric", "augment (batch)"),
        _wrap(audio_mod.AudioAdapter, "collate", "collate"),
        _wrap(image_mod.ImageAdapter, "collate", "collate"),
        _wrap(TrainingModule, "forward", "forward"),
        _wrap(Accelerator, "backward", "backward+optimiser"),
        _wrap(Accelerator, "clip_grad_norm_", "backward+optimiser"),
        _wrap(AcceleratedOptimizer, "step", "backward+optimiser"),
        _wrap(AcceleratedOptimizer, "zero_grad", "backward+optimiser"),
        _wrap(trainer_mod.Trainer, "_run_epoch", "other"),
        _wrap(trainer_mod.Trainer, "evaluate", EVALUATION),
    ]
    original_build = batching.BatchBuilder.__dict__["build"]

    def build(self, rows, generator, train=True):  # counts the items trained
        out = original_build(self, rows, generator, train)
        if out is not None and train:
            TIMERS.items += int(out["size"])
        return out

    batching.BatchBuilder.build = build  # type: ignore[method-assign]
    undo.append(lambda: setattr(batching.BatchBuilder, "build", original_build))
    loop = next(c for c in trainer_mod.Trainer.__mro__ if "_run_epoch" in c.__dict__)  # EpochLoop since the split
    timed_epoch = loop.__dict__["_run_epoch"]

    def run_epoch(self, *args, **kwargs):  # keeps the totals at the end of the first epoch
        out = timed_epoch(self, *args, **kwargs)
        if TIMERS.first_epoch is None:
            TIMERS.first_epoch = (dict(TIMERS.total), int(self.global_step))
        return out

    loop._run_epoch = run_epoch  # type: ignore[attr-defined]
    undo.append(lambda: setattr(loop, "_run_epoch", timed_epoch))
    try:
        yield
    finally:
        for u in reversed(undo):
            u()


# -- the data -------------------------------------------------------------------------------------------------
def synthetic_clips(folder: Path, n: int, seed: int = 0) -> List[str]:
    """``n`` WAV files of 1.5-4 s at 44.1 kHz (tones, chirps and noise bursts), so decoding and resampling
    to 16 kHz are real work."""
    import soundfile as sf

    rng = np.random.default_rng(seed)
    rate = 44100
    files = []
    for i in range(n):
        secs = rng.uniform(1.5, 4.0)
        t = np.arange(int(secs * rate)) / rate
        f0 = rng.uniform(100, 2000)
        kind = i % 3
        if kind == 0:
            x = np.sin(2 * np.pi * f0 * t)
        elif kind == 1:
            x = np.sin(2 * np.pi * (f0 + rng.uniform(50, 400) * t) * t)
        else:
            x = rng.standard_normal(t.size) * np.exp(-t * rng.uniform(1, 5))
        path = folder / f"clip{i:04d}.wav"
        sf.write(str(path), (0.3 * x).astype(np.float32), rate)
        files.append(str(path))
    return files


def audio_items(kind: str, folder: Path, n: int) -> List[str]:
    if kind == "sonic-pi":
        import audiosets

        return audiosets.sonic_pi().files
    return synthetic_clips(folder, n)


def digit_images(folder: Path, n: int, seed: int = 0) -> List[str]:
    """``n`` 28-px grey PNGs: scikit-learn's 8×8 digits scaled up (repeated with small shifts to reach n)."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits().images  # (1797, 8, 8), values 0..16
    rng = np.random.default_rng(seed)
    files = []
    for i in range(n):
        img = Image.fromarray((digits[i % len(digits)] * 255 / 16).astype(np.uint8)).resize((24, 24), Image.BILINEAR)
        canvas = Image.new("L", (28, 28))
        canvas.paste(img, tuple(int(v) for v in rng.integers(0, 5, 2)))
        path = folder / f"digit{i:05d}.png"
        canvas.save(path)
        files.append(str(path))
    return files


# -- one run ---------------------------------------------------------------------------------------------------
def one_run(modality: str, items: List[str], steps: int, seed: int = 0) -> Dict[str, Any]:
    """One ``fit`` of ``steps`` steps with the modality's default recipe, timed: seconds per step by region,
    the loop's seconds, items trained, the last logged loss."""
    import anycl

    options = {"preset": "small"} if modality == "image" else {}
    TIMERS.reset()
    with timed_library():
        model = anycl.fit(items, modality=modality, max_steps=steps, seed=seed, adapter_options=options, progress=False)
    total = sum(v for k, v in TIMERS.total.items() if k != EVALUATION)
    history = model.trainer.history
    steps = max(model.trainer.global_step, 1)
    later = None  # the data work's share of the steps after the first epoch (every item decoded by then)
    if TIMERS.first_epoch is not None and TIMERS.first_epoch[1] < steps:
        first = TIMERS.first_epoch[0]
        rest = {k: v - first.get(k, 0.0) for k, v in TIMERS.total.items() if k != EVALUATION}
        later = sum(rest.get(k, 0.0) for k in DATA_REGIONS) / (sum(rest.values()) or 1.0)
    return {
        "later_data_share": later,
        "per_step": {k: v / steps for k, v in TIMERS.total.items()},
        "total": total,
        "items": TIMERS.items,
        "steps": steps,
        "loss": history[-1]["loss"] if history else float("nan"),
    }


def child(spec: Dict[str, Any]) -> None:
    """A run in its own process, importing anycl from ``spec["root"]`` (today's tree or this checkout)."""
    torch.set_num_threads(spec["threads"])
    import anycl

    where = Path(anycl.__file__).resolve()
    if Path(spec["root"]).resolve() not in where.parents:
        raise SystemExit(f"anycl imported from {where}, not from {spec['root']}")
    logging.getLogger("anycl").setLevel(logging.ERROR)
    items = json.loads(Path(spec["items"]).read_text())
    print(RESULT + json.dumps(one_run(spec["modality"], items, spec["steps"])), flush=True)


def run_in(root: Path, modality: str, items_file: Path, steps: int, threads: int) -> Dict[str, Any]:
    """:func:`child` in a fresh Python with ``root`` first on its path."""
    spec = {"root": str(root), "modality": modality, "items": str(items_file), "steps": steps, "threads": threads}
    env = {**os.environ, "PYTHONPATH": str(root), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env.update({k: str(threads) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")})
    p = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)],
        env=env,
        capture_output=True,
        text=True,
        cwd=str(root),
    )
    for line in p.stdout.splitlines():
        if line.startswith(RESULT):
            return json.loads(line[len(RESULT) :])
    raise SystemExit(f"the run in {root} failed:\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")


def today_tree(base: str, into: Path) -> Path:
    """Today's code: ``git archive`` of ``base`` unpacked into ``into``."""
    repo = HERE.parent
    rev = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", base], capture_output=True, text=True)
    if rev.returncode:
        raise SystemExit(f"--base {base!r} is not a commit of {repo}: {rev.stderr.strip()}")
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(repo), "archive", base], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def shares_table(modality: str, runs: Dict[str, List[Dict[str, Any]]]) -> str:
    paths = list(runs)
    head = f"{'region':20s}" + "".join(f"{p + ' s/step':>16s}{p + ' %':>10s}" for p in paths)
    lines = [f"{modality}: seconds per step by region (median over rounds) and share of the step", head]
    per = {}
    for p in paths:
        per[p] = {reg: statistics.median(r["per_step"].get(reg, 0.0) for r in runs[p]) for reg in REGIONS}
        per[p]["total"] = statistics.median(r["total"] / r["steps"] for r in runs[p])
    for reg in (*REGIONS, "total"):
        row = f"{reg:20s}"
        for p in paths:
            tot = per[p]["total"] or 1.0
            row += f"{per[p][reg]:16.3f}{100 * per[p][reg] / tot:9.1f}%"
        lines.append(row)
    row = f"{'data work':20s}"
    for p in paths:
        data = sum(per[p][r] for r in DATA_REGIONS)
        row += f"{data:16.3f}{100 * data / (per[p]['total'] or 1.0):9.1f}%"
    lines.append(row)
    row = f"{'  after epoch 1':20s}"
    for p in paths:
        later = later_share(runs[p])
        row += f"{'':16s}" + (f"{100 * later:9.1f}%" if later is not None else f"{'-':>10s}")
    lines.append(row)
    return "\n".join(lines)


def later_share(runs: List[Dict[str, Any]]) -> Optional[float]:
    """The median data share of the steps after the first epoch, or None (a run of one epoch)."""
    values = [r["later_data_share"] for r in runs if r.get("later_data_share") is not None]
    return statistics.median(values) if values else None


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--modality", default="audio,image")
    ap.add_argument("--audio-steps", type=int, default=30, help="optimiser steps per audio run")
    ap.add_argument("--image-steps", type=int, default=20, help="optimiser steps per image run")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--compare", action="store_true", help="today's code (--base) against this checkout, interleaved")
    ap.add_argument("--base", default=TODAY, help=f"the commit that is 'today' (default {TODAY})")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--audio-data", default="sonic-pi", choices=("sonic-pi", "synthetic"))
    ap.add_argument("--audio-clips", type=int, default=320, help="synthetic clips")
    ap.add_argument("--images", type=int, default=1024)
    ap.add_argument("--target", type=float, default=1.3)
    ap.add_argument("--check-idle", action="store_true", help="print the idle-check's line first")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(json.loads(args.child))
        return 0

    if args.check_idle:
        from idle import idle_line

        print(idle_line())
    from anycl.model.precision import cpu_bf16_units  # the ratios depend on it (AMX or AVX512-BF16 or none)

    units = cpu_bf16_units() or "none"
    print(f"torch {torch.__version__}, {args.threads} thread(s), CPU bf16 units {units}, load {os.getloadavg()}")
    verdicts = []
    with tempfile.TemporaryDirectory() as tmp:
        roots = {"new": HERE.parent}
        if args.compare:
            roots = {"today": today_tree(args.base, Path(tmp) / "today"), **roots}
            print(f"today = {args.base}, new = this checkout ({HERE.parent})")
        for modality in [m.strip() for m in args.modality.split(",") if m.strip()]:
            folder = Path(tmp) / modality
            folder.mkdir()
            if modality == "audio":
                items = audio_items(args.audio_data, folder, args.audio_clips)
                what = f"{len(items)} clips ({args.audio_data})"
            else:
                items = digit_images(folder, args.images)
                what = f"{len(items)} 28-px PNGs (scikit-learn digits)"
            steps = args.audio_steps if modality == "audio" else args.image_steps
            items_file = folder / "items.json"
            items_file.write_text(json.dumps(items))
            runs: Dict[str, List[Dict[str, Any]]] = {p: [] for p in roots}
            for r in range(args.rounds):
                order = list(roots) if r % 2 == 0 else list(roots)[::-1]
                for p in order:
                    res = run_in(roots[p], modality, items_file, steps, args.threads)
                    runs[p].append(res)
                    print(
                        f"  {modality} round {r + 1} {p:5s}: {res['items'] / res['total']:8.1f} items/s "
                        f"({res['total']:.1f} s, last loss {res['loss']:.4f}, load {os.getloadavg()[0]:.2f})",
                        flush=True,
                    )
            print(f"\n{modality}: {what}, the default recipe, {steps} steps per run")
            print(shares_table(modality, runs))
            rates = {p: [r["items"] / r["total"] for r in runs[p]] for p in roots}
            for p in roots:
                print(f"{modality} {p}: median {statistics.median(rates[p]):.1f} items/s")
            new = runs["new"]
            data = statistics.median(
                sum(r["per_step"].get(k, 0.0) for k in DATA_REGIONS) * r["steps"] / r["total"] for r in new
            )
            later = later_share(new)
            said = f"{modality}: data work {100 * data:.1f} % of the new path's step"
            if later is not None:
                said += f" ({100 * later:.1f} % after the first epoch, which decodes most items)"
            share = data if later is None else later
            verdicts.append(f"{said} -> {'under' if share < DATA_TARGET else 'not under'} {100 * DATA_TARGET:.0f} %")
            if args.compare:
                ratios = [n / t for n, t in zip(rates["new"], rates["today"])]
                ratio = statistics.median(ratios)
                verdict = "met" if ratio >= args.target else "not met"
                verdicts.append(
                    f"{modality}: new / today = {ratio:.2f}x (rounds: {', '.join(f'{x:.2f}' for x in ratios)}) "
                    f"-> {verdict} (target {args.target}x)"
                )
            print()
    for v in verdicts:
        print(v)
    print(f"load at the end {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
