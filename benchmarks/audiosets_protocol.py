"""The audio sets of issue 29's dev protocol beside sonic-pi (``bench_audio.py --set ...``), each split by a rule
that keeps near-duplicates on one side:

- ``espeak-words``: synthetic multi-speaker speech. Debian's ``espeak-ng`` speaks 10 command words (yes, no, up,
  down, left, right, on, off, stop, go) in every voice *variant* it ships (m1..m7, f1..f5, klatt, whisper, ...,
  101 in espeak-ng 1.51), each variant with one of seven English accents (gmw/en, en-us, scotland, ...), a pitch
  and a speed drawn from the variant's name; the class is the word. The split is **by variant**: every clip of a
  variant (all its words) is on one side, so a test voice is a voice never heard in
  training. Generated at build time into ``$ANYCL_BENCH_CACHE`` (default ``~/.cache/anycl-bench``) / espeak-words,
  deterministic (the variant list, accents, pitches and speeds are fixed by name hashes). Synthetic speech:
  the only multi-speaker word recordings reachable here.
- ``megaglest-sfx``: the unit sound effects of Debian's ``megaglest-data`` (recorded and designed game sounds,
  WAV/Ogg); the class is the sound's role read from its file name (``warrior_attack3.wav`` → attack; ack,
  attack, die, hit, select); files of any other role are left out. The split is **by unit** (``factions/<f>/
  units/<u>``): every variant of a unit's sounds (attack1..9) is on one side. Byte-identical files that several
  units share are kept once.
- ``hedgewars-voices``: real recorded speech from Debian's ``hedgewars-data``, its voice packs (Classic, Pirate,
  Robot, Default_es, ...: one voice actor or voice treatment each); the class is the voice pack (speaker
  identification). The split is **by phrase** (``Ow3.ogg`` → ow): a phrase is on one side in every pack, so the
  same words in the same voice are never on both sides. A file whose bytes appear in two packs is left out.

Each set's ``split(seed, test_fraction)`` is :func:`group_split`: a seeded share of the groups goes to test.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

Split = Tuple[List[str], List[str], List[str], List[str]]

MEGAGLEST_DIR = Path("/usr/share/games/megaglest/techs/megapack/factions")
HEDGEWARS_DIR = Path("/usr/share/games/hedgewars/Data/Sounds/voices")
WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
ACCENTS = ("en", "en-us", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-rp", "en-gb-x-gbcwmd", "en-029")
ROLES = ("ack", "attack", "die", "hit", "select")
MIN_SECONDS = 0.1


def _hash(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


# -- the split rule ---------------------------------------------------------------------------------------------
def group_split(
    files: Sequence[str], labels: Sequence[str], groups: Sequence[str], seed: int, test_fraction: float
) -> Split:
    """A seeded share (``round(test_fraction · groups)``, at least one and at most all but one) of the distinct
    groups goes to test, the rest to train: no group on both sides. The order of groups is a hash of seed and
    group name, so it does not depend on the order of the files."""
    names = sorted(set(groups))
    if len(names) < 2:
        raise ValueError(f"group_split needs at least 2 groups, got {len(names)}")
    order = sorted(names, key=lambda g: hashlib.blake2b(f"{seed}:{g}".encode(), digest_size=8).digest())
    n_test = min(max(1, int(round(test_fraction * len(order)))), len(order) - 1)
    test_groups = set(order[:n_test])
    train, tr_y, test, te_y = [], [], [], []
    for f, y, g in zip(files, labels, groups):
        if g in test_groups:
            test.append(f)
            te_y.append(y)
        else:
            train.append(f)
            tr_y.append(y)
    return train, tr_y, test, te_y


# -- label and group rules (pure: paths in, names out) ---------------------------------------------------------
def megaglest_role(path: str) -> Optional[str]:
    """The role of a megaglest unit sound from its file name: the last ``_``-separated word of the stem with
    trailing digits dropped (``warrior_attack3.wav`` → ``attack``, ``ack_2.ogg`` → ``ack``), None if it is
    not one of :data:`ROLES`."""
    stem = re.sub(r"[\d_\s-]+$", "", Path(path).stem.lower())
    role = stem.rsplit("_", 1)[-1]
    return role if role in ROLES else None


def megaglest_unit(path: str) -> str:
    """``.../factions/<faction>/units/<unit>/sounds/x.wav`` → ``<faction>/<unit>``."""
    parts = Path(path).parts
    i = parts.index("units")
    return f"{parts[i - 1]}/{parts[i + 1]}"


def hedgewars_phrase(path: str) -> str:
    """A hedgewars voice file's phrase: its stem, lower-cased, without trailing digits (``Ow3.ogg`` → ``ow``)."""
    return re.sub(r"\d+$", "", Path(path).stem.lower())


