"""Unlabelled audio for pretraining an audio encoder before issue 29's protocol fine-tunes it: Debian packages that
**none of the protocol's sets come from** (sonic-pi-samples, espeak-ng, megaglest-data and hedgewars-data are left
out), so a set's dev and test clips are never heard in pretraining.

- ``asterisk``: the recorded telephone prompts of ``asterisk-core-sounds-{en,es,fr,it,ru}-wav`` (8 kHz WAV, four
  speakers; each real file once, however many links name it).
- ``wesnoth``: the sound effects and ambient loops of ``wesnoth-1.16-data`` (Ogg).
- ``openarena``: the player voices (24 characters), weapon, item and announcer sounds of ``openarena-data`` (WAV
  inside its ``.pk3`` zip archives, extracted once).
- ``warzone2100``: the unit, weapon and speech sounds of ``warzone2100-data`` (Ogg inside ``base.wz``, extracted
  once).
- ``freeciv``: ``freeciv-data``'s sounds (Ogg).
- ``lmms``: the instrument, drum, loop and effect samples of ``lmms-common`` (Ogg/WAV).
- ``hydrogen``: the drum kits of ``hydrogen-drumkits`` and ``hydrogen-data`` (FLAC/WAV; each kit's hits at several
  velocities).

Extracted files go to ``$ANYCL_BENCH_CACHE`` (default ``~/.cache/anycl-bench``) / pretrain-corpus. Clips shorter than
0.1 s are left out. A missing package stops with the ``apt-get install`` line that brings it.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Dict, List

from audiosets import ASTERISK_DIR, ASTERISK_LANGUAGES

PACKAGES = {
    "asterisk": "asterisk-core-sounds-en-wav asterisk-core-sounds-es-wav asterisk-core-sounds-fr-wav "
    "asterisk-core-sounds-it-wav asterisk-core-sounds-ru-wav",
    "wesnoth": "wesnoth-1.16-data",
    "openarena": "openarena-data",
    "warzone2100": "warzone2100-data",
    "freeciv": "freeciv-data",
    "lmms": "lmms-common",
    "hydrogen": "hydrogen-drumkits hydrogen-data",
}
WESNOTH_DIR = Path("/usr/share/games/wesnoth")
OPENARENA_DIR = Path("/usr/share/games/openarena/baseoa")
WARZONE_ARCHIVE = Path("/usr/share/games/warzone2100/base.wz")
FREECIV_DIR = Path("/usr/share/games/freeciv")
LMMS_DIR = Path("/usr/share/lmms/samples")
HYDROGEN_DIR = Path("/usr/share/hydrogen/data/drumkits")
AUDIO = (".wav", ".ogg", ".flac")
MIN_SECONDS = 0.1
# the protocol's packages: pretraining must not read them
PROTOCOL_ROOTS = ("/usr/share/sonic-pi", "/usr/share/games/megaglest", "/usr/share/games/hedgewars", "espeak")


def cache_dir() -> Path:
    return Path(os.environ.get("ANYCL_BENCH_CACHE", Path.home() / ".cache" / "anycl-bench")) / "pretrain-corpus"


def speakers_dir() -> Path:
    """Where the speaker-labelled audio (``audio_speaker_corpus``, ``audio_word_corpus``, ``audio_speakers_more``) is
    made or unpacked once: beside :func:`cache_dir`."""
    return cache_dir().parent / "speaker-corpus"


def _need(path: Path, source: str) -> None:
    if not path.exists():  # a folder, or an archive file (warzone2100's base.wz)
        raise SystemExit(f"{path} is missing: apt-get install {PACKAGES[source]}")


def _extract(archive: Path, prefix: str, into: Path) -> List[str]:
    """The audio members of a zip archive (``.pk3``, ``.wz``) written under ``into`` once; their paths."""
    out = []
    with zipfile.ZipFile(archive) as z:
        for name in sorted(z.namelist()):
            if not name.lower().endswith(AUDIO) or not name.startswith(prefix):
                continue
            target = into / archive.stem / name
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                tmp = target.with_name(target.name + ".part")
                tmp.write_bytes(z.read(name))
                tmp.replace(target)
            out.append(str(target))
    return out


def _files(root: Path) -> List[str]:
    return sorted({str(p.resolve()) for p in root.rglob("*") if p.suffix.lower() in AUDIO and p.is_file()})


def openarena_files() -> List[str]:
    """OpenArena's sounds, extracted once from its ``.pk3`` zip archives into the cache."""
    _need(OPENARENA_DIR, "openarena")
    into = cache_dir() / "openarena"
    return [f for pk3 in sorted(OPENARENA_DIR.glob("*.pk3")) for f in _extract(pk3, "sound/", into)]


def sources() -> Dict[str, List[str]]:
    """Each source's audio files (before the length filter), in a fixed order."""
    out: Dict[str, List[str]] = {}
    for lang in ASTERISK_LANGUAGES:
        _need(ASTERISK_DIR / lang, "asterisk")
    real = set()
    for lang in ASTERISK_LANGUAGES:
        real |= {f for f in _files(ASTERISK_DIR / lang) if "/silence/" not in f}
    out["asterisk"] = sorted(real)
    _need(WESNOTH_DIR, "wesnoth")
    out["wesnoth"] = _files(WESNOTH_DIR)
    out["openarena"] = openarena_files()
    _need(WARZONE_ARCHIVE, "warzone2100")
    out["warzone2100"] = _extract(WARZONE_ARCHIVE, "audio/", cache_dir() / "warzone2100")
    _need(FREECIV_DIR, "freeciv")
    out["freeciv"] = _files(FREECIV_DIR)
    _need(LMMS_DIR, "lmms")
    out["lmms"] = _files(LMMS_DIR)
    _need(HYDROGEN_DIR, "hydrogen")
    out["hydrogen"] = _files(HYDROGEN_DIR)
    for name, files in out.items():
        bad = [f for f in files if any(root in f for root in PROTOCOL_ROOTS)]
        if bad:
            raise RuntimeError(f"{name}: {len(bad)} files come from a protocol set's package, e.g. {bad[0]}")
    return out


def corpus(min_seconds: float = MIN_SECONDS) -> Dict[str, List[str]]:
    """:func:`sources` without the clips soundfile cannot read or shorter than ``min_seconds``."""
    import soundfile as sf

    kept: Dict[str, List[str]] = {}
    for name, files in sources().items():
        kept[name] = []
        for f in files:
            try:
                info = sf.info(f)
            except RuntimeError:
                continue
            if info.frames >= min_seconds * info.samplerate:
                kept[name].append(f)
    return kept
