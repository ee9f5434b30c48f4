"""More recorded speakers for the speaker-supervised stage (issue 29 round 9), beside :mod:`audio_speaker_corpus`'s
Festival voices and OpenArena characters; none from the packages issue 29's protocol sets are built from.

- ``asterisk``: the telephone prompts of ``asterisk-core-sounds-{en,es,fr,it,ru}-wav``, labelled by the speaker that
  the folder names (``en_US_f_Allison`` and ``es_MX_f_Allison`` are one person, Allison: four speakers), and three more
  prompt sets recorded by other people: ``asterisk-prompt-es-co`` (Colombian Spanish), ``asterisk-prompt-fr-armelle``
  (Armelle Desjardins) and ``asterisk-prompt-it-menardi-wav``. Those three are not installed (they would write into
  the folders of the core sounds): ``apt-get download`` fetches each once into the cache and ``dpkg-deb -x`` unpacks it
  there; their GSM files are decoded to WAV with ``sox``.

Each speaker keeps at most ``per_speaker`` clips (a seeded draw from its sorted files), so a speaker with 600 prompts
does not outweigh a Festival voice with 80.
"""

from __future__ import annotations

import random
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Dict, List, Tuple

from audio_pretrain_corpus import PACKAGES, _files, speakers_dir
from audiosets import ASTERISK_DIR

# prompt sets recorded by other people than the core sounds' speakers: package -> speaker label
PROMPT_PACKAGES = {
    "asterisk-prompt-es-co": "es-co",
    "asterisk-prompt-fr-armelle": "Armelle",
    "asterisk-prompt-it-menardi-wav": "Menardi",
}
CORE_FOLDER = re.compile(r"^[a-z]{2}_[A-Z]{2}_[fm]_(\w+)$")  # en_US_f_Allison -> Allison


def core_speakers() -> Dict[str, List[str]]:
    """The core sounds' files by the speaker their folder names (symbolic links resolved, each file once)."""
    if not ASTERISK_DIR.exists():
        raise SystemExit(f"{ASTERISK_DIR} is missing: apt-get install {PACKAGES['asterisk']}")
    out: Dict[str, set] = {}
    for folder in sorted(ASTERISK_DIR.iterdir()):
        found = CORE_FOLDER.match(folder.name)
        if found and folder.is_dir() and not folder.is_symlink():
            out.setdefault(found.group(1), set()).update(f for f in _files(folder) if "/silence/" not in f)
    if not out:
        raise SystemExit(
            f"no <lang>_<COUNTRY>_<f|m>_<name> folders in {ASTERISK_DIR}: apt-get install {PACKAGES['asterisk']}"
        )
    return {name: sorted(files) for name, files in out.items()}


def unpacked(package: str) -> Path:
    """``package``'s files, unpacked once under the cache (``apt-get download`` and ``dpkg-deb -x``; not installed)."""
    into = speakers_dir() / "debs" / package
    if (into / ".done").exists():
        return into
    with tempfile.TemporaryDirectory() as tmp:
        got = subprocess.run(["apt-get", "download", package], cwd=tmp, capture_output=True, text=True)
        debs = list(Path(tmp).glob(f"{package}_*.deb"))
        if got.returncode != 0 or not debs:
            raise SystemExit(f"apt-get download {package} failed (run apt-get update once): {got.stderr[-300:]}")
        into.mkdir(parents=True, exist_ok=True)
        subprocess.run(["dpkg-deb", "-x", str(debs[0]), str(into)], check=True)
    (into / ".done").write_text("")
    return into


def as_wav(path: Path, into: Path) -> Path:
    """A GSM prompt decoded to 8 kHz WAV with sox (once); a WAV file as it is."""
    if path.suffix.lower() != ".gsm":
        return path
    out = into / path.with_suffix(".wav").name
    if not out.exists():
        into.mkdir(parents=True, exist_ok=True)
        part = out.with_name(out.stem + ".part.wav")
        try:
            subprocess.run(["sox", str(path), "-r", "8000", str(part)], check=True, capture_output=True)
        except OSError:
            raise SystemExit("sox is missing: apt-get install -y sox") from None
        part.replace(out)
    return out


def prompt_speakers() -> Dict[str, List[str]]:
    """The three extra prompt sets' clips (``sounds/<folder>/...``, digits and letters included) by speaker."""
    out: Dict[str, List[str]] = {}
    for package, speaker in PROMPT_PACKAGES.items():
        root = unpacked(package) / "usr" / "share" / "asterisk" / "sounds"
        found = sorted(p for p in root.rglob("*") if p.suffix.lower() in (".gsm", ".wav") and p.is_file())
        decoded = speakers_dir() / "decoded" / package
        out[speaker] = [str(as_wav(p, decoded / p.parent.relative_to(root))) for p in found]
    return out


def capped(files: List[str], per_speaker: int, seed: int = 0) -> List[str]:
    """At most ``per_speaker`` of ``files``: a seeded draw, returned sorted."""
    if len(files) <= per_speaker:
        return sorted(files)
    return sorted(random.Random(seed).sample(sorted(files), per_speaker))


def asterisk_speakers(per_speaker: int = 120) -> Tuple[List[str], List[str]]:
    """(files, labels) of the seven asterisk speakers, each capped at ``per_speaker`` clips."""
    files: List[str] = []
    labels: List[str] = []
    for name, found in {**core_speakers(), **prompt_speakers()}.items():
        kept = capped(found, per_speaker)
        files += kept
        labels += [f"asterisk/{name}"] * len(kept)
    return files, labels
