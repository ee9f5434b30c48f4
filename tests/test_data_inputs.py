"""Data inputs of issue 32: a folder of ``.txt`` files is read as texts (at most 1 MiB each), not as their paths;
and the weak data cases, each a one-line error naming the file, row, column or option and the fix, before any
model loads where the check does not need the model (``anycl.api.build_model`` is replaced by one that fails the
test if it is called)."""

import math
from pathlib import Path

import pytest
from toy_modality import toy_rows

import anycl
from anycl import adapters, cli
from anycl.data.inputs import to_rows
from anycl.errors import ConfigError, DataError

TOY = dict(modality="toyvec", batch_size=8, progress=False, log_with=None, seed=3, max_steps=2)
MAX_TEXT_FILE_BYTES = 1 << 20  # the stated limit (docs/text.md)
PAIRS = [{"anchor": f"question {i} about topic {i % 4}", "positive": f"answer {i}"} for i in range(12)]


@pytest.fixture
def no_model(monkeypatch):
    from anycl import api

    def refuse(*a, **k):
        raise AssertionError("a model was built before the data was checked")

    monkeypatch.setattr(api, "build_model", refuse)


def _one_line(exc_info) -> str:
    msg = str(exc_info.value)
    assert "\n" not in msg
    return msg


# -- a folder of text files ------------------------------------------------------------------------------------
def _text_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "notes"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("  The first note.\n", encoding="utf-8")
    (folder / "sub" / "b.txt").write_bytes("\ufeffZweite Notiz: Grüße\n".encode())  # a BOM is dropped
    (folder / "c.txt").write_text("third\nnote on two lines\n", encoding="utf-8")
    (folder / "ignored.csv").write_text("not,a,text\n")
    return folder


def test_fit_on_a_text_folder_trains_on_the_files_contents_not_their_paths(tmp_path, monkeypatch):
    import anycl
    from anycl import api

    folder = _text_folder(tmp_path)
    seen = {}

    class Seen(Exception):
        pass

    def spy(cfg, sides, anchor_cls, parts, multi):  # the rows fit trains on, before any model loads
        seen.update(parts)
        raise Seen

    monkeypatch.setattr(api, "choose_loss", spy)
    with pytest.raises(Seen):
        anycl.fit(str(folder), modality="text", progress=False)
    assert seen[""].column("anchor") == ["The first note.", "third\nnote on two lines", "Zweite Notiz: Grüße"]
    from anycl.adapters.text import MAX_TEXT_FILE_BYTES as stated

    assert stated == MAX_TEXT_FILE_BYTES
    read = adapters.file_reader("text")
    rows = to_rows(str(folder), file_extensions=adapters.file_extensions("text"), read_file=read)
    assert rows.column("anchor") == seen[""].column("anchor")
    # audio and image files stay paths (their adapters decode them)
    assert adapters.file_reader("image", "text")(str(folder / "x.png")) == str(folder / "x.png")


@pytest.mark.parametrize(
    "content,message",
    [
        (b"\xff\xfeh\x00i\x00", r"bad\.txt' is not UTF-8 text \(byte 0xff at offset 0\); convert it to UTF-8"),
        (b" \n\t\n", r"bad\.txt' is empty \(no text\); remove it from the folder"),
        (b"x" * (MAX_TEXT_FILE_BYTES + 1), r"bad\.txt' is larger than 1,048,576 bytes.*split it into files"),
    ],
)
def test_a_text_file_that_is_not_one_text_is_refused_naming_it(tmp_path, content, message):
    folder = _text_folder(tmp_path)
    (folder / "bad.txt").write_bytes(content)
    with pytest.raises(DataError, match=message):
        to_rows(str(folder), file_extensions=(".txt",), read_file=adapters.file_reader("text"))


# -- labels ----------------------------------------------------------------------------------------------------
def test_a_nan_label_is_refused_naming_the_row_before_any_model_loads(no_model):
    rows = toy_rows(16, labels=True)
    rows[5]["label"] = float("nan")  # would be hashed as a class 'nan' of its own
    with pytest.raises(DataError, match=r"row 5, column 'label' is NaN.*class 'nan'.*drop or fill such rows") as e:
        anycl.fit(rows, sampler="group_by_label", **TOY)
    _one_line(e)


