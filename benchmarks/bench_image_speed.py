"""Image training throughput: anycl's ``fit`` vs lightly's SimCLR loop at the same architecture, and a
DataLoader-workers sweep of anycl's ``fit`` alone (images and audio), to choose a default ``num_workers``.

Comparison (no probes, speed only): Fashion-MNIST (a fixed random subset of N training images), one
epoch, batch 256, augmentation preset ``small`` at 28 px (grey), a torchvision ResNet-18 at full width
with 1 input channel, the *same initial backbone* on both sides, in two variants (``--stems``):

- ``small``: 3×3 stride-1 first convolution, no max-pool (what anycl's default encoder uses for images
  of 64 px or less, ``small_stem=True``);
- ``standard``: torchvision's 7×7 stride-2 convolution and max-pool.

Both sides are the functions of ``bench_image.py``: anycl = ``anycl.fit(images, modality="image",
encoder=backbone, ...)`` timed as the whole call a user makes (set-up, checks, sampler planning,
training); lightly = the loop of lightly's SimCLR docs (per-image ``torchvision.transforms.v2``,
``SimCLRProjectionHead``, ``NTXentLoss``, AdamW + warm-up/cosine), timed as the whole function. For
each stem: one untimed warm-up per side (two batches), then R rounds, each running both sides, the
side that goes first alternating per round. Images/s = training images / wall seconds of the call.

Sweep (``--workers-sweep 0,1,2``): anycl's ``fit`` alone at each ``num_workers``, R rounds, the order of
the worker counts rotated per round; images as above (``--sweep-stems``), and audio (Debian's
sonic-pi samples, ``benchmarks/audiosets.py``; the default AudioCNN, 1 s windows, ``--audio-epochs``
epochs: the adapter's decoded-clip cache lives in the process that loads, so epochs after the first
show what workers that restart every epoch cost).

Run it on an idle machine: ``../shared/tools/idle-check`` runs before and after (both lines go into the
report); the 1-minute load after every timed run is recorded, and with a load above 2.5 the comparison
is void. The load counts this benchmark's own threads and DataLoader workers too, so each run also
records the CPU that *other* processes used during it (the machine's busy time from /proc/stat minus
this process's and its workers' CPU time, in cores).

Usage:
    PYTHONPATH=. python benchmarks/bench_image_speed.py            # writes benchmarks/results/image_speed.md
    PYTHONPATH=. python benchmarks/bench_image_speed.py --tiny     # a smoke test (~1 min idle), to a temp file
    options: --images 2048 --batch-size 256 --rounds 3 --stems small,standard --threads 2 --workers 0
             --anycl-workers N (default: anycl's own default) --workers-sweep 0,1,2 (empty: no sweep)
             --sweep-data image,audio --sweep-stems standard --out PATH
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import bench_image  # noqa: E402  (also puts the repository root on sys.path)
from cpu_meter import Meter  # noqa: E402
from idle import idle_line  # noqa: E402

STEMS = {"small": True, "standard": False}
MAX_LOAD = 2.5
TINY = {"images": 64, "batch_size": 32, "rounds": 1, "width": 16, "audio_clips": 16, "audio_batch": 8}
FULL = {"images": 2048, "batch_size": 256, "rounds": 3, "width": 64, "audio_clips": 0, "audio_batch": 32}


def record(**values) -> dict:
    print(" ".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items()), flush=True)
    return values


# ---- the runs ---------------------------------------------------------------------------------------------
def run_side(side: str, images, args, stem: str, seed: int, workers) -> dict:
    """One timed training call of one side; images/s over the whole call."""
    cfg = bench_image.train_config(args.batch_size, 1, workers)
    backbone = bench_image.new_backbone(seed, "resnet18", args.width, STEMS[stem])
    with Meter() as m:
        if side == "anycl":
            model, secs, _ = bench_image.train_anycl(images, backbone, cfg, seed)
            used = model.trainer.args.num_workers
        else:
            _, secs, _ = bench_image.train_lightly(images, backbone, backbone.embedding_dim, cfg, seed)
            used = workers
    return run_row(len(images), secs, used, m)


def run_row(items: int, secs: float, workers, m: Meter) -> dict:
    return {"items": items, "secs": secs, "rate": items / secs, "workers": workers, "load": m.load, "others": m.others}


def compare(images, args) -> list:
    out = []
    for stem in args.stems:
        warm = images[: 2 * args.batch_size]
        run_side("anycl", warm, args, stem, 99, args.anycl_workers)
        run_side("lightly", warm, args, stem, 99, args.workers)
        for r in range(args.rounds):
            order = ["anycl", "lightly"] if r % 2 == 0 else ["lightly", "anycl"]
            for side in order:
                w = args.anycl_workers if side == "anycl" else args.workers
                res = run_side(side, images, args, stem, r, w)
                out.append(record(part="compare", stem=stem, round=r, side=side, first=order[0], **res))
    return out


def audio_fit(files, args, seed: int, workers: int, epochs: int):
    import anycl

    return anycl.fit(
        files,
        modality="audio",
        epochs=epochs,
        batch_size=args.audio_batch,
        adapter_options={"clip_seconds": 1.0},
        seed=seed,
        num_workers=workers,
        progress=False,
    )


def sweep(images, args) -> list:
    out = []
    counts = args.workers_sweep
    datas = [("image", stem) for stem in args.sweep_stems] if "image" in args.sweep_data else []
    files = []
    if "audio" in args.sweep_data:
        import audiosets

        files = audiosets.sonic_pi().files
        files = files[: args.audio_clips] if args.audio_clips else files
        datas.append(("audio", "AudioCNN"))
    for data, stem in datas:
        if data == "image":
            run_side("anycl", images[: 2 * args.batch_size], args, stem, 99, 0)  # warm-up, untimed
        else:
            audio_fit(files[: 2 * args.audio_batch], args, 99, 0, epochs=1)  # warm-up, untimed
        for r in range(args.rounds):
            order = counts[r % len(counts) :] + counts[: r % len(counts)]
            for w in order:
                if data == "image":
                    res = run_side("anycl", images, args, stem, r, w)
                else:
                    with Meter() as m:
                        audio_fit(files, args, r, w, args.audio_epochs)
                    res = run_row(len(files) * args.audio_epochs, m.wall, w, m)
                out.append(record(part="sweep", data=data, stem=stem, round=r, **res))
    return out


# ---- the report -------------------------------------------------------------------------------------------
def _f(x, spec=".2f") -> str:
    return "–" if x is None else format(x, spec)


def _void(rows, threshold=MAX_LOAD) -> bool:
    return any(r["load"] > threshold for r in rows)


def report(args, cmd, before, after, cmp_rows, sweep_rows, total_s) -> str:
    n = args.images
    lines = [
        "# Image training throughput: anycl vs lightly at the same architecture",
        "",
        f"Written {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; whole run {total_s / 60:.1f} "
        f"min. Command: `{cmd}`.",
        "",
        f"- Before: {before}",
        f"- After: {after}",
        f"- Machine: {platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}, torch threads "
        f"{args.threads} (both sides; {torch.get_num_threads()} at the end of the run).",
        "",
    ]
    if cmp_rows:
        void = _void(cmp_rows)
        anycl_workers = sorted({r["workers"] for r in cmp_rows if r["side"] == "anycl"})
        lines += [
            "## anycl vs lightly",
            "",
            f"Fashion-MNIST, {n} training images (a fixed random subset), 1 epoch, batch {args.batch_size}, "
            f"preset 'small' at 28 px (grey: crop scale 0.2–1, flip, brightness/contrast jitter p 0.8), "
            f"torchvision ResNet-18 at width {args.width}, 1 input channel, the same initial weights on both "
            f"sides; AdamW lr 2e-3, 10 % warm-up then cosine, temperature 0.2. anycl: `anycl.fit(images, "
            f"modality='image', encoder=backbone, ...)`, timed as the whole call, DataLoader workers "
            f"{', '.join(map(str, anycl_workers))} ("
            + ("anycl's default" if args.anycl_workers is None else "--anycl-workers")
            + f"); lightly: the loop of lightly's SimCLR docs (bench_image.train_lightly), timed as the whole "
            f"function, DataLoader workers {args.workers} (--workers). One untimed warm-up per side and stem "
            f"(two batches), then {args.rounds} rounds per stem, the side that runs first alternating.",
            "",
            f"- Highest 1-minute load after a timed run: {max(r['load'] for r in cmp_rows):.2f}"
            + (
                f" — **above {MAX_LOAD}: this comparison is void**."
                if void
                else f" (not above {MAX_LOAD}: the comparison stands)."
            ),
            "",
            "| stem | round | first | lightly images/s | anycl images/s | anycl / lightly | load after (lightly, "
            "anycl) | others' CPU, cores (lightly, anycl) |",
            "|---|---|---|---|---|---|---|---|",
        ]
        verdicts = []
        for stem in args.stems:
            ratios = []
            for r in range(args.rounds):
                by = {x["side"]: x for x in cmp_rows if x["stem"] == stem and x["round"] == r}
                if len(by) < 2:
                    continue
                li, an = by["lightly"], by["anycl"]
                ratios.append(an["rate"] / li["rate"])
                lines.append(
                    f"| {stem} | {r + 1} | {li['first']} | {li['rate']:.1f} | {an['rate']:.1f} | {ratios[-1]:.2f}× | "
                    f"{li['load']:.2f}, {an['load']:.2f} | {_f(li['others'])}, {_f(an['others'])} |"
                )
            if ratios:
                verdicts.append((stem, ratios))
        lines += ["", "Target (issue 20): anycl ≥ 1.0× lightly at the same architecture, on an idle machine:", ""]
        for stem, ratios in verdicts:
            med = statistics.median(ratios)
            verdict = "void (the machine was busy), no verdict" if void else ("met" if med >= 1.0 else "not met")
            lines.append(
                f"- {stem} stem: median ratio {med:.2f}× (per round {', '.join(f'{x:.2f}' for x in ratios)}) — "
                f"**{verdict}**."
            )
        lines.append("")
    if sweep_rows:
        lines += [
            "## DataLoader workers for anycl's fit",
            "",
            f"anycl's `fit` alone at num_workers {', '.join(map(str, args.workers_sweep))}, {args.rounds} rounds, "
            "the order of the worker counts rotated per round; items/s = training items / wall seconds of the "
            "whole call. The 1-minute load includes this run's own workers; others' CPU is what other processes "
            "used during the run."
            + (
                f" Images: the setting above ({n} images, 1 epoch, batch {args.batch_size}, ResNet-18 width "
                f"{args.width}, stem{'s' if len(args.sweep_stems) > 1 else ''} {', '.join(args.sweep_stems)})."
                if "image" in args.sweep_data
                else ""
            )
            + (
                f" Audio: sonic-pi samples ({_audio_clips(sweep_rows, args)} clips), the default AudioCNN, 1 s "
                f"windows, batch {args.audio_batch}, {args.audio_epochs} epochs (clips/s counts every epoch's "
                "clips; the adapter's decoded-clip cache lives in the process that loads, and workers restart "
                "every epoch)."
                if "audio" in args.sweep_data
                else ""
            ),
            "",
            "| data | encoder / stem | num_workers | items/s per round | median | median / workers 0 | max load "
            "after | max others' CPU, cores |",
            "|---|---|---|---|---|---|---|---|",
        ]
        keys = []
        for x in sweep_rows:
            if (x["data"], x["stem"]) not in keys:
                keys.append((x["data"], x["stem"]))
        for data, stem in keys:
            base = None
            for w in args.workers_sweep:
                xs = [x for x in sweep_rows if x["data"] == data and x["stem"] == stem and x["workers"] == w]
                rates = [x["rate"] for x in sorted(xs, key=lambda x: x["round"])]
                med = statistics.median(rates)
                base = med if w == args.workers_sweep[0] else base
                others = [x["others"] for x in xs if x["others"] is not None]
                lines.append(
                    f"| {data} | {stem} | {w} | {', '.join(f'{v:.1f}' for v in rates)} | {med:.1f} | "
                    f"{med / base:.2f} | {max(x['load'] for x in xs):.2f} | {_f(max(others) if others else None)} |"
                )
        busiest = max((x["others"] for x in sweep_rows if x["others"] is not None), default=None)
        lines += [
            "",
            f"Other processes used at most {_f(busiest)} cores during a sweep run"
            + (" — **above 0.5: the sweep is void**." if busiest is not None and busiest > 0.5 else "."),
            "",
        ]
    return "\n".join(lines)


def _audio_clips(rows, args) -> int:
    return next(x["items"] // args.audio_epochs for x in rows if x["data"] == "audio")


# ---- command line -----------------------------------------------------------------------------------------
def parse(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tiny", action="store_true", help="a smoke test: " + str(TINY) + ", to a temp file")
    ap.add_argument("--images", type=int)
    ap.add_argument("--batch-size", type=int)
    ap.add_argument("--rounds", type=int)
    ap.add_argument("--width", type=int, help="ResNet-18 width (64: torchvision's)")
    ap.add_argument("--stems", default="small,standard")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (both sides)")
    ap.add_argument("--workers", type=int, default=0, help="DataLoader workers of the lightly loop")
    ap.add_argument("--anycl-workers", type=int, default=None, help="num_workers for anycl (default: its own)")
    ap.add_argument("--workers-sweep", default="0,1,2", help="num_workers values to sweep ('' : no sweep)")
    ap.add_argument("--sweep-data", default="image,audio")
    ap.add_argument(
        "--sweep-stems",
        default="standard",
        help="image stems of the sweep (standard: the cheapest network, where data loading weighs most)",
    )
    ap.add_argument("--no-compare", action="store_true", help="only the sweep")
    ap.add_argument("--audio-clips", type=int, help="0: all")
    ap.add_argument("--audio-batch", type=int)
    ap.add_argument("--audio-epochs", type=int, default=2)
    ap.add_argument("--out")
    args = ap.parse_args(argv)
    for k, v in (TINY if args.tiny else FULL).items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    args.stems = [s for s in args.stems.split(",") if s]
    args.sweep_stems = [s for s in args.sweep_stems.split(",") if s]
    unknown = sorted(set(args.stems + args.sweep_stems) - set(STEMS))
    if unknown:
        ap.error(f"unknown stem(s) {unknown}; choose from {sorted(STEMS)}")
    args.workers_sweep = [int(w) for w in args.workers_sweep.split(",") if w.strip()]
    args.sweep_data = [d for d in args.sweep_data.split(",") if d]
    if set(args.sweep_data) - {"image", "audio"}:
        ap.error(f"--sweep-data takes image and/or audio, got {args.sweep_data}")
    if args.out is None:
        args.out = (
            str(Path(tempfile.gettempdir()) / "image_speed_tiny.md")
            if args.tiny
            else str(HERE / "results" / "image_speed.md")
        )
    return args


def main(argv=None):
    args = parse(argv)
    cmd = "PYTHONPATH=. python benchmarks/bench_image_speed.py " + " ".join(argv if argv is not None else sys.argv[1:])
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    images = bench_image.load_fmnist(args.images, 0)[0]
    before = idle_line()
    print(before, flush=True)
    cmp_rows = [] if args.no_compare else compare(images, args)
    sweep_rows = sweep(images, args) if args.workers_sweep and args.sweep_data else []
    after = idle_line()
    print(after, flush=True)
    text = report(args, cmd.strip(), before, after, cmp_rows, sweep_rows, time.perf_counter() - started)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
