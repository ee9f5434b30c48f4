"""SimCLR pretraining on Fashion-MNIST: anycl vs lightly, side by side, plus raw-pixel and random-init floors.

Both sides train the same backbone (``anycl.adapters.image_encoders.resnet``: a torchvision ResNet
with a small-image stem, at a reduced width for CPU), from the same initial weights, with the same
augmentation recipe (the ``small`` preset: random resized crop scale 0.2–1, flip, colour jitter
0.4/0.4 with p = 0.8 — brightness and contrast only, the images are grey — no blur), batch size,
epochs, AdamW + warm-up/cosine schedule and seed. What differs is what each library does:

- anycl: ``anycl.fit(images, modality="image", ...)`` — its data path (crop/flip per image, colour ops
  batched in ``prepare``), its MLP head and its InfoNCE (symmetric, B − 1 negatives per direction).
- lightly: the loop from lightly's SimCLR docs — a torch ``Dataset`` giving two views per image with
  per-image ``torchvision.transforms.v2``, ``SimCLRProjectionHead`` and ``NTXentLoss`` (2B − 2
  negatives), written as a plain torch loop.

Pretraining uses the training images without labels. Evaluation (frozen backbone features,
L2-normalised): weighted kNN (k = 20, T = 0.1) and a logistic-regression linear probe, both fitted on
labelled training images and scored on the test set. The anycl and lightly runs alternate which goes
first per seed so machine load hits both alike.

Run: ``PYTHONPATH=. python benchmarks/bench_image.py`` (options: --help). Writes
``benchmarks/results/image.md``.
"""

from __future__ import annotations

import argparse
import datetime
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

import anycl  # noqa: E402
from anycl.adapters.image import ImageAdapter  # noqa: E402
from anycl.adapters.image_encoders import resnet  # noqa: E402
from anycl.evaluation import knn_accuracy, linear_probe_accuracy  # noqa: E402
from anycl.training import warmup_cosine  # noqa: E402


def load_fmnist(n_train: int, n_test: int, seed: int = 0):
    """A fixed random subset of each split (benchmarks/realdata.py reads the Debian package's IDX files)."""
    xtr, ytr = realdata.fashion_mnist("train")
    xte, yte = realdata.fashion_mnist("test")
    rng = np.random.default_rng(seed)
    i = np.sort(rng.permutation(len(xtr))[:n_train])
    j = np.sort(rng.permutation(len(xte))[:n_test])
    return list(xtr[i]), ytr[i].tolist(), list(xte[j]), yte[j].tolist()


def new_backbone(seed: int, arch: str = "resnet18", width: int = 64, small_stem: bool = True):
    """The backbone both sides train, seeded so that each side gets the same initial weights; 1 input channel.

    ``small_stem``: a 3×3 stride-1 first convolution and no max-pool (what anycl's default encoder uses for
    images of 64 px or less); else torchvision's 7×7 stride-2 convolution and max-pool."""
    torch.manual_seed(1000 + seed)
    return resnet(arch, small_stem=small_stem, width=width, in_channels=1)


def train_config(batch_size: int, epochs: int, workers) -> dict:
    """The training settings both sides share (preset 'small' at 28 px, grey; AdamW; warm-up + cosine)."""
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


# ---- lightly side -----------------------------------------------------------------------------------
class TwoViews(torch.utils.data.Dataset):
    """Two random views per image with per-image torchvision v2 transforms (lightly's usual recipe)."""

    def __init__(self, images, transform):
        self.images, self.transform = images, transform

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        x = torch.from_numpy(np.array(self.images[i])).unsqueeze(0)  # (1, 28, 28) uint8
        return self.transform(x), self.transform(x)


def lightly_transform(adapter: ImageAdapter):
    from torchvision.transforms import v2 as T

    from anycl.adapters.image_augment import train_transform

    # the same recipe, all ops per image, then to float and normalised (what lightly's transforms do)
    return T.Compose(
        [
            train_transform(adapter.aug, adapter.channels),
            T.ToDtype(torch.float32, scale=True),
            T.Normalize(adapter.mean, adapter.std),
        ]
    )


