"""Issue 30's new-user check: `anycl.fit("photos/", modality="image")` with every default, on 250 images of 28 px
(scikit-learn digits 0-249, upscaled from 8 px): which preset, how many steps, how long, the peak memory.

    python benchmarks/new_user_images.py [folder]   # the folder is made first when missing
"""

import logging
import os
import resource
import sys
import time

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits

import anycl


def make_photos(root: str, n: int = 250) -> None:
    os.makedirs(root)
    digits = load_digits()
    for i in range(n):
        img = Image.fromarray((digits.images[i] * 16).astype(np.uint8)).resize((28, 28), Image.BILINEAR)
        img.save(f"{root}/{i:03d}.png")


def main() -> None:
    root = sys.argv[1] if len(sys.argv) > 1 else "new-user-photos"
    if not os.path.isdir(root):
        make_photos(root)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    steps = []
    started = time.time()
    anycl.fit(root, modality="image", progress=False, log_with=None, callbacks=[lambda t, s, logs: steps.append(s)])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"steps {len(steps)}; {time.time() - started:.0f} s; peak RSS {peak:.2f} GB")


if __name__ == "__main__":
    main()
