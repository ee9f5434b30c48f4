"""Audio labelled by the word spoken, for the supervised stage after :mod:`pretrain_audio` (issue 29 round 9): every
Festival voice of :mod:`audio_speaker_corpus` reads the same single words, so two clips of one word share the word and
never the voice (or, across the Czech, Finnish, Russian, Catalan and Italian voices, the pronunciation). None of it
comes from the packages issue 29's protocol sets are built from, and none of the protocol's ten espeak words is read.

The words: FOLDOC's most frequent words of 4 to 9 letters, in its plain sentences (:func:`audio_speaker_corpus.sentences`).
Synthesised files go to ``$ANYCL_BENCH_CACHE`` / speaker-corpus / words (made once).
"""

from __future__ import annotations

import collections
import re
from typing import List, Tuple

from audio_pretrain_corpus import speakers_dir
from audio_speaker_corpus import VOICES, sentences, synthesise

# espeak-words' vocabulary (benchmarks/audiosets_protocol.py): never read here
PROTOCOL_WORDS = {"yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"}


def words(n: int) -> List[str]:
    """The ``n`` most frequent words of 4 to 9 letters in FOLDOC's plain sentences (ties alphabetical)."""
    counts = collections.Counter(w.lower() for s in sentences() for w in re.findall(r"[A-Za-z]+", s))
    ranked = sorted((w for w in counts if 4 <= len(w) <= 9 and w not in PROTOCOL_WORDS), key=lambda w: (-counts[w], w))
    if len(ranked) < n:
        raise SystemExit(f"FOLDOC gives {len(ranked)} words of 4 to 9 letters, fewer than {n}")
    return ranked[:n]


def corpus(n: int = 160) -> Tuple[List[str], List[str]]:
    """(files, labels ``word/<w>``): each Festival voice reading each of the ``n`` words."""
    chosen = words(n)
    files: List[str] = []
    labels: List[str] = []
    root = speakers_dir() / "words"
    for voice in VOICES:
        made = synthesise(voice, chosen, root / voice)
        files += [str(p) for p in made]
        labels += [f"word/{w}" for w in chosen]
    return files, labels
