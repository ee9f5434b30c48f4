"""Pretrain anycl's audio CNN without labels on audio that issue 29's protocol never reads
(:mod:`audio_pretrain_corpus`), and save it as an anycl model folder; ``bench_audio.py --init FOLDER`` then starts
the protocol's fine-tuning from its encoder.

    PYTHONPATH=benchmarks python benchmarks/pretrain_audio.py --out runs/audio-pretrained --max-steps 8000

The recipe is ``anycl.fit``'s audio default (the same adapter, augmentations, loss and batch) with a longer step
budget; the folder's ``pretrain.json`` records the corpus (clips and minutes per source), the steps, the seconds and
the load before and after. ``--ship`` then copies its encoder weights over the shipped ones
(``adapters/weights/anycl-audio-cnn-v2.safetensors``) and rewrites their record (``….json``: corpus, packages,
steps, SHA-256), which ``adapters/audio_weights.py`` checks at every load.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import audio_pretrain_corpus  # noqa: E402
import audio_speaker_corpus  # noqa: E402
from idle import load_line  # noqa: E402

import anycl  # noqa: E402
from anycl.adapters import audio_weights  # noqa: E402
from anycl.model.precision import cpu_bf16_units  # noqa: E402

PROTOCOL_PACKAGES = ["sonic-pi-samples", "espeak-ng", "megaglest-data", "hedgewars-data"]


def _version(package: str) -> str:
    p = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True)
    return p.stdout.strip() or "not installed"


def ship(folder: str) -> dict:
    """Copy ``folder``'s audio encoder weights over the shipped ones and write their record; the record."""
    pre = json.loads(Path(folder, "pretrain.json").read_text())
    speaker_stage = None
    if "start_folder" in pre:  # pretrain_audio_speakers.py's folder: the unlabelled stage is its start
        speaker_stage, pre = pre, json.loads(Path(pre["start_folder"], "pretrain.json").read_text())
        other = [k for k in speaker_stage["speakers"] if not k.startswith(("festival/", "openarena/"))]
        if other or speaker_stage.get("words"):
            raise SystemExit(
                "the weights' record describes a speaker stage of Festival voices and OpenArena characters only; "
                f"this one also has {other[:3] or 'words'}: describe them in ship() before shipping it"
            )
    source = Path(folder, "towers", "audio", "encoder.safetensors")
    target = audio_weights.WEIGHTS_DIR / f"{audio_weights.NAME}.safetensors"
    shutil.copyfile(source, target)
    config = json.loads(Path(folder, "anycl_config.json").read_text())["towers"]["audio"]
    options = config["encoder"]["options"]
    packages = [name for source_name in pre["corpus"] for name in audio_pretrain_corpus.PACKAGES[source_name].split()]
    if speaker_stage is not None:
        packages += [name for name in audio_speaker_corpus.PACKAGES.split() if name not in packages]
    card = {
        "name": audio_weights.NAME,
        "what": "anycl's default AudioCNN pretrained without labels by anycl.fit's audio default (InfoNCE over two "
        "augmented 1 s views, batch 64, lr 1e-3, bf16 autocast where the CPU has bf16 units)",
        "command": pre["command"],
        "corpus": {
            "clips": pre["clips"],
            "minutes": pre["minutes"],
            "per_source": pre["corpus"],
            "packages": packages,
            "left_out": PROTOCOL_PACKAGES,
        },
        "package_versions": {name: _version(name) for name in packages},
        "steps": pre["steps"],
        "seed": pre["seed"],
        "train_seconds": pre["train_s"],
        "last_loss": pre["last_loss"],
        "machine": pre["machine"],
        "encoder": {"channels": options["channels"], "embedding_dim": options["embedding_dim"], "pooling": "mean+max"},
        "adapter": {
            k: config["adapter"][k] for k in ("sample_rate", "n_mels", "win_ms", "hop_ms", "n_fft", "f_min", "f_max")
        },
        "sha256": hashlib.sha256(target.read_bytes()).hexdigest(),
        "licence": "anycl's own weights, trained on audio from Debian main packages; their copyright files "
        "(/usr/share/doc/<package>/copyright) name free licences: CC-BY-3.0 and CC-BY-SA-3.0 (the asterisk prompts), "
        "GPL-2 / GPL-2+, CC-BY-SA, CC0 and other free licences (the games, instruments and drum kits)",
    }
    if speaker_stage is not None:
        sources = collections.Counter(name.split("/")[0] for name in speaker_stage["speakers"])
        card["what"] += (
            "; then trained on with supervised contrast (loss='supcon'): clips of one speaker are positives "
            f"({sources['festival']} Festival voices reading FOLDOC sentences, {sources['openarena']} OpenArena "
            "characters), the unlabelled corpus beside them with each clip its own label"
        )
        card["speaker_stage"] = {
            k: speaker_stage[k]
            for k in ("command", "speakers", "clips", "unlabelled_clips", "speaker_repeat", "minutes", "steps")
        }
        card["speaker_stage"]["train_seconds"] = speaker_stage["train_s"]
        card["steps"] = pre["steps"] + speaker_stage["steps"]
        card["last_loss"] = speaker_stage["last_loss"]
        card["licence"] += (
            "; the speaker stage adds the Festival voices (festvox-*: permissive CMU / EST / BSD terms, GPL-2+, "
            "GPL-3, LGPL-2.1+) reading sentences of FOLDOC (dict-foldoc: GFDL)"
        )
    card_path = audio_weights.WEIGHTS_DIR / f"{audio_weights.NAME}.json"
    card_path.write_text(json.dumps(card, indent=1) + "\n")
    return card


