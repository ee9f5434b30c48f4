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

root = sys.argv[1] if len(sys.argv) > 1 else "new-user-photos"
if not os.path.isdir(root):
    os.makedirs(root)
    d = load_digits()
    for i in range(250):
        img = Image.fromarray((d.images[i] * 16).astype(np.uint8)).resize((28, 28), Image.BILINEAR)
        img.save(f"{root}/{i:03d}.png")
logging.basicConfig(level=logging.INFO, format="%(message)s")
import anycl

steps = []
t = time.time()
model = anycl.fit(
    root, modality="image", progress=False, log_with=None, callbacks=[lambda tr, s, logs: steps.append(s)]
)
print(
    f"steps {len(steps)}; {time.time() - t:.0f} s; peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GB"
)
