"""Audio clip pretraining on real recordings: the sets of ``benchmarks/audiosets.py``, ``--set``:

- ``sonic-pi`` (default; results/audio.md): Debian's sonic-pi samples (166 CC0 FLAC clips); the category
  of a clip is its file-name prefix before the first "_" (ambi, bass, bd, drum, elec, …), the split is
  stratified by category;
- ``asterisk`` (results/audio_asterisk.md): Debian's asterisk-core-sounds prompts in five languages,
  spoken-language identification, split by prompt file name (the same prompt never in train and test);
- ``espeak-words``, ``megaglest-sfx``, ``hedgewars-voices`` (``benchmarks/audiosets_protocol.py``): with
  sonic-pi, the sets of issue 29's dev protocol (results/audio_protocol.md), each split by groups.

The pretraining is ``anycl.fit``'s own default (its step budget, the adapter's 1 s window and centre crop)
unless ``--epochs``, ``--batch-size``, ``--lr``, ``--clip-seconds`` or ``--eval-crop`` say otherwise. The
result files written before issue 29 ran with the old defaults of this script: add ``--batch-size 64 --lr
0.001 --clip-seconds 1 --eval-crop windows`` to their recorded command to reproduce them.

For each seed: the set's split (``--test-fraction`` held out); the encoder is
pretrained on the training clips only, without labels (``anycl.fit(train_files, modality="audio")``);
then frozen embeddings are probed on the categories — a linear probe (standardised logistic
regression) and kNN (cosine, k=5) trained on the training clips, scored on the held-out clips.
Two floors are measured in the same run on the same split:

(a) log-mel statistics: per-band mean and std of the whole clip's log-mel (the adapter's features),
    standardised, with the same probes;
(b) the same encoder at random initialisation (same seed, same evaluation windows; ``pretrained: false``, never
    the shipped starting weights, ``adapters/audio_weights.py``).

The default encoder starts from the shipped weights (round 8's default), ``--encoder '{"pretrained": false}'`` from
random weights, and ``--init FOLDER`` from another pretrained anycl model's audio encoder
(``benchmarks/pretrain_audio.py``, ``benchmarks/pretrain_audio_speakers.py``).

Training speed is reported as clips/s (each clip gives two augmented views per step).

Usage::

    PYTHONPATH=. python benchmarks/bench_audio.py                 # 3 seeds, writes results/audio.md
    PYTHONPATH=. python benchmarks/bench_audio.py --epochs 5 --seeds 0 --no-write   # smoke run
    PYTHONPATH=. python benchmarks/bench_audio.py --set asterisk --max-per-language 20 --epochs 1 --seeds 0 --no-write
    # a multi-view recipe (anycl.data.views): --views 2 --local-views 4 --loss dino
    # issue 29's dev protocol: each set, 3 seeds, the default and the encode-time candidates; then the report
    PYTHONPATH=. python benchmarks/bench_audio.py --set espeak-words --dev --record audio_protocol.jsonl --threads 1 --post-hoc
    PYTHONPATH=. python benchmarks/bench_audio.py --protocol-table
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

import anycl
from anycl.evaluation import knn_hits, linear_probe_hits
from anycl.model.precision import bf16_supported

sys.path.insert(0, str(Path(__file__).resolve().parent))
import audiosets  # noqa: E402
from audio_report import dev_table, mean_spread, protocol_report, screening_table, targets  # noqa: E402
from idle import load_line  # noqa: E402

RESULTS_DIR = Path(__file__).resolve().parent / "results"
RESULTS = {"sonic-pi": RESULTS_DIR / "audio.md", "asterisk": RESULTS_DIR / "audio_asterisk.md"}


def probes(tr_emb, tr_y, te_emb, te_y, seed):
    """Linear-probe and kNN (k = 5) accuracy, and under ``hits`` which test clips each got right, one "0"/"1" a clip
    in the split's order (for the paired intervals of :func:`audio_report.margin_interval`)."""
    hits = {
        "linear": linear_probe_hits(tr_emb, tr_y, te_emb, te_y, seed=seed),
        "knn": knn_hits(tr_emb, tr_y, te_emb, te_y, k=5).numpy(),
    }
    return {
        **{probe: float(h.mean()) for probe, h in hits.items()},
        "hits": {probe: "".join("1" if x else "0" for x in h) for probe, h in hits.items()},
    }


