"""benchmarks/audio_pretrain_corpus.py: which sources a pretraining run reads (issue 29 rounds 7 and 18), without the
Debian packages here: folders and readers are replaced by small ones the tests make."""

import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import audio_pretrain_corpus as apc  # noqa: E402


def _wav(path: Path, seconds: float) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.zeros(int(16000 * seconds), dtype="float32"), 16000)
    return str(path)


def test_the_default_is_the_shipped_weights_seven_sources_and_every_source_has_its_packages():
    assert apc.DEFAULT_SOURCES == ("asterisk", "wesnoth", "openarena", "warzone2100", "freeciv", "lmms", "hydrogen")
    assert set(apc.READERS) == set(apc.DEFAULT_SOURCES) | {"games2", "festival-words"}
    assert set(apc.PACKAGES) == set(apc.READERS)  # each source can name what apt-get brings it
    assert set(apc.GAMES2) == set(apc.PACKAGES["games2"].split())


def test_only_the_named_sources_are_read(monkeypatch):
    read = []
    for name in apc.READERS:
        monkeypatch.setitem(apc.READERS, name, lambda name=name: read.append(name) or [f"/x/{name}.wav"])
    found = apc.sources(["games2", "lmms"])
    assert found == {"lmms": ["/x/lmms.wav"], "games2": ["/x/games2.wav"]}
    assert read == list(found) == ["lmms", "games2"]  # the module's order, whatever order they are named in
    read.clear()
    assert list(apc.sources()) == list(apc.DEFAULT_SOURCES)
    assert read == list(apc.DEFAULT_SOURCES)  # the extra sources are never read unless asked for


def test_an_unknown_source_is_refused_with_the_choices():
    with pytest.raises(SystemExit, match=r"unknown pretraining source\(s\) \['sonic-pi'\]: choose from .*games2"):
        apc.sources(["lmms", "sonic-pi"])


def test_games2_reads_each_package_folder_and_a_missing_one_names_its_package(monkeypatch, tmp_path):
    a = _wav(tmp_path / "a" / "sounds" / "boom.wav", 0.5)
    b = _wav(tmp_path / "b" / "music" / "song.ogg.wav", 0.5)
    (tmp_path / "a" / "readme.txt").write_text("not audio")
    monkeypatch.setattr(apc, "GAMES2", {"a-data": str(tmp_path / "a"), "b-data": str(tmp_path / "b")})
    assert apc.sources(["games2"])["games2"] == sorted([a, b])
    monkeypatch.setattr(apc, "GAMES2", {"a-data": str(tmp_path / "a"), "c-data": str(tmp_path / "c")})
    with pytest.raises(SystemExit, match=rf"{tmp_path / 'c'} is missing: apt-get install c-data$"):
        apc.sources(["games2"])


def test_festival_words_are_the_word_corpus_files_without_their_labels(monkeypatch):
    import audio_word_corpus

    asked = []

    def fake(n):
        asked.append(n)
        return ["/w/kal/0000.wav", "/w/kal/0001.wav"], ["word/computer", "word/program"]

    monkeypatch.setattr(audio_word_corpus, "corpus", fake)
    assert apc.sources(["festival-words"]) == {"festival-words": ["/w/kal/0000.wav", "/w/kal/0001.wav"]}
    assert asked == [apc.FESTIVAL_WORDS]


def test_a_file_from_a_protocol_package_stops_the_run(monkeypatch):
    monkeypatch.setitem(apc.READERS, "lmms", lambda: ["/usr/share/sonic-pi/samples/bd_haus.flac"])
    with pytest.raises(RuntimeError, match="lmms: 1 files come from a protocol set's package"):
        apc.sources(["lmms"])


def test_corpus_keeps_readable_clips_of_at_least_min_seconds(monkeypatch, tmp_path):
    long = _wav(tmp_path / "long.wav", 0.2)
    short = _wav(tmp_path / "short.wav", 0.05)
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF not really")
    monkeypatch.setitem(apc.READERS, "lmms", lambda: [long, short, str(broken)])
    assert apc.corpus(names=["lmms"]) == {"lmms": [long]}
