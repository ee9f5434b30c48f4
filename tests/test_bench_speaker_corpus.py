"""benchmarks/audio_speaker_corpus.py (issue 29 round 8): who speaks which clip, without Festival or OpenArena here."""

import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import audio_speaker_corpus as asc  # noqa: E402


def test_scheme_strings_escape_quotes_and_backslashes():
    assert asc._scheme_string('say "hi" \\ there') == '"say \\"hi\\" \\\\ there"'


def test_each_voice_reads_its_own_sentences_and_characters_are_labelled_by_folder(monkeypatch, tmp_path):
    read = {}

    def fake_synthesise(voice, texts, folder):
        read[voice] = list(texts)
        return [folder / f"{i:04d}.wav" for i in range(len(texts))]

    player = "openarena/pak2-players/sound/player"
    oa = [f"/c/{player}/{c}/{n}.wav" for c in ("sarge", "liz", "footsteps", "announcer", "player") for n in ("a", "b")]
    oa.append("/c/openarena/pak0/sound/weapons/rocket.wav")  # not a player's voice
    monkeypatch.setattr(asc, "sentences", lambda: [f"sentence number {i} is here" for i in range(100)])
    monkeypatch.setattr(asc, "synthesise", fake_synthesise)
    monkeypatch.setattr(asc, "openarena_files", lambda: oa)
    monkeypatch.setattr(asc, "cache_dir", lambda: tmp_path / "pretrain-corpus")
    monkeypatch.setattr(asc.subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(a, 0))
    files, labels = asc.corpus(per_voice=3)
    assert set(read) == set(asc.VOICES) and all(len(t) == 3 for t in read.values())
    every = [t for texts in read.values() for t in texts]
    assert len(set(every)) == len(every)  # no sentence read by two voices: a voice's clips share only the speaker
    assert sorted(x for x in labels if x.startswith("openarena/")) == ["openarena/liz"] * 2 + ["openarena/sarge"] * 2
    assert len(files) == len(labels) == 3 * len(asc.VOICES) + 4
    assert labels[:3] == [f"festival/{asc.VOICES[0]}"] * 3


def test_too_few_sentences_for_the_voices_is_refused_with_the_numbers(monkeypatch):
    monkeypatch.setattr(asc, "sentences", lambda: ["one two three four five six"] * 5)
    monkeypatch.setattr(asc.subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(a, 0))
    with pytest.raises(
        SystemExit, match=f"FOLDOC gives 5 sentences, fewer than 1 for each of {len(asc.VOICES)} voices"
    ):
        asc.corpus(per_voice=1)
