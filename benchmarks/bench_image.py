"""Self-supervised pretraining on Fashion-MNIST: anycl recipes vs lightly SimCLR, plus raw-pixel and random-init floors.

Every side trains the same backbone (``--arch``: a ResNet with the small-image stem, or anycl's wide
shallow ``cnn``, see ``anycl.adapters.image_cnn``), from the same initial weights, for the same number
of epochs (the fixed budget), on 28 px grey images. What differs is what each side does:

- lightly SimCLR: the loop from lightly's SimCLR docs — a torch ``Dataset`` giving two views per image
  with per-image ``torchvision.transforms.v2`` (the ``small`` preset: random resized crop scale 0.2–1,
  flip, jitter 0.4/0.4 with p = 0.8, no blur), ``SimCLRProjectionHead`` and ``NTXentLoss`` (2B − 2
  negatives), AdamW + warm-up/cosine, as a plain torch loop. Always plain SimCLR.
- anycl recipes (``--recipe NAME=JSON``, repeatable): ``anycl.fit(images, modality="image", ...)`` with
  the shared settings and the recipe's overrides (``adapter`` options such as ``scale``/``flip_p``/
  ``jitter``, ``loss``, ``loss_options``, ``temperature``, ``lr``, ``batch_size``, ``weight_decay``,
  ``views``, ``local_views``; benchmarks/image_sides.py). ``anycl={}`` is SimCLR with anycl's loss.

Evaluation (frozen backbone features, L2-normalised): weighted kNN (k = 20, T = 0.1) and a
logistic-regression linear probe, fitted on the labelled training images and scored on the
evaluation images. anycl recipes and lightly alternate which goes first per seed.

Two modes:

- test (default): pretrain and fit the probes on ``--train`` training images, score on ``--test`` test
  images; writes ``--out`` (benchmarks/results/image.md).
- ``--dev``: the Fashion-MNIST *test images are never read*: ``--train`` training images for
  pretraining and probe fitting and ``--test`` *other* training images (disjoint) to score on. Results
  are appended as JSON lines to ``--jsonl`` (benchmarks/results/image_dev.jsonl); no markdown is written.

The defaults are issue 16's protocol: 10,000 training / 10,000 test images, the ``cnn`` at width 32
with a 4 × 4 output grid, 3 epochs, batch 128, seeds 0 1 2, one torch thread.

Run: ``PYTHONPATH=. python benchmarks/bench_image.py --linear-seeds 1`` (options: --help; add
``--recipe anycl={} --recipe 'default={"defaults": true}'`` for a row with anycl's own optimiser defaults).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import realdata  # noqa: E402
from image_sides import check_recipe, features_plain, train_anycl, train_lightly  # noqa: E402,F401

from anycl.adapters.image import ImageAdapter  # noqa: E402
from anycl.evaluation import knn_accuracy, linear_probe_accuracy  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
FLOORS = ("raw", "random", "lightly")
NAMES = {"raw": "raw pixels", "random": "random-init encoder", "lightly": "lightly SimCLR"}


def load_fmnist(n_train: int, n_test: int, seed: int = 0, dev: bool = False, reader=None):
    """Fixed random subsets: (train images, train labels, evaluation images, evaluation labels).

    ``dev=False``: ``n_train`` of the training split and ``n_test`` of the test split. ``dev=True``: both
    from the training split, disjoint (the first ``n_train`` and the next ``n_test`` of one permutation);
    the test split is never read. ``reader(split)`` gives (images, labels) (default: the Debian package's
    IDX files through benchmarks/realdata.py)."""
    reader = reader or realdata.fashion_mnist
    xtr, ytr = reader("train")
    rng = np.random.default_rng(seed)
    if dev:
        if n_train + n_test > len(xtr):
            raise ValueError(f"--dev needs {n_train} + {n_test} training images, there are {len(xtr)}")
        perm = rng.permutation(len(xtr))
        i, j = np.sort(perm[:n_train]), np.sort(perm[n_train : n_train + n_test])
        return list(xtr[i]), ytr[i].tolist(), list(xtr[j]), ytr[j].tolist()
    xte, yte = reader("test")
    i = np.sort(rng.permutation(len(xtr))[:n_train])
    j = np.sort(rng.permutation(len(xte))[:n_test])
    return list(xtr[i]), ytr[i].tolist(), list(xte[j]), yte[j].tolist()


def encoder_options(arch: str, width: int, grid=None, small_stem: bool = True) -> dict:
    """The options of ``ImageAdapter.default_encoder`` for the shared backbone."""
    if arch == "cnn":
        return {"arch": "cnn", "width": width, **({} if grid is None else {"grid": grid})}
    return {"arch": arch, "width": width, "small_stem": small_stem}


def new_backbone(seed: int, arch: str = "resnet18", width: int = 64, small_stem: bool = True, grid=None):
    """The backbone every side trains, seeded so that each gets the same initial weights; 1 input channel.

    ResNets: ``small_stem``: a 3×3 stride-1 first convolution and no max-pool (what anycl's default encoder
    uses for images of 64 px or less); else torchvision's 7×7 stride-2 convolution and max-pool."""
    torch.manual_seed(1000 + seed)
    adapter = ImageAdapter(preset="small", size=28, mode="L")
    return adapter.default_encoder(**encoder_options(arch, width, grid, small_stem))