def band_statistics(lm: torch.Tensor) -> torch.Tensor:
    """(..., n_mels, T) log-mels → (..., 2·n_mels): each band's mean and standard deviation over time."""
    return torch.cat([lm.mean(-1), lm.std(-1)], -1)


def logmel_stats(adapter, files):
    """Per-band mean and std of each whole clip's log-mel → (N, 2·n_mels) (``standardise`` them for a probe)."""
    feats = []
    for f in files:
        wave = adapter.fit_length(adapter.load(str(f)))
        feats.append(band_statistics(adapter.log_mel(wave[None])[0, 0]))  # from (n_mels, T)
    return torch.stack(feats)


def standardise(tr, te):
    mu, sd = tr.mean(0), tr.std(0).clamp_min(1e-6)
    return torch.nn.functional.normalize((tr - mu) / sd, dim=-1), torch.nn.functional.normalize((te - mu) / sd, dim=-1)


def _windows(k=None):
    """``eval_crop="windows"``: ``k`` evenly spaced windows a clip (None: the adapter's own ``eval_windows``)."""

    def change(model):
        adapter = model.towers["audio"].adapter
        crop, count = adapter.eval_crop, adapter.eval_windows
        adapter.eval_crop, adapter.eval_windows = "windows", count if k is None else k

        def undo():
            adapter.eval_crop, adapter.eval_windows = crop, count

        return undo

    return change


def _pre_relu(model):
    """Pool the frame-wise linear layer's output before its ReLU (AudioCNN's ``frame[2]``)."""
    frame = model.towers["audio"].encoder.frame
    relu, frame[2] = frame[2], torch.nn.Identity()
    return lambda: frame.__setitem__(2, relu)


def _toward_start(weight):
    """A weight-space ensemble of the fine-tuned encoder and its start (WiSE-FT): each floating-point parameter and
    buffer set to ``weight`` x fine-tuned + (1 - weight) x start, where ``model.bench_start`` holds the start's state
    (the shipped or ``--init`` weights, set by :func:`run_seed` after training); an encoder without one (the floors)
    is left as it is."""

    def change(model):
        start = getattr(model, "bench_start", None)
        if start is None:
            return lambda: None
        encoder = model.towers["audio"].encoder
        kept = {k: v.clone() for k, v in encoder.state_dict().items()}
        encoder.load_state_dict(
            {k: weight * v + (1 - weight) * start[k] if v.is_floating_point() else v for k, v in kept.items()}
        )
        return lambda: encoder.load_state_dict(kept)

    return change


def _layers(model):
    """Multi-layer features (round 13): the embedding alongside every conv block's channels pooled over mel bins and
    frames (mean and max), each part L2-normalised: [final ; blocks], the two halves of equal norm. Since round 14 the
    encoder's own ``readout="layers"`` (``adapters/audio_encoder.py``), switched on for the reading only."""
    encoder = model.towers["audio"].encoder
    kept = encoder.readout
    encoder.readout = "layers"
    return lambda: setattr(encoder, "readout", kept)


# encode-time candidates (issue 29 item 2) scored on the trained and the random-init encoder with --post-hoc:
# whole-clip mean pooling over the adapter's evaluation windows, the embedding taken before the final ReLU, both;
# round 11: 5 and 8 windows a clip instead of the default 3 (on the same trained encoders: a paired comparison);
# round 12: the fine-tuned weights averaged with their start's (weight-space ensembles, windows at encode)
POST_HOC = {
    "windows": [_windows()],
    "pre-relu": [_pre_relu],
    "windows+pre-relu": [_windows(), _pre_relu],
    "5 windows": [_windows(5)],
    "8 windows": [_windows(8)],
    "windows+wise 0.5": [_windows(), _toward_start(0.5)],
    "windows+wise 0.75": [_windows(), _toward_start(0.75)],
    "windows+layers": [_windows(), _layers],
}