def test_a_nan_label_is_refused_in_streamed_rows_and_in_a_hugging_face_dataset():
    import datasets
    import numpy as np

    from anycl.data.item_checks import check_data, check_row

    with pytest.raises(DataError, match=r"row 7, column 'label' is NaN"):
        check_row({"anchor": "x", "label": np.float32("nan")}, 7, {"anchor": lambda v, w: None})
    hf = datasets.Dataset.from_dict({"anchor": ["a", "b", "c"], "label": [1.0, 2.0, float("nan")]})
    rows = to_rows(hf)
    assert math.isnan(rows[2]["label"])  # the Arrow column keeps the NaN
    with pytest.raises(DataError, match=r"row 2, column 'label' is NaN"):
        check_data(rows)


def test_a_nan_label_in_evaluation_data_is_refused():
    from anycl.evaluation.choose import build_evaluator
    from anycl.evaluation.probe import probe_evaluator

    items = [{"anchor": f"item {i}", "label": ["x", "y"][i % 2]} for i in range(6)]
    items[3]["label"] = float("nan")
    with pytest.raises(DataError, match=r"row 3, column 'label' is NaN"):
        build_evaluator(items)
    with pytest.raises(DataError, match=r"row 3, column 'label' is NaN"):
        probe_evaluator(items, True)


# -- evaluation sets -------------------------------------------------------------------------------------------
def test_a_one_pair_eval_set_is_refused_before_any_model_loads(no_model):
    one = [{"anchor": "the only question", "positive": "the only answer"}]
    with pytest.raises(
        DataError, match=r"at least one query and 2 documents to rank, got 1 and 1.*every metric is 1\.0"
    ):
        anycl.fit(PAIRS, modality="text", eval_dataset=one, progress=False)
    from anycl.evaluation.crossmodal import CrossModalRetrievalEvaluator

    with pytest.raises(DataError, match=r"at least 2 aligned \(anchor, positive\) pairs, got 1"):
        CrossModalRetrievalEvaluator(["a"], ["b"])
    # one query over a corpus of two documents still ranks something: accepted
    from anycl.evaluation.choose import build_evaluator

    two_docs = [{"anchor": "q", "positive": "right", "negative": "wrong"}]
    assert len(build_evaluator(two_docs).corpus) == 2


@pytest.mark.parametrize("empty", [[], "empty.csv"])
def test_an_empty_eval_set_is_found_before_any_model_loads(no_model, tmp_path, empty):
    if empty == "empty.csv":
        (tmp_path / empty).write_text("anchor,positive\n")
        empty = str(tmp_path / empty)
    with pytest.raises(DataError, match="is empty: it has no rows"):
        anycl.fit(PAIRS, modality="text", eval_dataset=empty, progress=False)


def test_cli_eval_checks_the_data_before_loading_the_model(tmp_path, capsys):
    (tmp_path / "one.csv").write_text("anchor,positive\nq,d\n")
    (tmp_path / "empty.csv").write_text("anchor,positive\n")
    missing_model = str(tmp_path / "no-model-here")  # never reached: the data is refused first
    assert cli.main(["eval", missing_model, str(tmp_path / "one.csv"), "-q"]) == 2
    err = capsys.readouterr().err
    assert "2 documents to rank" in err and "does not exist" not in err and len(err.strip().splitlines()) == 1
    assert cli.main(["eval", missing_model, str(tmp_path / "empty.csv"), "-q"]) == 2
    assert "is empty: it has no rows" in capsys.readouterr().err


# -- hard negatives --------------------------------------------------------------------------------------------
def test_a_negative_that_is_the_rows_positive_is_refused_naming_the_rows(no_model):
    rows = toy_rows(16, negatives=2)
    for i in (2, 9):
        rows[i]["negative_2"] = list(rows[i]["positive"])  # the same item as both
    with pytest.raises(
        DataError, match=r"row 2: 'negative_2' is the same item as the row's positive.*\(rows 2, 9: 2 in all\)"
    ) as e:
        anycl.fit(rows, **TOY)
    _one_line(e)
    text = [{"anchor": "q1", "positive": "d1", "negative": "d1"}, {"anchor": "q2", "positive": "d2", "negative": "x"}]
    with pytest.raises(DataError, match=r"row 0: 'negative' is the same item"):
        anycl.fit(text * 3, modality="text", progress=False)
    from anycl.evaluation.choose import build_evaluator

    rows = [{"anchor": "q", "positive": "d", "negative": "d"}, {"anchor": "q", "positive": "e", "negative": "f"}]
    assert build_evaluator(rows, "reranking").negatives == [["f"]]  # evaluation data may: the positive ranks as such