def train_config(batch_size: int, epochs: int, workers) -> dict:
    """The training settings every side shares (preset 'small' at 28 px, grey; AdamW; warm-up + cosine)."""
    return {
        "adapter": {"preset": "small", "size": 28, "mode": "L"},
        "batch_size": batch_size,
        "epochs": epochs,
        "lr": 2e-3,
        "weight_decay": 1e-4,
        "warmup_ratio": 0.1,
        "temperature": 0.2,
        "workers": workers,
    }


def probes(tr, ytr, te, yte, k, t, linear=True):
    out = {"knn": knn_accuracy(tr, ytr, te, yte, k=k, temperature=t)}
    if linear:
        out["linear"] = linear_probe_accuracy(tr, ytr, te, yte, max_iter=1000)
    return out


def fmt(values):
    if not values:
        return "–"
    if len(values) == 1:
        return f"{100 * values[0]:.1f}"
    return f"{100 * statistics.mean(values):.1f} ± {100 * statistics.stdev(values):.1f}"


def parse_recipes(items):
    """``NAME=JSON`` strings → {name: recipe}; default ``{"anycl": {}}``."""
    recipes = {}
    for item in items or ["anycl={}"]:
        name, sep, text = item.partition("=")
        if not sep or not name or name in FLOORS:
            raise SystemExit(f"--recipe takes NAME=JSON with a name other than {FLOORS}, got {item!r}")
        recipes[name] = check_recipe(json.loads(text or "{}"))
    return recipes


def build_parser():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--train", type=int, default=10000, help="training images (pretraining and probe fitting)")
    ap.add_argument(
        "--test", type=int, default=10000, help="images scored by the probes (dev mode: other training images)"
    )
    ap.add_argument("--dev", action="store_true", help="score on held-out TRAINING images; never read the test split")
    ap.add_argument("--epochs", type=int, default=3, help="the fixed budget: epochs over --train, every side")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--arch", default="cnn", help="resnet10/18/34/50 (small stem) or cnn")
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--grid", type=int, default=4, help="cnn only: output pooled to grid x grid cells")
    ap.add_argument("--recipe", action="append", metavar="NAME=JSON", help="an anycl recipe (repeatable)")
    ap.add_argument(
        "--sides", nargs="+", default=None, help="which of raw random lightly <recipe names> (default: all)"
    )
    ap.add_argument("--no-linear", action="store_true", help="kNN only (faster dev runs)")
    ap.add_argument(
        "--linear-seeds", type=int, default=None, help="linear probe for the first N seeds only (default: all)"
    )
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--threads", type=int, default=1, help="torch threads (every side)")
    ap.add_argument("--workers", type=int, default=0, help="DataLoader workers (every side)")
    ap.add_argument("--no-warmup", action="store_true", help="skip the untimed short run of each side")
    ap.add_argument("--out", default=None, help="markdown table (default benchmarks/results/image.md; none in --dev)")
    ap.add_argument("--jsonl", default=None, help="append one JSON line per result (default in --dev: image_dev.jsonl)")
    ap.add_argument("--note", default="", help="free text stored with the JSON lines")
    return ap


