"""Distillation from a teacher (issue 30 item 2) on Fashion-MNIST: a small student distilled from a stronger
teacher that anycl trains itself, against the same student trained by SimCLR from scratch, at the same student
budget (epochs, batch, lr, seeds).

- teacher: anycl's ``cnn`` at ``--teacher-width`` (default 32, grid 4), SimCLR (``anycl.fit`` defaults with the
  shared settings) for ``--teacher-epochs`` (default 2× the student's) on the same unlabelled images; one
  teacher (seed 100) for every student.
- students: the ``cnn`` at ``--width`` (default 8, grid 4), the same initial weights per seed on every side,
  ``--epochs`` over the images:
  ``simclr`` (from scratch), ``+distill`` (SimCLR + distillation, ``teacher=``, ``distill_weight`` 1) and
  ``distill`` (``loss="distill"``, distillation alone).

Data (``--data``): scikit-learn's digits (default; 1797 8 × 8 images, a fixed random split) or Fashion-MNIST (its
Debian package, ``dataset-fashion-mnist``). Evaluation: the frozen backbone's L2-normalised features
(``encode``), weighted kNN (k = 20, T = 0.1), fitted on the ``--train`` labelled training images and scored on
``--test`` other images.

Run: ``PYTHONPATH=. python benchmarks/bench_distill.py`` (writes benchmarks/results/distill.md).
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import realdata  # noqa: E402
from idle import idle_line  # noqa: E402

import anycl  # noqa: E402
from anycl.evaluation import knn_accuracy  # noqa: E402

ADAPTER = {"preset": "small", "size": 28, "mode": "L"}


def load_data(name: str, n_train: int, n_test: int):
    """(train images, labels, test images, labels): Fashion-MNIST (its Debian package) or scikit-learn's digits
    (8 × 8, upsampled to 16 px by the adapter; a fixed random split of its 1797 images)."""
    rng = np.random.default_rng(0)
    if name == "fashion":
        xa, ya = realdata.fashion_mnist("train")
        xb, yb = realdata.fashion_mnist("test")
        tr, te = rng.choice(len(xa), n_train, replace=False), rng.choice(len(xb), n_test, replace=False)
        return list(xa[tr]), ya[tr], list(xb[te]), yb[te]
    from sklearn.datasets import load_digits

    d = load_digits()
    x = np.clip(d.images * 16, 0, 255).astype(np.uint8)
    order = rng.permutation(len(x))
    tr, te = order[:n_train], order[n_train : n_train + n_test]
    ADAPTER["size"] = 16
    return list(x[tr]), d.target[tr], list(x[te]), d.target[te]


def load_line() -> str:
    """The idle-check's line, from ../shared/tools beside the checkout or the workplace's shared/tools."""
    import idle

    for path in (idle.IDLE_CHECK, ROOT.parents[1] / "shared" / "tools" / "idle-check"):
        if path.exists():
            idle.IDLE_CHECK = path
            break
    return idle_line("60")


DATA_NAMES = {"digits": "scikit-learn digits (8 × 8 px, upsampled to 16)", "fashion": "Fashion-MNIST"}


def fit(images, width, epochs, seed, args, **extra):
    torch.manual_seed(seed)
    t0 = time.perf_counter()
    model = anycl.fit(
        images,
        modality="image",
        adapter_options=ADAPTER,
        encoder_options={"arch": "cnn", "width": width, "grid": 4},
        head="mlp",
        batch_size=args.batch_size,
        epochs=epochs,
        lr=args.lr,
        weight_decay=1e-4,
        warmup_ratio=0.1,
        seed=seed,
        progress=False,
        **({"temperature": 0.2} if extra.get("loss") != "distill" else {}),  # distill alone has none
        **extra,
    )
    return model, time.perf_counter() - t0


def random_init(width, seed):
    """The student as ``fit`` builds it for ``seed``, untrained (the floor)."""
    from accelerate.utils import set_seed

    from anycl.model.contrastive import build_model

    set_seed(seed)
    return build_model(
        {"anchor": "image", "positive": "image"},
        adapter_options=ADAPTER,
        encoder_options={"arch": "cnn", "width": width, "grid": 4},
        head="mlp",
    )


def knn(model, xtr, ytr, xte, yte) -> float:
    ftr, fte = model.encode(xtr, batch_size=512), model.encode(xte, batch_size=512)
    return 100 * knn_accuracy(ftr, list(ytr), fte, list(yte), k=20, temperature=0.1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", choices=("digits", "fashion"), default="digits")
    p.add_argument("--train", type=int, default=1000)
    p.add_argument("--test", type=int, default=797)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--teacher-epochs", type=int, default=None)
    p.add_argument("--width", type=int, default=8)
    p.add_argument("--teacher-width", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "distill.md"))
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    teacher_epochs = args.teacher_epochs or 2 * args.epochs
    started = datetime.datetime.now(datetime.timezone.utc)
    load_before = load_line()
    xtr, ytr, xte, yte = load_data(args.data, args.train, args.test)

    teacher, t_s = fit(xtr, args.teacher_width, teacher_epochs, 100, args)
    teacher_knn = knn(teacher, xtr, ytr, xte, yte)
    print(f"teacher: kNN {teacher_knn:.2f} ({t_s:.0f} s)", flush=True)
    sides = {
        "simclr (from scratch)": {},
        "simclr + distill (distill_weight 1)": {"teacher": teacher},
        "distill alone (loss='distill')": {"teacher": teacher, "loss": "distill"},
    }
    scores = {name: [] for name in ["random-init student", *sides]}
    for seed in args.seeds:
        scores["random-init student"].append(knn(random_init(args.width, seed), xtr, ytr, xte, yte))
        for name, extra in sides.items():
            model, s = fit(xtr, args.width, args.epochs, seed, args, **extra)
            scores[name].append(knn(model, xtr, ytr, xte, yte))
            print(f"seed {seed} {name}: kNN {scores[name][-1]:.2f} ({s:.0f} s)", flush=True)
    minutes = (datetime.datetime.now(datetime.timezone.utc) - started).total_seconds() / 60
    base = statistics.mean(scores["simclr (from scratch)"])
    lines = [
        f"# Distillation from a teacher (issue 30 item 2): {DATA_NAMES[args.data]}, kNN accuracy",
        "",
        f"Date: {started:%Y-%m-%d %H:%M} UTC. Whole run: {minutes:.1f} min (no speed claims: other workers share the "
        "2-core machine).",
        f"Load before the run: `{load_before}`",
        "",
        f"Data: {DATA_NAMES[args.data]}, a fixed random subset of {args.train} training images (pretraining without "
        f"labels; kNN fitted on them with labels) and {args.test} other images (scored). Students: anycl's `cnn` at width "
        f"{args.width}, grid 4, {args.epochs} epochs, batch {args.batch_size}, AdamW lr {args.lr:g}, "
        "temperature 0.2 (contrastive sides), "
        f"preset 'small' at {ADAPTER['size']} px, grey; the same initial weights per seed on every side. Teacher: "
        f"the `cnn` at width {args.teacher_width}, SimCLR for {teacher_epochs} epochs on the same images (seed 100), "
        f"trained by anycl in this run. kNN: k = 20, votes weighted exp(cos/0.1), on L2-normalised backbone features. Seeds "
        f"{args.seeds}; mean ± sample standard deviation.",
        "",
        "| student | kNN accuracy (%) | per seed | vs SimCLR |",
        "|---|---|---|---|",
        f"| teacher (width {args.teacher_width}, {teacher_epochs} epochs) | {teacher_knn:.2f} | – | – |",
    ]
    for name, vals in scores.items():
        sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
        diff = statistics.mean(vals) - base
        lines.append(
            f"| {name} | {statistics.mean(vals):.2f} ± {sd:.2f} | {' / '.join(f'{v:.2f}' for v in vals)} | "
            f"{diff:+.2f} |"
        )
    lines += [
        "",
        "Command:",
        "",
        "```",
        "PYTHONPATH=. python benchmarks/bench_distill.py " + " ".join(sys.argv[1:]),
        "```",
    ]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