def run_facts(model, seconds: float, seed: int, threads: int, load_before: str) -> dict:
    """What a pretraining run's record says of the run itself: machine, steps, seed, seconds, last loss, load."""
    return {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, bf16 unit {cpu_bf16_units()}, torch {torch.__version__}",
        "steps": model.trainer.global_step,
        "seed": seed,
        "train_s": round(seconds, 1),
        "last_loss": model.trainer.history[-1].get("loss") if model.trainer.history else None,
        "load_before": load_before,
        "load_after": load_line(),
        "threads": threads,
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="the anycl model folder to write")
    p.add_argument("--max-steps", type=int, default=8000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument(
        "--sources",
        nargs="+",
        default=list(audio_pretrain_corpus.DEFAULT_SOURCES),
        choices=sorted(audio_pretrain_corpus.READERS),
        help="audio_pretrain_corpus's sources (default: the shipped weights' seven)",
    )
    p.add_argument("--ship", action="store_true", help="then make the result the shipped starting weights")
    p.add_argument("--ship-only", action="store_true", help="ship --out's weights (already trained) and exit")
    args = p.parse_args(argv)
    if args.ship_only:
        print(json.dumps(ship(args.out), indent=1))
        return
    torch.set_num_threads(args.threads)
    found = audio_pretrain_corpus.corpus(names=args.sources)
    files = [f for name in sorted(found) for f in found[name]]
    counts = {name: len(found[name]) for name in sorted(found)}
    print(f"pretraining corpus: {len(files)} clips {counts}", flush=True)
    load_before = load_line()
    t0 = time.perf_counter()
    model = anycl.fit(
        files,
        modality="audio",
        seed=args.seed,
        max_steps=args.max_steps,
        progress=False,
        encoder_options={"pretrained": False},  # from random weights, not the shipped ones
    )
    seconds = time.perf_counter() - t0
    model.save(args.out)
    import soundfile as sf

    record = {
        "command": "PYTHONPATH=benchmarks python benchmarks/pretrain_audio.py "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "corpus": counts,
        "minutes": round(sum(sf.info(f).duration for f in files) / 60, 1),
        "clips": len(files),
        **run_facts(model, seconds, args.seed, args.threads, load_before),
        "bench_cache": os.environ.get("ANYCL_BENCH_CACHE", ""),
    }
    Path(args.out, "pretrain.json").write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps(record), flush=True)
    if args.ship:
        print(json.dumps(ship(args.out), indent=1))


if __name__ == "__main__":
    main()
