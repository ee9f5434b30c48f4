"""Every accepted input becomes Rows in the column convention; bad input is a clear error."""

import json

import datasets
import pandas as pd
import pytest

from anycl.data.inputs import check_items, to_rows
from anycl.errors import DataError

PAIRS = [{"anchor": f"q{i}", "positive": f"d{i}"} for i in range(5)]


def test_all_input_kinds(tmp_path):
    ds = datasets.Dataset.from_list(PAIRS)
    assert to_rows(ds)[2] == {"anchor": "q2", "positive": "d2"}
    assert len(to_rows(datasets.DatasetDict({"train": ds, "test": ds}))) == 5
    it = to_rows(ds.to_iterable_dataset())
    assert it.streaming and [r["anchor"] for r in it][:2] == ["q0", "q1"]
    assert to_rows(pd.DataFrame(PAIRS)).columns == ["anchor", "positive"]
    assert to_rows(["x", "y", "z"]).columns == ["anchor"]
    csv = tmp_path / "p.csv"
    pd.DataFrame(PAIRS).to_csv(csv, index=False)
    assert to_rows(str(csv))[4]["positive"] == "d4"
    jl = tmp_path / "p.jsonl"
    jl.write_text("\n".join(json.dumps(p) for p in PAIRS))
    assert len(to_rows(jl)) == 5
    pq = tmp_path / "p.parquet"
    pd.DataFrame(PAIRS).to_parquet(pq)
    assert to_rows(pq)[0]["anchor"] == "q0"
    folder = tmp_path / "texts"
    folder.mkdir()
    (folder / "a.txt").write_text("x")
    assert len(to_rows(folder, file_extensions=(".txt",))) == 1


def test_convention_negatives_labels_and_mapping():
    rows = to_rows([{"anchor": "a", "positive": "p", "negative_2": "n2", "negative_1": "n1", "label": 3}])
    assert rows.columns == ["anchor", "positive", "negative_1", "negative_2", "label"]
    assert rows.negatives == ["negative_1", "negative_2"] and rows.has_label
    mapped = to_rows([{"query": "a", "doc": "b"}], columns={"anchor": "query", "positive": "doc"})
    assert mapped[0] == {"anchor": "a", "positive": "b"}
    single = to_rows([{"text": "a", "label": 1}, {"text": "b", "label": 2}])
    assert single.columns == ["anchor", "label"] and not single.has_positive


def test_empty_and_missing_columns_errors(tmp_path):
    with pytest.raises(DataError, match="empty"):
        to_rows([])
    with pytest.raises(DataError, match="empty"):
        to_rows(datasets.Dataset.from_dict({"anchor": []}))
    with pytest.raises(DataError, match=r"no 'anchor' column: the dataset's columns are \['query', 'doc'\]"):
        to_rows([{"query": "a", "doc": "b"}])
    with pytest.raises(DataError, match="columns= names 'qq'"):
        to_rows([{"query": "a", "doc": "b"}], columns={"anchor": "qq"})
    with pytest.raises(DataError, match="does not exist"):
        to_rows(tmp_path / "nope.csv")
    empty_dir = tmp_path / "empty"
    empty_dir.mkdir()
    with pytest.raises(DataError, match="holds no files"):
        to_rows(empty_dir, file_extensions=(".wav",))
    with pytest.raises(DataError, match="no 'train' split"):
        to_rows(datasets.DatasetDict({"validation": datasets.Dataset.from_list(PAIRS)}))
    with pytest.raises(DataError, match="cannot use a int"):
        to_rows(5)


def test_item_validation_names_row_and_column():
    from anycl.adapters import TextAdapter

    v = TextAdapter().validate
    val = {"anchor": v, "positive": v}
    with pytest.raises(DataError, match=r"row 1, column 'positive' is missing"):
        check_items(to_rows([{"anchor": "a", "positive": "b"}, {"anchor": "c", "positive": None}]), val)
    with pytest.raises(DataError, match=r"row 1, column 'anchor' is an empty string"):
        check_items(to_rows([{"anchor": "a", "positive": "b"}, {"anchor": "  ", "positive": "x"}]), val)
    with pytest.raises(DataError, match=r"column 'anchor' mixes item types: row 0 is str but row 2 is int"):
        check_items(
            to_rows(
                [{"anchor": "a", "positive": "b"}, {"anchor": "c", "positive": "d"}, {"anchor": 7, "positive": "e"}]
            ),
            val,
        )
