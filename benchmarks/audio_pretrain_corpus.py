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

Those seven are the default (the shipped weights' corpus). Two more can be asked for by name (issue 29 round 18):

- ``games2``: the sounds, voice lines and music of ten more game packages (:data:`GAMES2`: btanks, pingus, boswars,
  xmoto, frozen-bubble, extremetuxracer, scorched3d, lincity-ng, bzflag, tuxpaint).
- ``festival-words``: every Festival voice of ``audio_speaker_corpus`` reading single words
  (``audio_word_corpus``, 160 words none of which is one of the protocol's ten espeak words), unlabelled here: word-
  level speech from 13 voices.

Extracted files go to ``$ANYCL_BENCH_CACHE`` (default ``~/.cache/anycl-bench``) / pretrain-corpus. Clips shorter than
0.1 s are left out. A missing package stops with the ``apt-get install`` line that brings it.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Dict, List, Sequence

from audiosets import ASTERISK_DIR, ASTERISK_LANGUAGES

# the Festival voices (and FOLDOC, whose sentences and words they read): audio_speaker_corpus's and festival-words'
FESTIVAL_PACKAGES = (
    "festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts festvox-italp16k festvox-itapc16k "
    "festvox-ca-ona-hts festvox-czech-dita festvox-czech-krb festvox-czech-machac festvox-czech-ph "
    "festvox-suopuhe-lj festvox-suopuhe-mv festvox-ru dict-foldoc"
)
PACKAGES = {
    "asterisk": "asterisk-core-sounds-en-wav asterisk-core-sounds-es-wav asterisk-core-sounds-fr-wav "
    "asterisk-core-sounds-it-wav asterisk-core-sounds-ru-wav",
    "wesnoth": "wesnoth-1.16-data",
    "openarena": "openarena-data",
    "warzone2100": "warzone2100-data",
    "freeciv": "freeciv-data",
    "lmms": "lmms-common",
    "hydrogen": "hydrogen-drumkits hydrogen-data",
    "games2": "btanks-data pingus-data boswars-data xmoto-data frozen-bubble-data extremetuxracer-data "
    "scorched3d-data lincity-ng-data bzflag-data tuxpaint-data",
    "festival-words": FESTIVAL_PACKAGES,
}
DEFAULT_SOURCES = ("asterisk", "wesnoth", "openarena", "warzone2100", "freeciv", "lmms", "hydrogen")
# games2: each package's folder of audio
GAMES2 = {
    "btanks-data": "/usr/share/games/btanks",
    "pingus-data": "/usr/share/games/pingus",
    "boswars-data": "/usr/share/games/boswars",
    "xmoto-data": "/usr/share/games/xmoto",
    "frozen-bubble-data": "/usr/share/games/frozen-bubble",
    "extremetuxracer-data": "/usr/share/games/etr",
    "scorched3d-data": "/usr/share/games/scorched3d",
    "lincity-ng-data": "/usr/share/games/lincity-ng",
    "bzflag-data": "/usr/share/games/bzflag",
    "tuxpaint-data": "/usr/share/tuxpaint/sounds",
}
FESTIVAL_WORDS = 160
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


def _need(path: Path, source: str, package: str = "") -> None:
    if not path.exists():  # a folder, or an archive file (warzone2100's base.wz)
        raise SystemExit(f"{path} is missing: apt-get install {package or PACKAGES[source]}")


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


def _asterisk() -> List[str]:
    for lang in ASTERISK_LANGUAGES:
        _need(ASTERISK_DIR / lang, "asterisk")
    real = set()
    for lang in ASTERISK_LANGUAGES:
        real |= {f for f in _files(ASTERISK_DIR / lang) if "/silence/" not in f}
    return sorted(real)


def _folder(source: str, root: Path) -> List[str]:
    _need(root, source)
    return _files(root)


def _warzone2100() -> List[str]:
    _need(WARZONE_ARCHIVE, "warzone2100")
    return _extract(WARZONE_ARCHIVE, "audio/", cache_dir() / "warzone2100")


def _games2() -> List[str]:
    out: List[str] = []
    for package, root in GAMES2.items():
        _need(Path(root), "games2", package)
        out += _files(Path(root))
    return sorted(set(out))


def _festival_words() -> List[str]:
    import audio_word_corpus  # it imports this module: imported on use

    return audio_word_corpus.corpus(FESTIVAL_WORDS)[0]


READERS = {
    "asterisk": _asterisk,
    "wesnoth": lambda: _folder("wesnoth", WESNOTH_DIR),
    "openarena": openarena_files,
    "warzone2100": _warzone2100,
    "freeciv": lambda: _folder("freeciv", FREECIV_DIR),
    "lmms": lambda: _folder("lmms", LMMS_DIR),
    "hydrogen": lambda: _folder("hydrogen", HYDROGEN_DIR),
    "games2": _games2,
    "festival-words": _festival_words,
}


def sources(names: Sequence[str] = DEFAULT_SOURCES) -> Dict[str, List[str]]:
    """Each named source's audio files (before the length filter); the sources in :data:`READERS`' order whatever
    order they are named in, so the default reads exactly what it read before the optional sources existed."""
    unknown = [n for n in names if n not in READERS]
    if unknown:
        raise SystemExit(f"unknown pretraining source(s) {unknown}: choose from {sorted(READERS)}")
    out = {name: READERS[name]() for name in READERS if name in names}
    for name, files in out.items():
        bad = [f for f in files if any(root in f for root in PROTOCOL_ROOTS)]
        if bad:
            raise RuntimeError(f"{name}: {len(bad)} files come from a protocol set's package, e.g. {bad[0]}")
    return out


def corpus(min_seconds: float = MIN_SECONDS, names: Sequence[str] = DEFAULT_SOURCES) -> Dict[str, List[str]]:
    """:func:`sources` without the clips soundfile cannot read or shorter than ``min_seconds``."""
    import soundfile as sf

    kept: Dict[str, List[str]] = {}
    for name, files in sources(names).items():
        kept[name] = []
        for f in files:
            try:
                info = sf.info(f)
            except RuntimeError:
                continue
            if info.frames >= min_seconds * info.samplerate:
                kept[name].append(f)
    return kept