def train_lightly(images, backbone, dim, cfg, seed):
    from lightly.loss import NTXentLoss
    from lightly.models.modules import SimCLRProjectionHead

    t0 = time.perf_counter()  # the whole call, as for anycl's fit
    torch.manual_seed(seed)
    head = SimCLRProjectionHead(dim, dim, 128)
    model = torch.nn.Sequential(backbone, head)
    adapter = ImageAdapter(**cfg["adapter"])
    loader = torch.utils.data.DataLoader(
        TwoViews(images, lightly_transform(adapter)),
        batch_size=cfg["batch_size"],
        shuffle=True,
        drop_last=False,
        num_workers=cfg["workers"],
        generator=torch.Generator().manual_seed(seed),
    )
    criterion = NTXentLoss(temperature=cfg["temperature"])
    opt = torch.optim.AdamW(model.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    total = len(loader) * cfg["epochs"]
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(int(cfg["warmup_ratio"] * total), total))
    model.train()
    for _ in range(cfg["epochs"]):
        for x0, x1 in loader:
            z0, z1 = model(x0), model(x1)
            loss = criterion(z0, z1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    seconds = time.perf_counter() - t0
    backbone.eval()
    return backbone, seconds, loss.item()


@torch.no_grad()
def features_plain(backbone, images, adapter: ImageAdapter, batch_size=512):
    backbone.eval()
    out = []
    for s in range(0, len(images), batch_size):
        x = adapter.collate([adapter.eval_view(adapter.load(im)) for im in images[s : s + batch_size]])
        out.append(F.normalize(backbone(adapter.prepare(x, train=False)), dim=1))
    return torch.cat(out)


# ---- anycl side -------------------------------------------------------------------------------------
def train_anycl(images, backbone, cfg, seed):
    t0 = time.perf_counter()
    model = anycl.fit(
        images,
        modality="image",
        encoder=backbone,
        adapter_options=cfg["adapter"],
        head="mlp",
        batch_size=cfg["batch_size"],
        epochs=cfg["epochs"],
        lr=cfg["lr"],
        weight_decay=cfg["weight_decay"],
        warmup_ratio=cfg["warmup_ratio"],
        max_grad_norm=None,
        temperature=cfg["temperature"],
        loss_options={"symmetric": True},
        seed=seed,
        progress=False,
        # None: anycl's own default
        **({} if cfg.get("workers") is None else {"num_workers": cfg["workers"]}),
    )
    seconds = time.perf_counter() - t0
    return model, seconds, model.trainer.history[-1]["loss"]


# ---- evaluation -------------------------------------------------------------------------------------
def probes(tr, ytr, te, yte, k, t):
    return {
        "knn": knn_accuracy(tr, ytr, te, yte, k=k, temperature=t),
        "linear": linear_probe_accuracy(tr, ytr, te, yte, max_iter=1000),
    }


def fmt(values):
    if len(values) == 1:
        return f"{100 * values[0]:.1f}"
    return f"{100 * statistics.mean(values):.1f} ± {100 * (max(values) - min(values)) / 2:.1f}"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--train", type=int, default=3000, help="training images (pretraining and probe fitting)")
    ap.add_argument("--test", type=int, default=2000, help="test images scored by the probes")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--arch", default="resnet10")
    ap.add_argument("--width", type=int, default=8)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--threads", type=int, default=1, help="torch threads (both sides)")
    ap.add_argument("--workers", type=int, default=0, help="DataLoader workers (both sides)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "image.md"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    started = time.perf_counter()

    cfg = train_config(args.batch_size, args.epochs, args.workers)
    xtr, ytr, xte, yte = load_fmnist(args.train, args.test)
    adapter = ImageAdapter(**cfg["adapter"])
    k, t = 20, 0.1

    def backbone(seed):
        return new_backbone(seed, args.arch, args.width)

    rows = {"raw pixels": [], "random-init encoder": [], "lightly SimCLR": [], "anycl": []}
    speed = {"lightly SimCLR": [], "anycl": []}
    ratios = []
    raw_tr = F.normalize(torch.tensor(np.stack(xtr), dtype=torch.float32).flatten(1), dim=1)
    raw_te = F.normalize(torch.tensor(np.stack(xte), dtype=torch.float32).flatten(1), dim=1)
    rows["raw pixels"].append(probes(raw_tr, ytr, raw_te, yte, k, t))
    print("raw pixels", rows["raw pixels"][-1], flush=True)
    n_views = len(xtr) * args.epochs
    warm = dict(cfg, epochs=1)  # one untimed short run of each side first (lazy initialisation, caches)
    train_anycl(xtr[: 2 * args.batch_size], backbone(99), warm, 99)
    train_lightly(xtr[: 2 * args.batch_size], backbone(99), 8 * args.width, warm, 99)
    for i, seed in enumerate(args.seeds):
        enc = backbone(seed)
        rows["random-init encoder"].append(
            probes(features_plain(enc, xtr, adapter), ytr, features_plain(enc, xte, adapter), yte, k, t)
        )
        print(f"seed {seed} random init", rows["random-init encoder"][-1], flush=True)
        order = ["anycl", "lightly SimCLR"] if i % 2 == 0 else ["lightly SimCLR", "anycl"]
        secs = {}
        for side in order:
            if side == "anycl":
                model, s, last = train_anycl(xtr, backbone(seed), cfg, seed)
                res = probes(model.encode(xtr, batch_size=512), ytr, model.encode(xte, batch_size=512), yte, k, t)
            else:
                bb, s, last = train_lightly(xtr, backbone(seed), 8 * args.width, cfg, seed)
                res = probes(features_plain(bb, xtr, adapter), ytr, features_plain(bb, xte, adapter), yte, k, t)
            secs[side] = s
            rows[side].append(res)
            speed[side].append(n_views / s)
            print(
                f"seed {seed} {side}: {res} train {s:.1f}s ({n_views / s:.1f} img/s) last loss {last:.3f}", flush=True
            )
        ratios.append(secs["lightly SimCLR"] / secs["anycl"])
    total = time.perf_counter() - started

    lines = [
        "# Image benchmark: SimCLR on Fashion-MNIST, anycl vs lightly",
        "",
        f"Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC. Machine: {platform.machine()}, "
        f"{os.cpu_count()} CPU cores, torch threads {args.threads}, DataLoader workers "
        f"{args.workers}, torch {torch.__version__}. Whole run: {total / 60:.1f} min.",
        "",
        f"Data: Fashion-MNIST (/usr/share/datasets/fashion-mnist), a fixed random subset of {len(xtr)} training "
        f"images (pretraining without labels; the probes are fitted on them with labels) and {len(xte)} test "
        f"images (scored). Backbone: {args.arch} at width {args.width} ({8 * args.width}-d features), small-image "
        f"stem, 1 input channel, the same initial weights on both sides. {args.epochs} epochs, batch "
        f"{args.batch_size}, AdamW lr {cfg['lr']} wd {cfg['weight_decay']}, 10 % warm-up then cosine, temperature "
        f"{cfg['temperature']}, augmentations: preset 'small' at 28 px (crop scale 0.2–1, flip, jitter p 0.8). "
        f"Seeds {args.seeds}. Probes on frozen, L2-normalised backbone features: kNN (k = {k}, votes weighted "
        f"exp(cos/{t})) and logistic regression (standardised features).",
        "",
        "| method | kNN accuracy (%) | linear probe (%) | train images/s |",
        "|---|---|---|---|",
    ]
    for name, res in rows.items():
        ips = f"{statistics.mean(speed[name]):.1f}" if name in speed else "–"
        lines.append(f"| {name} | {fmt([r['knn'] for r in res])} | {fmt([r['linear'] for r in res])} | {ips} |")
    lines += [
        "",
        "Accuracies: mean ± half the range over seeds (raw pixels: deterministic, one value). images/s: "
        "training images (each giving two views) per second of training wall time; for anycl this is the whole "
        "`fit` call (set-up, validation, sampler planning included).",
        "",
        f"Speed ratio anycl / lightly per seed (interleaved runs): {', '.join(f'{r:.2f}' for r in ratios)}; "
        f"median {statistics.median(ratios):.2f}x.",
        "",
        "Command:",
        "",
        "```",
        "PYTHONPATH=. python benchmarks/bench_image.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "```",
    ]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