def encoded_with(model, changes, tr_s, tr_y, te_s, te_y):
    """(train embeddings, train labels, test embeddings, test labels) with ``changes`` applied, then undone."""
    undo = [change(model) for change in changes]
    try:
        return model.encode(tr_s), tr_y, model.encode(te_s), te_y
    finally:
        for u in reversed(undo):
            u()


def init_encoder(folder: str):
    """The audio encoder of an anycl model folder (``pretrain_audio.py``'s output), for ``--init``."""
    return anycl.load(folder).tower("audio").encoder


def fit_options(args) -> dict:
    """The loss/multi-view options of the pretraining run (none: the audio default)."""
    given = (("epochs", args.epochs), ("max_steps", args.max_steps), ("batch_size", args.batch_size), ("lr", args.lr))
    o = {k: v for k, v in given if v is not None}
    if args.temperature:
        o["temperature"] = args.temperature
    if args.loss:
        o["loss"] = args.loss
    if args.loss_options:
        o["loss_options"] = json.loads(args.loss_options)
    if args.views:
        o["views"] = args.views
    if args.local_views:
        o["local_views"] = args.local_views
    if args.mixed_precision:
        o["mixed_precision"] = args.mixed_precision
    return o


def dev_split(dataset, seed, test_fraction):
    """The dev protocol: the seed's training clips split once more by the set's own rule (a different
    seed); pretraining and probe fitting on the first part, scoring on the second. The test clips are
    not read."""
    tr_s, tr_y, _, _ = dataset.split(seed, test_fraction)
    groups = None
    if dataset.groups is not None:
        group_of = dict(zip(dataset.files, dataset.groups))
        groups = [group_of[f] for f in tr_s]
    sub = audiosets.AudioSet(dataset.name, dataset.description, tr_s, tr_y, dataset.split_fn, groups)
    return sub.split(seed + 1000, test_fraction)


