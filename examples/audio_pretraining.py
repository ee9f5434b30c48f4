"""Pretrain an audio encoder without labels, then classify clips with a linear probe. Runs offline.

Uses Debian's sonic-pi samples (/usr/share/sonic-pi/samples, ``apt-get install sonic-pi-samples``)
when they are installed; otherwise it synthesises a small folder of clips (tones, chirps, noise
bursts) so the example always runs. The run length is fit's own default for clips without labels (1,000 optimiser
steps from the shipped starting weights, docs/audio.md); ``--epochs N`` sets it instead. About three minutes on a
two-core CPU.

    PYTHONPATH=. python examples/audio_pretraining.py [--epochs N]
"""

import argparse
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

import anycl
from anycl.evaluation import ProbeEvaluator

SONIC_PI = Path("/usr/share/sonic-pi/samples")


def synthesise(folder: Path, per_class: int = 12, sr: int = 16000):
    """Three kinds of clip, 0.5–1.5 s long: pure tones, rising chirps, noise bursts."""
    rng = np.random.default_rng(0)
    for i in range(per_class):
        n = int(sr * rng.uniform(0.5, 1.5))
        t = np.arange(n) / sr
        f = rng.uniform(150, 900)
        envelope = np.exp(-t * rng.uniform(1, 4))
        clips = {
            "tone": np.sin(2 * np.pi * f * t),
            "chirp": np.sin(2 * np.pi * (f * t + rng.uniform(400, 1200) * t**2)),
            "noise": rng.standard_normal(n) * 0.5,
        }
        for name, wave in clips.items():
            sf.write(folder / f"{name}_{i:02d}.wav", (0.5 * envelope * wave).astype(np.float32), sr)
    return sorted(folder.glob("*.wav"))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--epochs", type=int, default=None, help="default: fit's own (its step budget)")
    args = p.parse_args()

    tmp = tempfile.TemporaryDirectory()
    files = sorted(SONIC_PI.glob("*.flac")) if SONIC_PI.is_dir() else []
    if not files:
        files = synthesise(Path(tmp.name))
    labels = [f.name.split("_", 1)[0] for f in files]  # category = file-name prefix
    test = [str(f) for i, f in enumerate(files) if i % 3 == 0]
    train = [str(f) for i, f in enumerate(files) if i % 3 != 0]
    test_y = [y for i, y in enumerate(labels) if i % 3 == 0]
    train_y = [y for i, y in enumerate(labels) if i % 3 != 0]
    print(f"{len(files)} clips, {len(set(labels))} categories; pretraining on {len(train)} without labels")

    probe = ProbeEvaluator(train, train_y, test, test_y, k=5)
    length = {"epochs": args.epochs} if args.epochs else {}  # none: fit's step budget
    model = anycl.fit(train, modality="audio", eval_dataset=probe, output_dir=str(Path(tmp.name) / "run"), **length)
    for rec in model.trainer.eval_history:
        print(
            f"after step {rec['step']}: linear probe {rec['linear_probe_accuracy']:.3f}, "
            f"kNN {rec['knn@5_accuracy']:.3f}"
        )

    emb = model.encode(test[:4])  # deterministic: the same clip always gives the same embedding
    print("embeddings:", tuple(emb.shape))
    again = anycl.load(str(Path(tmp.name) / "run"))
    print("reloaded model gives the same embeddings:", bool((again.encode(test[:4]) - emb).abs().max() < 1e-5))


if __name__ == "__main__":
    main()
