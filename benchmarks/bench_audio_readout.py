"""The audio CNN's two readouts side by side, interleaved: training and encoding clips/s of the default
(``readout="embedding"``) and of ``encoder_options={"readout": "layers"}`` (issue 29's round 14).

Each round fits both, in alternating order, on the same clips (sonic-pi's samples, ``benchmarks/audiosets.py``)
with the user's call, ``anycl.fit(clips, modality="audio", max_steps=N, encoder_options=...)`` from the shipped
weights, then encodes every clip with the default 3 windows a clip. Training clips/s is the training loop's own
(``trainer.history``: anchors per second, set-up and checks left out); encoding clips/s is ``model.encode``'s wall
clock. The ratios are per round (layers / embedding), reported as their median. Each fit decodes the clips afresh
(the decoded-clip cache is its own adapter's); only the system's file cache carries over, and the order alternates.

    PYTHONPATH=. python benchmarks/bench_audio_readout.py [--steps 40] [--rounds 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

import anycl
from anycl.adapters.audio_encoder import READOUTS

sys.path.insert(0, str(Path(__file__).resolve().parent))
import audiosets  # noqa: E402
from idle import idle_line, load_line  # noqa: E402


def one(clips, readout: str, steps: int, seed: int) -> dict:
    """One fit and one encode of every clip with ``readout``: their clips/s."""
    model = anycl.fit(
        clips,
        modality="audio",
        max_steps=steps,
        seed=seed,
        progress=False,
        encoder_options={"readout": readout},
    )
    train = statistics.mean(h["items_per_s"] for h in model.trainer.history)
    t0 = time.perf_counter()
    model.encode(clips)
    return {"train": train, "encode": len(clips) / (time.perf_counter() - t0)}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    print("before:", idle_line())
    clips = audiosets.SETS["sonic-pi"]().files
    rows = {r: [] for r in READOUTS}
    for k in range(args.rounds):
        order = READOUTS if k % 2 == 0 else READOUTS[::-1]
        for readout in order:
            rows[readout].append(one(clips, readout, args.steps, seed=k))
            print(
                f"round {k}, {readout}: train {rows[readout][-1]['train']:.1f} clips/s, "
                f"encode {rows[readout][-1]['encode']:.1f} clips/s",
                flush=True,
            )
    for what in ("train", "encode"):
        ratios = [b[what] / a[what] for a, b in zip(rows["embedding"], rows["layers"])]
        print(
            f"{what}: layers / embedding clips/s, per round {[round(r, 3) for r in ratios]}, "
            f"median {statistics.median(ratios):.3f}"
        )
    print("after:", load_line())


if __name__ == "__main__":
    main()