def run_seed(seed, dataset, args):
    if args.dev:
        tr_s, tr_y, te_s, te_y = dev_split(dataset, seed, args.test_fraction)
    else:
        tr_s, tr_y, te_s, te_y = dataset.split(seed, args.test_fraction)
    train, test = tr_s, te_s
    adapter_options = {
        k: v for k, v in (("clip_seconds", args.clip_seconds), ("eval_crop", args.eval_crop)) if v is not None
    }
    if args.adapter:
        adapter_options.update(json.loads(args.adapter))
    if args.augment:
        adapter_options["augment"] = json.loads(args.augment)
    encoder_options = json.loads(args.encoder) if args.encoder else None
    if args.set == "asterisk":
        # the shipped starting weights (and pretrain_audio.py's) heard these prompts: nothing would be held out
        if (encoder_options or {}).get("pretrained") or args.init:
            raise SystemExit("--set asterisk: the pretraining corpus holds these prompts; start from random weights")
        encoder_options = {**(encoder_options or {}), "pretrained": False}
    out = {"n_train": len(train), "n_test": len(test)}
    init = args.init_encoder  # --init's encoder, read once in main (None without --init)

    # floor (a): log-mel statistics
    a = anycl.adapters.get("audio", augment=False)
    tr_f, te_f = standardise(logmel_stats(a, train), logmel_stats(a, test))
    out["logmel"] = probes(tr_f, tr_y, te_f, te_y, seed)

    # floor (b): the same encoder at random initialisation
    from accelerate.utils import set_seed

    set_seed(seed)
    sides = {"anchor": "audio", "positive": "audio", "negative": "audio"}
    random_options = {**(encoder_options or {}), "pretrained": False}  # not the shipped weights: random init
    rand = anycl.api.build_model(sides, adapter_options=adapter_options, encoder_options=random_options)
    rand.eval()
    out["random"] = probes(rand.encode(tr_s), tr_y, rand.encode(te_s), te_y, seed)
    readers = [("random", rand)]
    if init is not None:  # --init: the pretrained encoder as it comes, before fine-tuning on this set
        start = anycl.api.build_model(sides, adapter_options=adapter_options, encoder=copy.deepcopy(init))
        start.eval()
        out["init"] = probes(start.encode(tr_s), tr_y, start.encode(te_s), te_y, seed)
        readers.append(("init", start))

    # pretraining without labels on the training clips only
    t0 = time.perf_counter()
    model = anycl.fit(
        tr_s,
        modality="audio",
        seed=seed,
        adapter_options=adapter_options,
        encoder_options=encoder_options if init is None else None,
        encoder=copy.deepcopy(init) if init is not None else None,
        progress=False,
        **fit_options(args),
    )
    wall = time.perf_counter() - t0
    steps = model.trainer.global_step
    clips = model.trainer.history[-1]["items_per_s"] if model.trainer.history else float("nan")
    out["pretrained"] = probes(model.encode(tr_s), tr_y, model.encode(te_s), te_y, seed)
    if args.post_hoc:  # the start's weights, for the weight-space ensembles (built after training: no draw moves)
        if init is not None:
            model.bench_start = copy.deepcopy(init).state_dict()
        elif (encoder_options or {}).get("pretrained"):
            shipped = anycl.api.build_model(sides, adapter_options=adapter_options, encoder_options=encoder_options)
            model.bench_start = shipped.tower("audio").encoder.state_dict()
        # encode-time candidates on the same trained and random-init encoders (no retraining)
        out["post_hoc"] = {}
        for name, change in POST_HOC.items():
            out["post_hoc"][name] = {
                who: probes(*encoded_with(m, change, tr_s, tr_y, te_s, te_y), seed)
                for who, m in (*readers, ("pretrained", model))
            }
    out["clips_per_s"] = clips
    out["train_s"] = wall
    out["steps"] = steps
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--set", default="sonic-pi", choices=sorted(audiosets.SETS))
    p.add_argument("--max-per-language", type=int, default=None, help="asterisk: clips kept per language")
    p.add_argument("--loss", default=None, help="a registered loss name (default: the audio default)")
    p.add_argument(
        "--loss-options", default=None, help="JSON dict of the loss's options, e.g. '{\"tau_plus\": 0.1}' (with --loss)"
    )
    p.add_argument("--views", type=int, default=None, help="global views per clip (multi-view training)")
    p.add_argument("--local-views", type=int, default=0, help="local views per clip (multi-view training)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=None, help="default: fit's own (the self-supervised step budget)")
    p.add_argument(
        "--max-steps", type=int, default=None, help="optimiser steps (fit's max_steps; the epochs follow from the data)"
    )
    p.add_argument("--batch-size", type=int, default=None, help="default: fit's own (64)")
    p.add_argument("--lr", type=float, default=None, help="default: fit's own (1e-3)")
    p.add_argument("--temperature", type=float, default=None)
    p.add_argument("--mixed-precision", default=None, help="auto|no|bf16 (default: fit's own, auto)")
    p.add_argument("--clip-seconds", type=float, default=None, help="default: the adapter's own (1 s)")
    p.add_argument("--eval-crop", default=None, help="default: the adapter's own (center)")
    p.add_argument("--augment", default=None, help="JSON dict of augmentation settings, e.g. '{\"mixup\": 0.2}'")
    p.add_argument("--test-fraction", type=float, default=0.4)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--adapter", default=None, help="JSON dict of further adapter options, e.g. '{\"n_mels\": 96}'")
    p.add_argument(
        "--encoder", default=None, help="JSON dict of encoder options, e.g. '{\"channels\": [32, 64, 128, 128]}'"
    )
    p.add_argument(
        "--dev",
        action="store_true",
        help="score on a dev split of the training clips (the test clips are not read); implies --no-write "
        "and appends a JSON line to results/audio_dev.jsonl",
    )
    p.add_argument(
        "--record", default="audio_dev.jsonl", help="--dev: the JSON-lines file under results/ the run is appended to"
    )
    p.add_argument(
        "--record-test",
        action="store_true",
        help="without --dev: append the test split's run to --record's file (split: test) instead of writing the "
        "set's markdown (issue 29's protocol: the test splits are touched once per final setting)",
    )
    p.add_argument(
        "--post-hoc",
        action="store_true",
        help="also score the encode-time candidates (windows pooling, pre-ReLU embedding) on the same encoders",
    )
    p.add_argument(
        "--init",
        default=None,
        metavar="FOLDER",
        help="start fine-tuning from the audio encoder of this anycl model folder (pretrain_audio.py's output); "
        "the encoder as it comes is scored too (init_*)",
    )
    p.add_argument("--no-write", action="store_true")
    p.add_argument("--dev-table", action="store_true", help="print the table of results/audio_dev.jsonl and exit")
    p.add_argument(
        "--protocol-table",
        action="store_true",
        help="print issue 29's protocol report of results/audio_protocol.jsonl (or --record's file; per recipe, "
        "every set) and exit",
    )
    p.add_argument(
        "--screen-table",
        type=int,
        default=None,
        metavar="SEED",
        help="print one seed's scores of every recipe in --record's protocol file side by side (screening) and exit",
    )
    args = p.parse_args(argv)
    if args.record_test and (args.dev or args.record == "audio_dev.jsonl"):
        p.error(
            "--record-test scores the test split: give it without --dev and with --record FILE (e.g. "
            "audio_protocol_test.jsonl)"
        )
    if args.dev_table:
        print(dev_table(RESULTS_DIR / "audio_dev.jsonl"))
        return []
    if args.screen_table is not None or args.protocol_table:
        record = args.record if args.record != "audio_dev.jsonl" else "audio_protocol.jsonl"
        lines = (RESULTS_DIR / record).read_text().splitlines()
        recs = [json.loads(line) for line in lines if line.strip()]
        if args.screen_table is not None:
            print(screening_table(recs, audiosets.PROTOCOL_SETS, args.screen_table))
        else:
            print(protocol_report(recs, audiosets.PROTOCOL_SETS))
        return []
    torch.set_num_threads(args.threads)
    args.init_encoder = init_encoder(args.init) if args.init else None  # each seed fine-tunes a copy of it
    dataset = audiosets.asterisk(args.max_per_language) if args.set == "asterisk" else audiosets.SETS[args.set]()
    load_before = load_line() if not args.no_write else ""
    t_all = time.perf_counter()
    results = []
    for seed in args.seeds:
        r = run_seed(seed, dataset, args)
        results.append(r)
        print(
            f"seed {seed}: "
            + ", ".join(
                f"{k} lin={r[k]['linear']:.3f} knn={r[k]['knn']:.3f}" for k in ("logmel", "random", "pretrained")
            )
            + f", {r['clips_per_s']:.1f} clips/s, {r['steps']} steps in {r['train_s']:.0f} s",
            flush=True,
        )
    total = time.perf_counter() - t_all

    rows = []
    for name, label in [
        ("logmel", "(a) log-mel mean+std per band"),
        ("random", "(b) same encoder, random init"),
        ("pretrained", "anycl.fit pretrained (no labels)"),
    ]:
        lin = mean_spread([r[name]["linear"] for r in results])
        knn = mean_spread([r[name]["knn"] for r in results])
        rows.append((label, lin, knn, [r[name]["linear"] for r in results], [r[name]["knn"] for r in results]))
    margins = {}
    for floor in ("logmel", "random"):
        for probe in ("linear", "knn"):
            d = [r["pretrained"][probe] - r[floor][probe] for r in results]
            margins[(floor, probe)] = (mean_spread(d), d)
    speed = mean_spread([r["clips_per_s"] for r in results])

    cmd = "PYTHONPATH=. python benchmarks/bench_audio.py " + " ".join(argv if argv is not None else sys.argv[1:])
    lines = [
        f"# Audio clip pretraining: {dataset.name}",
        "",
        f"{dataset.description}. Per seed the split holds out {args.test_fraction:.0%} "
        f"(≈{results[0]['n_train']} train / {results[0]['n_test']} test clips); pretraining sees the training "
        f"clips only, without labels. Probes on frozen embeddings: linear = standardised logistic regression, "
        f"kNN = cosine, k=5; both fitted on the training clips, scored on the held-out clips.",
        "",
        f"Settings: {args.epochs or 'fit default'} epochs ({results[0]['steps']} steps), batch "
        f"{args.batch_size or 'default'}, lr {args.lr or 'default'}, augmentations "
        f"{'default' if not args.augment else 'default updated with ' + args.augment}, "
        f"{args.clip_seconds or 'default'} s windows, evaluation crop `{args.eval_crop or 'default'}`, "
        f"{'adapter options ' + args.adapter + ', ' if args.adapter else ''}"
        f"AudioCNN encoder {'with ' + args.encoder if args.encoder else '(default)'}, "
        f"loss {args.loss or 'InfoNCE'} (temperature {args.temperature or 'default'}"
        f"{', ' + args.loss_options if args.loss_options else ''}), "
        f"{'pairwise' if not (args.views or args.local_views) else f'{args.views or 2} global + {args.local_views} local views'}"
        f". Seeds {args.seeds}: mean ± std "
        f"(per-seed values in brackets).",
        "",
        "| features | linear probe | kNN (k=5) |",
        "|---|---|---|",
    ]
    for label, lin, knn, lins, knns in rows:
        lines.append(
            f"| {label} | {lin[0]:.3f} ± {lin[1]:.3f} ({', '.join(f'{v:.3f}' for v in lins)}) | "
            f"{knn[0]:.3f} ± {knn[1]:.3f} ({', '.join(f'{v:.3f}' for v in knns)}) |"
        )
    lines += [
        "",
        "Margin of pretraining over each floor (same seed, same split), mean ± std:",
        "",
        "| floor | linear probe | kNN |",
        "|---|---|---|",
    ]
    for floor, label in (("logmel", "(a) log-mel stats"), ("random", "(b) random init")):
        (lm, ls), ld = margins[(floor, "linear")]
        (km, ks), kd = margins[(floor, "knn")]
        lines.append(f"| {label} | {lm:+.3f} ± {ls:.3f} | {km:+.3f} ± {ks:.3f} |")
    lines += [
        "",
        f"Training speed: {speed[0]:.1f} ± {speed[1]:.1f} clips/s "
        f"(each clip → {(args.views or 2) + args.local_views} views; decoding, augmentation, "
        f"log-mels, forward and backward; {results[0]['steps']} steps per seed, "
        f"{statistics.mean(r['train_s'] for r in results):.0f} s per pretraining), {args.threads} torch threads.",
        "",
        "Targets (issue 16; means over the seeds):",
        "",
        *targets(results),
        "",
        f"Command: `{cmd.strip()}`  ",
        f"Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; total run {total / 60:.1f} min  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}, CPU only.  ",
        f"Load before: {load_before or 'not checked'}  ",
        f"Load after: {load_line() if load_before else 'not checked'}",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.dev or args.record_test:
        encoders = ("random", "pretrained", *(("init",) if args.init else ()))  # the encoders each run scored
        record = {
            "date": f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M}",
            "command": cmd.strip(),
            "split": "dev" if args.dev else "test",
            "set": args.set,
            "seeds": args.seeds,
            **{
                f"{name}_{probe}": [r[name][probe] for r in results]
                for name in ("logmel", *encoders)
                for probe in ("linear", "knn")
            },
            "train_s": [r["train_s"] for r in results],
            "steps": [r["steps"] for r in results],
            **{
                f"post_hoc:{name}:{who}_{probe}": [r["post_hoc"][name][who][probe] for r in results]
                for name in (POST_HOC if args.post_hoc else ())
                for who in encoders
                for probe in ("linear", "knn")
            },
            # which test clips each probe got right, per seed ("0"/"1" a clip): the report's paired intervals
            **{
                f"hits:{name}_{probe}": [r[name]["hits"][probe] for r in results]
                for name in ("logmel", *encoders)
                for probe in ("linear", "knn")
            },
            **{
                f"post_hoc:{name}:hits:{who}_{probe}": [r["post_hoc"][name][who]["hits"][probe] for r in results]
                for name in (POST_HOC if args.post_hoc else ())
                for who in encoders
                for probe in ("linear", "knn")
            },
            "mixed_precision": args.mixed_precision or "auto (fit's default)",
            "bf16_units": bf16_supported(torch.device("cpu")),
            "load_before": load_before,
            "load_after": load_line(),
        }
        with open(RESULTS_DIR / args.record, "a") as f:
            f.write(json.dumps(record) + "\n")
    elif not args.no_write:
        RESULTS[args.set].parent.mkdir(parents=True, exist_ok=True)
        RESULTS[args.set].write_text(text)
    return results


if __name__ == "__main__":
    main()