def espeak_speaker(variant: str) -> Tuple[str, int, int]:
    """The speaker voiced with a variant: one of :data:`ACCENTS`, a pitch (30..69) and a speed (140..209 words per
    minute), all fixed by hashes of the variant's name → (accent, pitch, speed)."""
    accent = min(ACCENTS, key=lambda a: _hash(f"{variant}:{a}"))
    return accent, 30 + _hash(f"p:{variant}") % 40, 140 + _hash(f"s:{variant}") % 70


# -- reading the packages --------------------------------------------------------------------------------------
def _need(path: Path, package: str) -> None:
    if not path.is_dir():
        raise SystemExit(f"{path} is missing: apt-get install {package}")


def _long_enough(path: str) -> bool:
    import soundfile as sf  # lazy: only when a set is built

    info = sf.info(path)
    return info.frames >= MIN_SECONDS * info.samplerate


def _digest(path: str) -> str:
    return hashlib.blake2b(Path(path).read_bytes(), digest_size=16).hexdigest()


def megaglest_files() -> Tuple[List[str], List[str], List[str]]:
    _need(MEGAGLEST_DIR, "megaglest-data")
    seen = set()
    files, labels, groups = [], [], []
    for p in sorted(MEGAGLEST_DIR.glob("*/units/*/sounds/*")):
        role = megaglest_role(str(p))
        if role is None or p.suffix.lower() not in (".wav", ".ogg"):
            continue
        digest = _digest(str(p))
        if digest in seen or not _long_enough(str(p)):
            continue
        seen.add(digest)
        files.append(str(p))
        labels.append(role)
        groups.append(megaglest_unit(str(p)))
    return files, labels, groups


def hedgewars_files() -> Tuple[List[str], List[str], List[str]]:
    _need(HEDGEWARS_DIR, "hedgewars-data")
    found = [p for p in sorted(HEDGEWARS_DIR.glob("*/*.ogg")) if _long_enough(str(p))]
    packs_of: Dict[str, set] = defaultdict(set)
    for p in found:
        packs_of[_digest(str(p))].add(p.parent.name)
    keep = [p for p in found if len(packs_of[_digest(str(p))]) == 1]
    return [str(p) for p in keep], [p.parent.name for p in keep], [hedgewars_phrase(str(p)) for p in keep]


def cache_dir() -> Path:
    return Path(os.environ.get("ANYCL_BENCH_CACHE", Path.home() / ".cache" / "anycl-bench"))


def parse_variants(listing: str) -> List[str]:
    """The variant names in espeak-ng's ``--voices=variant`` listing: each line's file (``!v/m1``) without its
    folder, sorted, once each (a voice name with spaces does not shift it; the header has none)."""
    return sorted({w[3:] for line in listing.splitlines() for w in line.split() if w.startswith("!v/")})


def espeak_variants(espeak: str) -> List[str]:
    """The variant names the installed espeak-ng ships."""
    return parse_variants(
        subprocess.run([espeak, "--voices=variant"], capture_output=True, text=True, check=True).stdout
    )


def espeak_files(root: Optional[Path] = None) -> Tuple[List[str], List[str], List[str]]:
    """Speak every word with every speaker of every variant into ``root`` (made once; existing files are kept)."""
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        raise SystemExit("espeak-ng is missing: apt-get install espeak-ng")
    root = root or cache_dir() / "espeak-words"
    root.mkdir(parents=True, exist_ok=True)
    files, labels, groups = [], [], []
    for variant in espeak_variants(espeak):
        accent, pitch, speed = espeak_speaker(variant)
        for word in WORDS:
            path = root / f"{variant}__{accent}__p{pitch}_s{speed}__{word}.wav"
            if not path.exists():
                tmp = path.with_suffix(".tmp.wav")
                cmd = [espeak, "-v", f"{accent}+{variant}", "-p", str(pitch), "-s", str(speed), "-w", str(tmp)]
                subprocess.run([*cmd, word], check=True, capture_output=True)
                tmp.replace(path)
            files.append(str(path))
            labels.append(word)
            groups.append(variant)
    return files, labels, groups
