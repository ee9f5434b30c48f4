"""Multi-crop DINO on scikit-learn's bundled 8×8 digits, watched by an online kNN probe.

Two global views and four local crops per image, a momentum teacher with centring and sharpening, and
a kNN probe on held-out labelled digits every 20 steps (also in TensorBoard under runs/digits-dino/logs).
Runs offline on a laptop CPU:

    PYTHONPATH=. python examples/multiview_dino.py
"""

import numpy as np
from sklearn.datasets import load_digits

import anycl

digits = load_digits()
images = [(img * 255 / 16).astype(np.uint8) for img in digits.images]  # 8×8 greyscale arrays
labels = digits.target.tolist()
probe_rows = {
    "train": [{"anchor": x, "label": y} for x, y in zip(images[1000:1400], labels[1000:1400])],
    "test": [{"anchor": x, "label": y} for x, y in zip(images[1400:], labels[1400:])],
}

model = anycl.fit(
    images[:1000],  # no labels used for pretraining
    modality="image",
    loss="dino",
    views=2,
    local_views=4,
    loss_options={"out_dim": 256, "momentum": 0.9},  # a short run: a faster-moving teacher than 0.996
    adapter_options={"preset": "small", "size": 16, "mode": "L", "local_size": 8},
    encoder_options={"arch": "resnet10", "width": 8},
    eval_dataset=probe_rows,
    probe={"k": 20},
    eval_every=20,
    batch_size=128,
    epochs=5,
    lr=2e-3,
    seed=0,
    progress=False,
    output_dir="runs/digits-dino",
    overwrite=True,
)
for row in model.trainer.eval_history:
    print(f"step {row['step']:3d}: kNN accuracy {row['knn@20_accuracy']:.3f}")