def main(argv=None, reader=None):
    args = build_parser().parse_args(argv)
    command = "PYTHONPATH=. python benchmarks/bench_image.py " + " ".join(argv if argv is not None else sys.argv[1:])
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    recipes = parse_recipes(args.recipe)
    sides = args.sides or [*FLOORS, *recipes]
    unknown = [s for s in sides if s not in FLOORS and s not in recipes]
    if unknown:
        raise SystemExit(f"--sides {unknown}: not a floor {FLOORS} nor a --recipe name {sorted(recipes)}")
    out = args.out or (None if args.dev else str(RESULTS / "image.md"))
    jsonl = args.jsonl or (str(RESULTS / "image_dev.jsonl") if args.dev else None)

    cfg = train_config(args.batch_size, args.epochs, args.workers)
    xtr, ytr, xte, yte = load_fmnist(args.train, args.test, dev=args.dev, reader=reader)
    adapter = ImageAdapter(**cfg["adapter"])
    k, t, linear = 20, 0.1, not args.no_linear

    grid = args.grid if args.arch == "cnn" else None  # a ResNet has no grid

    def backbone(seed):
        return new_backbone(seed, args.arch, args.width, grid=grid)

    dim = backbone(0).embedding_dim
    arch_text = f"{args.arch} at width {args.width}" + (f", grid {grid}" if grid else "")
    rows = {s: [] for s in sides}
    speed = {s: [] for s in sides if s not in ("raw", "random")}
    seconds = {s: [] for s in speed}

    def record(side, seed, res, secs=None, last=None):
        rows[side].append(res)
        extra = ""
        if secs is not None:
            speed[side].append(len(xtr) * args.epochs / secs)
            seconds[side].append(secs)
            extra = f" train {secs:.1f}s ({speed[side][-1]:.1f} img/s) last loss {last:.3f}"
        print(f"seed {seed} {side}: {res}{extra}", flush=True)
        if jsonl:
            line = {
                "date": f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M}",
                "split": "dev" if args.dev else "test",
                "train": len(xtr),
                "eval": len(xte),
                "arch": args.arch,
                "width": args.width,
                "grid": grid,
                "dim": dim,
                "epochs": args.epochs,
                "batch_size": args.batch_size,
                "threads": args.threads,
                "seed": seed,
                "side": side,
                "recipe": recipes.get(side),
                **res,
                "train_s": None if secs is None else round(secs, 1),
                "last_loss": last,
                "note": args.note,
                "command": command,
            }
            with open(jsonl, "a") as f:
                f.write(json.dumps(line) + "\n")

    if "raw" in sides:
        raw_tr = F.normalize(torch.tensor(np.stack(xtr), dtype=torch.float32).flatten(1), dim=1)
        raw_te = F.normalize(torch.tensor(np.stack(xte), dtype=torch.float32).flatten(1), dim=1)
        record("raw", None, probes(raw_tr, ytr, raw_te, yte, k, t, linear))
    trained = [s for s in sides if s in speed]
    if trained and not args.no_warmup:  # one untimed short run of each side (lazy initialisation, caches)
        warm = dict(cfg, epochs=1)
        for side in trained:
            if side == "lightly":
                train_lightly(xtr[: 2 * args.batch_size], backbone(99), dim, warm, 99)
            else:
                train_anycl(xtr[: 2 * args.batch_size], backbone(99), warm, 99, recipes[side])
    for i, seed in enumerate(args.seeds):
        lin = linear and (args.linear_seeds is None or i < args.linear_seeds)
        if "random" in sides:
            enc = backbone(seed)
            feats = features_plain(enc, xtr, adapter), features_plain(enc, xte, adapter)
            record("random", seed, probes(feats[0], ytr, feats[1], yte, k, t, lin))
        for side in trained if i % 2 == 0 else trained[::-1]:
            if side == "lightly":
                bb, s, last = train_lightly(xtr, backbone(seed), dim, cfg, seed)
                feats = features_plain(bb, xtr, adapter), features_plain(bb, xte, adapter)
            else:
                model, s, last = train_anycl(xtr, backbone(seed), cfg, seed, recipes[side])
                feats = model.encode(xtr, batch_size=512), model.encode(xte, batch_size=512)
            record(side, seed, probes(feats[0], ytr, feats[1], yte, k, t, lin), s, last)
    total = time.perf_counter() - started
    if out:
        write_markdown(out, args, command, total, rows, speed, recipes, arch_text, dim, cfg, (len(xtr), len(xte)))
    return rows