def test_a_streamed_row_whose_negative_is_its_positive_is_refused():
    from anycl.data.item_checks import check_row

    check_row({"anchor": "a", "positive": "p", "negative_1": "n"}, 0, {})
    with pytest.raises(DataError, match=r"row 4: 'negative_1', 'negative_2' are the same item as the row's positive"):
        check_row({"anchor": "a", "positive": "p", "negative_1": "p", "negative_2": "p"}, 4, {})


# -- text ------------------------------------------------------------------------------------------------------
def test_a_lone_surrogate_is_refused_naming_the_row_and_the_character():
    from anycl.adapters.text import TextAdapter

    with pytest.raises(DataError, match=r"row 3, column 'anchor' holds a lone surrogate U\+D800 at character 2") as e:
        TextAdapter().validate("a \ud800 b", "row 3, column 'anchor'")
    _one_line(e)
    TextAdapter().validate("a 😀 b", "row 0")  # a real astral character is fine


def test_fit_and_encode_name_the_text_with_a_lone_surrogate(tiny_text_encoder):
    import copy

    rows = [dict(r) for r in PAIRS]
    rows[4]["positive"] = "broken \udc80 text"  # what errors='surrogateescape' leaves of a bad byte
    with pytest.raises(DataError, match=r"row 4, column 'positive' holds a lone surrogate U\+DC80"):
        anycl.fit(rows, modality="text", encoder=copy.deepcopy(tiny_text_encoder), max_steps=1, progress=False)
    model = anycl.fit(PAIRS, modality="text", encoder=copy.deepcopy(tiny_text_encoder), max_steps=1, progress=False)
    with pytest.raises(DataError, match=r"item 1 holds a lone surrogate U\+DC80 at character 7"):  # encode, evaluation
        model.encode(["fine", "broken \udc80 text"])


# -- tables ----------------------------------------------------------------------------------------------------
def test_a_duplicated_csv_header_is_refused_naming_the_column(tmp_path):
    path = tmp_path / "pairs.csv"
    path.write_text("anchor,positive,positive\nq1,d1,e1\nq2,d2,e2\n")
    with pytest.raises(
        DataError, match=r"pairs\.csv': the header names column 'positive' twice \(fields 2 and 3\); rename or remove"
    ) as e:
        to_rows(str(path))
    _one_line(e)
    tsv = tmp_path / "pairs.tsv"
    tsv.write_text("anchor\tlabel\tanchor\nq\t1\tr\n")
    with pytest.raises(DataError, match=r"column 'anchor' twice \(fields 1 and 3\)"):
        to_rows(str(tsv))


@pytest.mark.parametrize("name", ["pairs.jsonl", "pairs.json", "pairs.ndjson"])
def test_a_broken_json_lines_file_names_the_line(tmp_path, name):
    path = tmp_path / name
    path.write_text('{"anchor": "a", "positive": "b"}\n\n{"anchor": "c", "positive": "d"}\n{"anchor": "e", positive}\n')
    with pytest.raises(DataError, match=rf"{name}': line 4 is not valid JSON \(Expecting property name.*column 17\)"):
        to_rows(str(path))


def test_a_broken_json_document_names_its_line_and_column(tmp_path):
    path = tmp_path / "pairs.json"
    path.write_text('[{"anchor": "a", "positive": "b"},\n {"anchor": "c" "positive": "d"}]\n')
    with pytest.raises(DataError, match=r"pairs\.json': line 2, column 17: Expecting ',' delimiter"):
        to_rows(str(path))


# -- the output folder -----------------------------------------------------------------------------------------
def test_an_output_dir_that_is_a_file_is_a_clear_error(tmp_path, capsys, no_model):
    file = tmp_path / "results"
    file.write_text("the user's notes\n")
    with pytest.raises(ConfigError, match=r"output_dir '.*results' is a file, not a folder"):
        anycl.fit(PAIRS, modality="text", output_dir=str(file), progress=False)
    data = tmp_path / "pairs.csv"
    data.write_text("anchor,positive\n" + "".join(f"q{i},d{i}\n" for i in range(4)))
    assert cli.main(["fit", str(data), "--modality", "text", "--output-dir", str(file), "-q"]) == 2
    err = capsys.readouterr().err
    assert "is a file, not a folder" in err and "Errno" not in err and len(err.strip().splitlines()) == 1
    assert file.read_text() == "the user's notes\n"
