"""A speaker-supervised stage after :mod:`pretrain_audio` (issue 29 round 8): the pretrained audio CNN trained on with
supervised contrast (``loss="supcon"``: two augmented views of each clip, and every clip of the same speaker, are
positives) on :mod:`audio_speaker_corpus` (13 Festival voices and 17 OpenArena characters, none from the protocol's
packages), then saved as an anycl model folder for ``bench_audio.py --init FOLDER``.

    PYTHONPATH=benchmarks python benchmarks/pretrain_audio_speakers.py --start runs/audio-pt8k-music \\
        --out runs/audio-pt-speakers --max-steps 1500

The rest of the recipe is ``anycl.fit``'s audio default (adapter, augmentations, batch 64, lr 1e-3); the folder's
``pretrain.json`` records the start, the corpus (clips per speaker), the steps, the seconds and the load;
``pretrain_audio.py --out FOLDER --ship-only`` ships it, both stages in the weights' record.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import audio_pretrain_corpus  # noqa: E402
import audio_speaker_corpus  # noqa: E402
import audio_word_corpus  # noqa: E402
from idle import load_line  # noqa: E402
from pretrain_audio import run_facts  # noqa: E402

import anycl  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--start", required=True, help="an anycl audio model folder (pretrain_audio.py's --out)")
    p.add_argument("--out", required=True, help="the anycl model folder to write")
    p.add_argument("--max-steps", type=int, default=1500)
    p.add_argument("--per-voice", type=int, default=80, help="sentences per Festival voice")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument(
        "--with-corpus",
        action="store_true",
        help="also train on the start's unlabelled corpus (the sources its pretrain.json names), each clip its own "
        "label (its two views the only positives, as in the unlabelled pretraining), so the encoder keeps what it "
        "learnt there",
    )
    p.add_argument(
        "--more",
        nargs="*",
        default=[],
        choices=list(audio_speaker_corpus.MORE),
        help="further speaker sources (audio_speakers_more): asterisk = seven recorded telephone-prompt speakers",
    )
    p.add_argument("--per-speaker", type=int, default=120, help="--more: clips kept per speaker")
    p.add_argument(
        "--words",
        type=int,
        default=0,
        help="also every Festival voice reading this many single words (audio_word_corpus), labelled by the word",
    )
    p.add_argument("--speaker-repeat", type=int, default=1, help="each speaker clip this many times in an epoch")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    files, labels = audio_speaker_corpus.corpus(args.per_voice, tuple(args.more), args.per_speaker)
    counts = dict(collections.Counter(labels))
    print(f"speaker corpus: {len(files)} clips, {len(counts)} speakers", flush=True)
    files, labels, general = files * args.speaker_repeat, labels * args.speaker_repeat, []
    if args.words:
        word_files, word_labels = audio_word_corpus.corpus(args.words)
        files, labels = files + word_files, labels + word_labels
        print(f"with the words: {len(word_files)} clips, {len(set(word_labels))} words", flush=True)
    if args.with_corpus:
        labelled = set(files)  # OpenArena's player voices are in both: there they keep their speaker's label
        start_sources = list(json.loads(Path(args.start, "pretrain.json").read_text())["corpus"])
        found = audio_pretrain_corpus.corpus(names=start_sources)  # the start's own unlabelled corpus
        general = [f for clips in found.values() for f in clips if f not in labelled]
        files, labels = files + general, labels + [f"clip/{i}" for i in range(len(general))]
        print(f"with the unlabelled corpus: {len(general)} clips, each its own label", flush=True)
    encoder = anycl.load(args.start).tower("audio").encoder
    rows = [{"anchor": f, "label": speaker} for f, speaker in zip(files, labels)]
    load_before = load_line()
    t0 = time.perf_counter()
    model = anycl.fit(
        rows, modality="audio", encoder=encoder, loss="supcon", seed=args.seed, max_steps=args.max_steps, progress=False
    )
    seconds = time.perf_counter() - t0
    model.save(args.out)
    import soundfile as sf

    record = {
        "command": "PYTHONPATH=benchmarks python benchmarks/pretrain_audio_speakers.py "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "start": json.loads(Path(args.start, "pretrain.json").read_text()).get("command", args.start),
        "start_folder": str(Path(args.start).resolve()),
        "speakers": counts,
        "words": args.words,
        "unlabelled_clips": len(general),
        "clips": len(files),
        "speaker_repeat": args.speaker_repeat,
        "minutes": round(sum(sf.info(f).duration for f in set(files)) / 60, 1),
        **run_facts(model, seconds, args.seed, args.threads, load_before),
    }
    Path(args.out, "pretrain.json").write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