def write_markdown(out, args, command, total, rows, speed, recipes, arch_text, dim, cfg, sizes):
    lines = [
        "# Image benchmark: self-supervised pretraining on Fashion-MNIST, anycl vs lightly",
        "",
        f"Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC. Machine: {platform.machine()}, "
        f"{os.cpu_count()} CPU cores, torch threads {args.threads}, DataLoader workers "
        f"{args.workers}, torch {torch.__version__}. Whole run: {total / 60:.1f} min.",
        "",
        f"Data: Fashion-MNIST (/usr/share/datasets/fashion-mnist), a fixed random subset of {sizes[0]} training "
        f"images (pretraining without labels; the probes are fitted on them with labels) and {sizes[1]} "
        f"{'held-out training' if args.dev else 'test'} images (scored). Backbone: {arch_text} ({dim}-d "
        f"features), 1 input channel, the same initial weights on every side. Budget: {args.epochs} epochs "
        f"over the {sizes[0]} images for every trained side. Shared settings: batch {args.batch_size}, AdamW lr "
        f"{cfg['lr']} wd {cfg['weight_decay']}, 10 % warm-up then cosine, temperature {cfg['temperature']}, "
        f"augmentations: preset 'small' at 28 px (crop scale 0.2–1, flip, jitter p 0.8). Seeds {args.seeds}. "
        f"Probes on frozen, L2-normalised backbone features: kNN (k = 20, votes weighted exp(cos/0.1)) and "
        f"logistic regression (standardised features).",
        "",
        "anycl recipes (overrides of the shared settings):",
        "",
        *[f"- `{name}`: `{json.dumps(r)}`" for name, r in recipes.items() if name in rows],
        "",
        "| method | kNN accuracy (%) | linear probe (%) | train images/s |",
        "|---|---|---|---|",
    ]
    for side, res in rows.items():
        ips = f"{statistics.mean(speed[side]):.1f}" if speed.get(side) else "–"
        name = NAMES.get(side, f"anycl `{side}`")
        lines.append(
            f"| {name} | {fmt([r['knn'] for r in res])} | {fmt([r['linear'] for r in res if 'linear' in r])} | {ips} |"
        )
    lines += [
        "",
        "Accuracies: mean ± sample standard deviation over seeds (raw pixels: deterministic, one value). "
        "images/s: training images (each giving two views, more with `views`/`local_views`) per second of "
        "training wall time; for anycl this is the whole `fit` call (set-up, validation, sampler planning "
        "included)."
        + (
            f" Linear probe: the first {args.linear_seeds} seed(s) only (`--linear-seeds`)."
            if args.linear_seeds is not None and not args.no_linear
            else ""
        ),
        "",
        "Command:",
        "",
        "```",
        command,
        "```",
    ]
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
