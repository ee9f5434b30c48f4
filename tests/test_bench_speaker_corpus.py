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
    monkeypatch.setattr(asc, "speakers_dir", lambda: tmp_path / "speaker-corpus")
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


def test_asterisk_speakers_are_named_by_their_folders_and_capped(monkeypatch, tmp_path):
    import audio_speakers_more as more

    sounds = tmp_path / "sounds"
    for folder, n in (("en_US_f_Allison", 5), ("es_MX_f_Allison", 4), ("it_IT_m_Carlo", 3), ("digits", 9)):
        (sounds / folder).mkdir(parents=True)
        for i in range(n):
            (sounds / folder / f"p{i}.wav").write_bytes(b"")
    (sounds / "en").symlink_to(sounds / "en_US_f_Allison")  # the alternatives' links are not read twice
    monkeypatch.setattr(more, "ASTERISK_DIR", sounds)
    found = more.core_speakers()
    assert {k: len(v) for k, v in found.items()} == {"Allison": 9, "Carlo": 3}  # one person in two languages
    monkeypatch.setattr(more, "prompt_speakers", lambda: {"Menardi": [f"/m/{i}.wav" for i in range(7)]})
    files, labels = more.asterisk_speakers(per_speaker=4)
    assert labels == ["asterisk/Allison"] * 4 + ["asterisk/Carlo"] * 3 + ["asterisk/Menardi"] * 4
    assert files[:4] == sorted(files[:4]) and set(files[:4]) <= set(found["Allison"])
    assert more.capped(found["Allison"], 4) == files[:4]  # the same draw every time
    assert more.capped(["b", "a"], 4) == ["a", "b"]


def test_gsm_prompts_are_decoded_once_and_wav_files_kept(monkeypatch, tmp_path):
    import audio_speakers_more as more

    calls = []

    def fake_sox(cmd, **kwargs):
        calls.append(cmd)
        Path(cmd[-1]).write_bytes(b"RIFF")
        return subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(more.subprocess, "run", fake_sox)
    gsm = tmp_path / "in" / "vm-hello.gsm"
    out = more.as_wav(gsm, tmp_path / "out")
    assert out == tmp_path / "out" / "vm-hello.wav" and out.read_bytes() == b"RIFF"
    assert calls[0][:2] == ["sox", str(gsm)] and calls[0][-1].endswith(".part.wav")
    assert more.as_wav(gsm, tmp_path / "out") == out and len(calls) == 1  # made once
    wav = tmp_path / "in" / "a.wav"
    assert more.as_wav(wav, tmp_path / "out") == wav


def test_an_unknown_speaker_source_is_refused_with_the_choices():
    with pytest.raises(SystemExit, match=r"unknown speaker source\(s\) \['festvox'\]: choose from \['asterisk'\]"):
        asc.corpus(more=("festvox",))


def test_every_voice_reads_the_same_words_labelled_by_the_word_never_a_protocol_word(monkeypatch, tmp_path):
    import audio_word_corpus as awc

    read = {}

    def fake_synthesise(voice, texts, folder):
        read[voice] = list(texts)
        return [folder / f"{i:04d}.wav" for i in range(len(texts))]

    text = ["Stop the data flow, stop it", "Data go down the right pipe", "Some data here"]
    monkeypatch.setattr(awc, "sentences", lambda: text)
    monkeypatch.setattr(awc, "synthesise", fake_synthesise)
    monkeypatch.setattr(awc, "speakers_dir", lambda: tmp_path / "speaker-corpus")
    assert awc.words(4) == ["data", "flow", "here", "pipe"]  # 'stop', 'down', 'right' are espeak-words' own
    files, labels = awc.corpus(2)
    assert set(read) == set(awc.VOICES) and all(t == ["data", "flow"] for t in read.values())
    assert labels == ["word/data", "word/flow"] * len(awc.VOICES) and len(set(files)) == len(files)
    with pytest.raises(SystemExit, match="FOLDOC gives 5 words of 4 to 9 letters, fewer than 6"):
        awc.words(6)
