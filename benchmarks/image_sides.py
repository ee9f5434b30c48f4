"""The two training sides of benchmarks/bench_image.py and the frozen-feature extraction.

- :func:`train_lightly`: the loop from lightly's SimCLR docs (per-image torchvision v2 views,
  ``SimCLRProjectionHead``, ``NTXentLoss``), written as a plain torch loop; always plain SimCLR.
- :func:`train_anycl`: ``anycl.fit(images, modality="image", encoder=backbone, ...)`` with an optional
  *recipe* (a dict of overrides: ``adapter`` options, ``loss``, ``loss_options``, ``temperature``, ``lr``,
  ``batch_size``, ``weight_decay``, ``views``, ``local_views``, ``head``); an empty recipe is SimCLR with
  anycl's own loss (symmetric InfoNCE) and the shared settings of ``cfg``. ``{"defaults": true}``: anycl's
  own defaults for images instead of the shared settings (only the adapter options, the epochs and the
  seed are given), i.e. what a user gets from ``fit(images, modality="image", adapter_options=...)``.
"""

from __future__ import annotations

import time
from typing import Any, Dict, Optional

import numpy as np
import torch
import torch.nn.functional as F

import anycl
from anycl.adapters.image import ImageAdapter
from anycl.errors import ConfigError
from anycl.training.trainer import warmup_cosine

RECIPE_KEYS = {
    "defaults",
    "adapter",
    "loss",
    "loss_options",
    "temperature",
    "lr",
    "batch_size",
    "weight_decay",
    "views",
    "local_views",
    "head",
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
def check_recipe(recipe: Dict[str, Any]) -> Dict[str, Any]:
    """The recipe as given; unknown keys raise ConfigError (a typo must not silently run the default)."""
    if not isinstance(recipe, dict):
        raise ConfigError(f"a recipe is a JSON object, got {type(recipe).__name__}")
    unknown = sorted(set(recipe) - RECIPE_KEYS)
    if unknown:
        raise ConfigError(f"unknown recipe key(s) {unknown}; valid: {sorted(RECIPE_KEYS)}")
    return recipe


def fit_kwargs(cfg: Dict[str, Any], recipe: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """The keyword arguments of ``anycl.fit`` for the shared settings ``cfg`` with ``recipe`` applied."""
    r = check_recipe(dict(recipe or {}))
    if r.get("defaults"):
        if set(r) - {"defaults", "adapter"}:
            raise ConfigError(f"a 'defaults' recipe takes only 'adapter' besides, got {sorted(r)}")
        kw0: Dict[str, Any] = {
            "adapter_options": {**cfg["adapter"], **r.get("adapter", {})},
            "epochs": cfg["epochs"],
            "progress": False,
        }
        if cfg.get("workers") is not None:
            kw0["num_workers"] = cfg["workers"]
        return kw0
    kw: Dict[str, Any] = {
        "adapter_options": {**cfg["adapter"], **r.get("adapter", {})},
        "head": r.get("head", "mlp"),
        "batch_size": r.get("batch_size", cfg["batch_size"]),
        "epochs": cfg["epochs"],  # the fixed budget: a recipe cannot change it
        "lr": r.get("lr", cfg["lr"]),
        "weight_decay": r.get("weight_decay", cfg["weight_decay"]),
        "warmup_ratio": cfg["warmup_ratio"],
        "max_grad_norm": None,
        "progress": False,
    }
    multiview = "views" in r or "local_views" in r
    for key in ("views", "local_views"):
        if key in r:
            kw[key] = r[key]
    if "loss" in r:
        kw["loss"] = r["loss"]
    plain_infonce = r.get("loss", "infonce") == "infonce" and not multiview
    if plain_infonce or "temperature" in r:
        kw["temperature"] = r.get("temperature", cfg["temperature"])
    if "loss_options" in r:
        kw["loss_options"] = r["loss_options"]
    elif plain_infonce:
        kw["loss_options"] = {"symmetric": True}
    if cfg.get("workers") is not None:  # None: anycl's own default
        kw["num_workers"] = cfg["workers"]
    return kw


def train_anycl(images, backbone, cfg, seed, recipe: Optional[Dict[str, Any]] = None):
    t0 = time.perf_counter()
    model = anycl.fit(images, modality="image", encoder=backbone, seed=seed, **fit_kwargs(cfg, recipe))
    seconds = time.perf_counter() - t0
    return model, seconds, model.trainer.history[-1]["loss"]
