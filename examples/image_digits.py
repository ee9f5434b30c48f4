"""Pretrain a small image encoder on scikit-learn's bundled 8×8 digits without labels, then probe it.

Runs offline in about a minute on a laptop CPU:

    PYTHONPATH=. python examples/image_digits.py
"""

import numpy as np
import torch
from sklearn.datasets import load_digits

import anycl
from anycl.evaluation import knn_accuracy, linear_probe_accuracy

digits = load_digits()
images = [(img * 255 / 16).astype(np.uint8) for img in digits.images]  # 8×8 greyscale arrays
labels = digits.target.tolist()
train, test = slice(0, 1400), slice(1400, None)

model = anycl.fit(
    images[train],  # a list of arrays: no labels used for pretraining
    modality="image",
    adapter_options={"preset": "small", "size": 16, "mode": "L"},  # upsampled to 16 px (said once)
    encoder_options={"arch": "resnet10", "width": 8},
    batch_size=128,
    epochs=5,
    lr=2e-3,
    seed=0,
    progress=False,
)
tr, te = model.encode(images[train]), model.encode(images[test])
print(f"kNN accuracy:          {knn_accuracy(tr, labels[train], te, labels[test], k=20, temperature=0.1):.3f}")
print(f"linear-probe accuracy: {linear_probe_accuracy(tr, labels[train], te, labels[test]):.3f}")

model.save("digits-simclr", overwrite=True)
again = anycl.load("digits-simclr")
assert torch.allclose(again.encode(images[:4]), model.encode(images[:4]), atol=1e-5)
