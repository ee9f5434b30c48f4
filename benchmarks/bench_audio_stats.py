"""Does an audio embedding that also holds each clip's log-mel statistics beat issue 29's floors? (round 6)

The protocol's worst target is speaker identity (``hedgewars-voices``): the linear probe against per-band log-mel
statistics + 0.05. Two measurements on the dev splits of ``bench_audio.py --dev`` (the same split, seeds, probes and
statistics floor), with the audio default:

``--mode concat``   an upper bound without retraining: the linear probe on the trained embedding and the clip's
                    statistics side by side (each standardised and L2-normalised, then concatenated and
                    normalised), against each alone; the random-init encoder likewise.
``--mode teacher``  training that keeps the statistics (a PASE-style worker): ``fit(..., teacher=StatsTeacher(),
                    distill_weight=W)``, contrastive + W · distillation towards each view's per-band mean and
                    standard deviation of its log-mels, standardised over the batch (``docs/audio.md``, Distilling
                    from a teacher: the projection is dropped at save, so the probe reads the student's encoder).

Prints one JSON line per seed. Usage::

    PYTHONPATH=. python benchmarks/bench_audio_stats.py --set hedgewars-voices --mode concat --seeds 0 1 2
    PYTHONPATH=. python benchmarks/bench_audio_stats.py --set hedgewars-voices --mode teacher --weight 1 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import audiosets  # noqa: E402
import bench_audio as B  # noqa: E402

import anycl  # noqa: E402


class StatsTeacher(nn.Module):
    """(N, 1, n_mels, T) log-mels → (N, 2·n_mels): each band's mean and standard deviation over time, standardised
    over the batch (the raw statistics of any two clips point nearly the same way: their cosine says little)."""

    embedding_dim = 128

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = B.band_statistics(x.flatten(1, -2))  # from (N, n_mels, T)
        return (f - f.mean(0)) / f.std(0).clamp_min(1e-5)


def side_by_side(a, b):
    return torch.nn.functional.normalize(torch.cat([a, b], 1), dim=1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--set", required=True, choices=sorted(audiosets.SETS))
    ap.add_argument("--mode", required=True, choices=["concat", "teacher"])
    ap.add_argument("--weight", type=float, default=1.0, help="--mode teacher: distill_weight")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--test-fraction", type=float, default=0.4)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    from accelerate.utils import set_seed

    ds = audiosets.SETS[a.set]()
    plain = anycl.adapters.get("audio", augment=False)  # the statistics floor's front end, as bench_audio's
    for seed in a.seeds:
        tr_s, tr_y, te_s, te_y = B.dev_split(ds, seed, a.test_fraction)
        st_tr, st_te = B.standardise(B.logmel_stats(plain, tr_s), B.logmel_stats(plain, te_s))
        out = {"set": a.set, "mode": a.mode, "seed": seed, "stats": B.probes(st_tr, tr_y, st_te, te_y, seed)["linear"]}
        options = {}
        if a.mode == "teacher":
            options, out["weight"] = {"teacher": StatsTeacher(), "distill_weight": a.weight}, a.weight
        model = anycl.fit(tr_s, modality="audio", seed=seed, progress=False, **options)
        models = {"trained": model}
        if a.mode == "concat":
            set_seed(seed)
            sides = {"anchor": "audio", "positive": "audio", "negative": "audio"}
            models["random"] = anycl.api.build_model(sides, encoder_options={"pretrained": False}).eval()
        for who, m in models.items():
            e_tr, e_te = B.standardise(m.encode(tr_s), m.encode(te_s))
            out[who] = B.probes(e_tr, tr_y, e_te, te_y, seed)["linear"]
            if a.mode == "concat":
                out[who + "+stats"] = B.probes(side_by_side(e_tr, st_tr), tr_y, side_by_side(e_te, st_te), te_y, seed)[
                    "linear"
                ]
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
