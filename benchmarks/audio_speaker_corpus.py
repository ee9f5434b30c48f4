"""Audio labelled by speaker, for a speaker-supervised stage after the unlabelled pretraining of
:mod:`pretrain_audio` (issue 29 round 8). Like :mod:`audio_pretrain_corpus`, none of it comes from the packages that
issue 29's protocol sets are built from.

- ``festival``: English sentences from FOLDOC (``dict-foldoc``) read by each of the Festival voices that speak Latin
  script here (``festvox-*``: diphone and HTS voices recorded from 13 different people: American and Italian English,
  Catalan, Czech adult and child, Finnish, Russian); each voice reads its own sentences, so two clips of one voice
  share the speaker, never the words.
- ``openarena``: the player characters' voices of ``openarena-data`` (pain, death, taunt and jump sounds, about 13
  per character), labelled by character; the footsteps, announcer and generic player folders are left out.

Synthesised files go to ``$ANYCL_BENCH_CACHE`` / speaker-corpus (made once; ``corpus()`` reuses them).
"""

from __future__ import annotations

import gzip
import random
import re
import subprocess
from pathlib import Path
from typing import Dict, List, Tuple

import audio_speakers_more
from audio_pretrain_corpus import FESTIVAL_PACKAGES, openarena_files, speakers_dir

VOICES = (
    "kal_diphone",
    "ked_diphone",
    "cmu_us_slt_arctic_hts",
    "lp_diphone",
    "pc_diphone",
    "upc_ca_ona_hts",
    "czech_dita",
    "czech_krb",
    "czech_machac",
    "czech_ph",
    "suo_fi_lj_diphone",
    "hy_fi_mv_diphone",
    "msu_ru_nsh_clunits",
)
PACKAGES = FESTIVAL_PACKAGES
FOLDOC = Path("/usr/share/dictd/foldoc.dict.dz")
OPENARENA_LEFT_OUT = {"footsteps", "announcer", "player"}
MORE = ("asterisk",)  # further speaker sources (audio_speakers_more)


def sentences() -> List[str]:
    """FOLDOC's plain sentences of 6 to 14 words (letters, spaces, commas, apostrophes), in a fixed shuffled order."""
    if not FOLDOC.exists():
        raise SystemExit(f"{FOLDOC} is missing: apt-get install -y dict-foldoc")
    text = re.sub(r"\s+", " ", gzip.open(FOLDOC, "rt", errors="ignore").read())
    found = [s[:-1] for s in re.split(r"(?<=[.!?])\s+", text) if re.fullmatch(r"[A-Za-z ,']+\.", s)]
    found = sorted({s for s in found if 6 <= len(s.split()) <= 14})
    random.Random(0).shuffle(found)
    return found


def _scheme_string(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def synthesise(voice: str, texts: List[str], folder: Path) -> List[Path]:
    """``texts`` read by Festival's ``voice`` into ``folder``/NNNN.wav, in one Festival process (made once)."""
    out = [folder / f"{i:04d}.wav" for i in range(len(texts))]
    if all(p.exists() for p in out):
        return out
    folder.mkdir(parents=True, exist_ok=True)
    lines = [f"(voice_{voice})"]
    lines += [
        f"(utt.save.wave (utt.synth (Utterance Text {_scheme_string(t)})) {_scheme_string(str(p))} 'riff)"
        for t, p in zip(texts, out)
    ]
    script = folder / "make.scm"
    script.write_text("\n".join(lines) + "\n")
    proc = subprocess.run(["festival", "-b", str(script)], capture_output=True, text=True)
    missing = [p for p in out if not p.exists()]
    if proc.returncode != 0 or missing:
        raise SystemExit(f"festival ({voice}) made {len(out) - len(missing)} of {len(out)} files: {proc.stderr[-500:]}")
    return out


def corpus(per_voice: int = 80, more: Tuple[str, ...] = (), per_speaker: int = 120) -> Tuple[List[str], List[str]]:
    """(files, speaker labels): ``per_voice`` sentences per Festival voice, and every OpenArena character's voice;
    ``more=("asterisk",)`` adds :mod:`audio_speakers_more`'s seven asterisk speakers, ``per_speaker`` clips each."""
    unknown = sorted(set(more) - set(MORE))
    if unknown:
        raise SystemExit(f"unknown speaker source(s) {unknown}: choose from {list(MORE)}")
    try:
        subprocess.run(["festival", "--version"], capture_output=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        raise SystemExit(f"festival is missing: apt-get install -y --no-install-recommends {PACKAGES}") from None
    texts = sentences()
    if len(texts) < per_voice * len(VOICES):
        raise SystemExit(
            f"FOLDOC gives {len(texts)} sentences, fewer than {per_voice} for each of {len(VOICES)} voices"
        )
    files: List[str] = []
    labels: List[str] = []
    root = speakers_dir() / "festival"
    for k, voice in enumerate(VOICES):
        own = texts[k * per_voice : (k + 1) * per_voice]
        made = synthesise(voice, own, root / voice)
        files += [str(p) for p in made]
        labels += [f"festival/{voice}"] * len(made)
    by_character: Dict[str, List[str]] = {}
    for f in openarena_files():
        parts = Path(f).parts
        if "player" in parts[:-2]:
            character = parts[-2]
            if character not in OPENARENA_LEFT_OUT:
                by_character.setdefault(character, []).append(f)
    for character, found in sorted(by_character.items()):
        files += sorted(found)
        labels += [f"openarena/{character}"] * len(found)
    if "asterisk" in more:
        extra_files, extra_labels = audio_speakers_more.asterisk_speakers(per_speaker)
        files += extra_files
        labels += extra_labels
    return files, labels
