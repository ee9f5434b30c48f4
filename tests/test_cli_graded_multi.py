"""The CLI gives the new fit options as flags: several data sets (DATA and --loss as JSON mappings), graded
losses, --sampler group_by_label, --eval-kind, --early-stopping-patience; and `anycl eval` picks STS from a
score column or the kind given with --kind."""

import json

import pytest
from toy_modality import toy_rows

from anycl import cli

pytestmark = pytest.mark.usefixtures("one_thread")


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def _scored(n, seed):
    rows = toy_rows(n, seed=seed)
    for i, r in enumerate(rows):
        r["score"] = (i % 4) / 3
    return rows


def test_fit_several_data_sets_with_graded_loss_and_early_stopping_from_the_shell(tmp_path, capsys):
    pairs = _jsonl(tmp_path / "pairs.jsonl", toy_rows(24))
    graded = _jsonl(tmp_path / "graded.jsonl", _scored(24, 1))
    sts = _jsonl(tmp_path / "sts.jsonl", _scored(16, 2))
    out = tmp_path / "run"
    code = cli.main(
        [
            "fit",
            json.dumps({"pairs": pairs, "graded": graded}),
            "--modality",
            "toyvec",
            "--loss",
            '{"pairs": "infonce", "graded": "cosent"}',
            "--multi-dataset-sampling",
            "round_robin",
            "--batch-size",
            "8",
            "--epochs",
            "3",
            "--eval-dataset",
            sts,
            "--eval-every",
            "1",
            "--early-stopping-patience",
            "2",
            "--keep-best",
            "true",
            "--output-dir",
            str(out),
            "-q",
        ]
    )
    assert code == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert "sts_spearman" in printed
    config = (out / "config.yaml").read_text()
    assert "round_robin" in config and "cosent" in config and "graded.jsonl" in config
    # the STS file is evaluated as STS without saying so; --kind chooses otherwise
    assert cli.main(["eval", str(out), sts, "-q"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("sts: 16 rows") and "sts_spearman" in printed
    triplets = [
        {"anchor": r["anchor"], "positive": r["positive"], "negative": r["negative_1"]}
        for r in toy_rows(12, negatives=1, seed=5)
    ]
    assert cli.main(["eval", str(out), _jsonl(tmp_path / "t.jsonl", triplets), "--kind", "triplet", "-q"]) == 0
    assert "triplet_accuracy" in capsys.readouterr().out


def test_fit_group_by_label_and_a_bad_score_from_the_shell(tmp_path, capsys):
    rows = toy_rows(32)
    for i, r in enumerate(rows):
        r["label"] = i % 5
    data = _jsonl(tmp_path / "labelled.jsonl", rows)
    assert (
        cli.main(
            [
                "fit",
                data,
                "--modality",
                "toyvec",
                "--loss",
                "supcon",
                "--sampler",
                "group_by_label",
                "--sampler-options",
                '{"items_per_label": 3}',
                "--batch-size",
                "8",
                "--max-steps",
                "2",
                "--output-dir",
                str(tmp_path / "a"),
                "-q",
            ]
        )
        == 0
    )
    capsys.readouterr()
    bad = _scored(16, 0)
    bad[5]["score"] = 7.5
    assert (
        cli.main(
            [
                "fit",
                _jsonl(tmp_path / "bad.jsonl", bad),
                "--modality",
                "toyvec",
                "--loss",
                "cosine_mse",
                "--output-dir",
                str(tmp_path / "b"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "row 5, column 'score' is 7.5, outside [-1.0, 1.0]" in err and "\n" not in err.strip()
