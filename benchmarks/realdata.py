"""Loaders for the real data sets the benchmarks use (installed from Debian packages).

- Fashion-MNIST: ``apt-get install dataset-fashion-mnist`` → /usr/share/datasets/fashion-mnist (IDX).
- Sonic Pi samples: ``apt-get install sonic-pi-samples`` → /usr/share/sonic-pi/samples (CC0 FLAC),
  with a README.md that lists every sample under a section heading.
"""

from __future__ import annotations

import gzip
import re
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
SONIC_PI_DIR = Path("/usr/share/sonic-pi/samples")
FASHION_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]


def _need(path: Path, package: str) -> None:
    if not path.exists():
        raise SystemExit(f"{path} is missing: install it with `apt-get install -y {package}`")


def fashion_mnist(split: str = "train") -> Tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, 28, 28), labels int (N,)) of the ``train`` or ``test`` split."""
    _need(FASHION_DIR, "dataset-fashion-mnist")
    prefix = "train" if split == "train" else "t10k"
    with gzip.open(FASHION_DIR / f"{prefix}-images-idx3-ubyte.gz") as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    with gzip.open(FASHION_DIR / f"{prefix}-labels-idx1-ubyte.gz") as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8).astype(np.int64)
    return images, labels


def sonic_pi_sections() -> Dict[str, str]:
    """Sample name → the README section it is listed under (e.g. ``drum_heavy_kick`` → ``Drums``)."""
    _need(SONIC_PI_DIR, "sonic-pi-samples")
    out, section = {}, None
    for line in (SONIC_PI_DIR / "README.md").read_text().splitlines():
        if line.startswith("#") and not line.startswith("# Samples"):
            section = line.lstrip("#").strip()
        m = re.match(r"\* `:(\w+)`", line)
        if m and section:
            out[m.group(1)] = section
    return out


def sonic_pi_clips() -> List[Tuple[str, str, str]]:
    """(path, sample name, category prefix) for every FLAC clip."""
    _need(SONIC_PI_DIR, "sonic-pi-samples")
    return [(str(p), p.stem, p.stem.split("_")[0]) for p in sorted(SONIC_PI_DIR.glob("*.flac"))]
