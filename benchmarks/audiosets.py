"""The real audio sets of the audio benchmark (``bench_audio.py --set ...``), each with a fixed split rule.

- ``sonic-pi``: Debian's ``sonic-pi-samples`` (166 CC0 FLAC clips); the class is the file-name prefix
  (ambi, bass, bd, drum, elec, ...); a seeded split stratified by class.
- ``asterisk``: Debian's ``asterisk-core-sounds-{en,es,fr,it,ru}-wav`` (real recorded telephone prompts,
  8 kHz WAV); the class is the spoken language (5 classes). The split is by *prompt file name* (its path
  inside the language folder, e.g. ``digits/7.wav``): a seeded ``test_fraction`` of the prompt names is
  held out, in every language, so the same prompt (the same words) is never in train and test. Clips
  shorter than 0.3 s and the ``silence/`` folder are left out. Each language is voiced by one speaker
  (en and es: the same speaker, Allison), so the task mixes language and speaker identity except for
  en vs es; say so when quoting its numbers.

Issue 29's dev protocol adds ``espeak-words``, ``megaglest-sfx`` and ``hedgewars-voices``
(:mod:`audiosets_protocol`).

Each set gives ``split(seed, test_fraction) -> (train_files, train_labels, test_files, test_labels)``.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import audiosets_protocol as asp
import numpy as np

SONIC_PI_DIR = Path("/usr/share/sonic-pi/samples")
ASTERISK_DIR = Path("/usr/share/asterisk/sounds")
ASTERISK_LANGUAGES = ("en", "es", "fr", "it", "ru")
MIN_SECONDS = 0.3

Split = Tuple[List[str], List[str], List[str], List[str]]


@dataclass
class AudioSet:
    name: str
    description: str
    files: List[str]
    labels: List[str]
    split_fn: Callable[[AudioSet, int, float], Split]
    groups: Optional[List[str]] = None  # asterisk: the prompt name of each file (the split's unit)

    def split(self, seed: int, test_fraction: float) -> Split:
        return self.split_fn(self, seed, test_fraction)


def _need(path: Path, package: str) -> None:
    if not path.is_dir():
        raise SystemExit(f"{path} is missing: apt-get install {package}")


# -- sonic-pi -------------------------------------------------------------------------------------------
def sonic_category(path: str) -> str:
    return Path(path).name.split("_", 1)[0]


def stratified_split(s: AudioSet, seed: int, test_fraction: float) -> Split:
    """Every class keeps at least one clip on each side."""
    by_cat: Dict[str, List[str]] = defaultdict(list)
    for f, y in zip(s.files, s.labels):
        by_cat[y].append(f)
    rng = np.random.default_rng(seed)
    train, test = [], []
    for cat in sorted(by_cat):
        fs = sorted(by_cat[cat])
        rng.shuffle(fs)
        n_test = min(max(1, int(round(test_fraction * len(fs)))), len(fs) - 1)
        test += fs[:n_test]
        train += fs[n_test:]
    label = dict(zip(s.files, s.labels))
    train, test = sorted(train), sorted(test)
    return train, [label[f] for f in train], test, [label[f] for f in test]


def sonic_pi() -> AudioSet:
    _need(SONIC_PI_DIR, "sonic-pi-samples")
    files = [str(p) for p in sorted(SONIC_PI_DIR.glob("*.flac"))]
    return AudioSet(
        "sonic-pi",
        f"{len(files)} CC0 FLAC clips from Debian's sonic-pi-samples, "
        f"{len(set(map(sonic_category, files)))} categories (file-name prefix); a stratified split",
        files,
        [sonic_category(f) for f in files],
        stratified_split,
    )


# -- asterisk prompts: spoken-language identification ---------------------------------------------------
def prompt_split(s: AudioSet, seed: int, test_fraction: float) -> Split:
    """A seeded share of the prompt names goes to test, in every language: no prompt on both sides."""
    return asp.group_split(s.files, s.labels, s.groups, seed, test_fraction)


def asterisk(max_per_language: Optional[int] = None, min_seconds: float = MIN_SECONDS) -> AudioSet:
    """The prompts of the five languages; ``max_per_language``: keep that many per language, chosen by a
    fixed hash of the prompt name (the same prompts in every language where they exist)."""
    import soundfile as sf

    files, labels, groups = [], [], []
    for lang in ASTERISK_LANGUAGES:
        root = ASTERISK_DIR / lang
        _need(root, f"asterisk-core-sounds-{lang}-wav")
        root = root.resolve()
        found = []
        for p in sorted(root.rglob("*.wav")):
            rel = p.relative_to(root).as_posix()
            if rel.startswith("silence/"):
                continue
            info = sf.info(str(p))
            if info.frames < min_seconds * info.samplerate:
                continue
            found.append((hashlib.blake2b(rel.encode(), digest_size=8).digest(), rel, str(p)))
        found.sort()
        keep = sorted((found if max_per_language is None else found[:max_per_language]), key=lambda t: t[1])
        files += [f for _, _, f in keep]
        groups += [rel for _, rel, _ in keep]
        labels += [lang] * len(keep)
    return AudioSet(
        "asterisk",
        f"{len(files)} recorded telephone prompts from Debian's asterisk-core-sounds "
        f"({', '.join(ASTERISK_LANGUAGES)}; 8 kHz WAV), spoken-language identification; the split is by "
        f"prompt file name (the same prompt never in train and test)",
        files,
        labels,
        prompt_split,
        groups,
    )


# -- issue 29's dev protocol: three more sets (audiosets_protocol.py), each split by its groups ------------------
grouped = prompt_split  # the split of every set with groups: no group on both sides


def _grouped_set(name: str, read: Callable[[], Tuple[List[str], List[str], List[str]]], what: str) -> AudioSet:
    files, labels, groups = read()
    return AudioSet(
        name,
        f"{len(files)} clips, {len(set(labels))} classes, {len(set(groups))} groups: {what}",
        files,
        labels,
        grouped,
        groups,
    )


def espeak_words() -> AudioSet:
    return _grouped_set(
        "espeak-words",
        asp.espeak_files,
        "10 words spoken by espeak-ng (synthetic speech), every voice variant with one of seven English accents; "
        "class = word, split by voice variant",
    )


def megaglest_sfx() -> AudioSet:
    return _grouped_set(
        "megaglest-sfx",
        asp.megaglest_files,
        "megaglest-data unit sound effects; class = role in the file name (ack, attack, die, hit, select), "
        "split by unit",
    )


def hedgewars_voices() -> AudioSet:
    return _grouped_set(
        "hedgewars-voices",
        asp.hedgewars_files,
        "hedgewars-data voice packs (recorded speech); class = voice pack, split by phrase",
    )


SETS = {
    "sonic-pi": sonic_pi,
    "asterisk": asterisk,
    "espeak-words": espeak_words,
    "megaglest-sfx": megaglest_sfx,
    "hedgewars-voices": hedgewars_voices,
}
# the sets of issue 29's dev protocol (asterisk is left out: each language is one speaker)
PROTOCOL_SETS = ("sonic-pi", "espeak-words", "megaglest-sfx", "hedgewars-voices")
