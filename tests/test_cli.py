"""The command line (`python -m anycl ...` in subprocesses), configs, the training report and the model card.

Subprocess start-up dominates here, so one `fit` run (module fixture) is shared by the tests that read
its outputs; the other commands run once each.
"""

import base64
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import anycl
from anycl import cli
from anycl.data.open import open_dataset
from anycl.errors import ConfigError, DataError
from anycl.options.run_config import load_config, parse_value, resolved_config
from anycl.report.build import DPI, FIGSIZE, write_report

ROOT = Path(__file__).resolve().parents[1]
TOPICS = ["cats", "rivers", "engines", "bread", "stars", "violins", "glaciers", "chess"]
FIG_PX = (int(FIGSIZE[0] * DPI), int(FIGSIZE[1] * DPI))


def run_cli(*args, cwd, timeout=900):
    env = dict(
        os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false"
    )
    return subprocess.run(
        [sys.executable, "-m", "anycl", *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def write_pairs_csv(path: Path, with_label: bool = True) -> Path:
    import pandas as pd

    rows = [
        {
            "anchor": f"what do we know about {t}? (question {i})",
            "positive": f"facts on {t}, part {i}",
            **({"label": t} if with_label else {}),
        }
        for i in range(3)
        for t in TOPICS
    ]
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    write_pairs_csv(d / "pairs.csv")
    return d


@pytest.fixture(scope="module")
def fitted(work, minilm_path):
    """One `anycl fit` run on 24 labelled pairs (3 steps), evaluated on the same pairs."""
    proc = run_cli(
        "fit",
        "pairs.csv",
        "--modality",
        "text",
        "--model",
        minilm_path,
        "--batch-size",
        "8",
        "--adapter-options",
        '{"max_seq_length": 32}',
        "--eval-dataset",
        "pairs.csv",
        "--seed",
        "3",
        "--output-dir",
        "run",
        cwd=work,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return work / "run", proc


def one_line_error(proc, pattern):
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert re.search(pattern, lines[0]), lines[0]
    return lines[0]


# -- fit, and what it writes ---------------------------------------------------------------------------
def test_fit_writes_model_card_config_and_report(fitted, work, minilm_path):
    run, proc = fitted
    out = proc.stdout
    assert "trained 3 steps on 24 rows" in out and "report: run/report.html" in out and "ndcg@10" in out
    assert re.search(r"train: 100%.*3/3 .*items_s=", proc.stderr)  # the training bar: rate and ETA columns
    assert re.search(r"evaluate: 100%.*48/48 .*item/s", proc.stderr)  # one bar for the evaluation phase
    assert "Loading weights" not in proc.stderr  # library bars hidden
    for f in ("config.yaml", "report.html", "model/config.yaml", "model/README.md", "model/anycl_config.json"):
        assert (run / f).is_file(), f
    # the config: fit's names, resolved values, absolute data path
    cfg = load_config(str(run / "config.yaml"))
    assert cfg["dataset"] == str(work / "pairs.csv") and cfg["modality"] == "text" and cfg["loss"] == "infonce"
    assert cfg["batch_size"] == 8 and cfg["seed"] == 3 and cfg["lr"] == 2e-5 and cfg["epochs"] == 1
    assert cfg["loss_options"] == {"temperature": 0.05} and cfg["model"] == minilm_path
    assert "output_dir" not in cfg and "progress" not in cfg
    assert (run / "model" / "config.yaml").read_text() == (run / "config.yaml").read_text()
    # the model card
    card = (run / "model" / "README.md").read_text()
    assert f"`{work.name}/pairs.csv` (24 rows)" in card and "infonce" in card
    assert str(work) not in card  # no local directory: the card may go to the Hub (config.yaml keeps the path)
    assert re.search(r"\| ndcg@10 \| 0\.\d{4} \| 0\.\d{4} \|", card)  # before training | after
    assert 'anycl.load("run/model")' in card and 'SentenceTransformer("run/model/towers/text")' in card
    assert "batch_size: 8" in card
    import yaml

    front = yaml.safe_load(card.split("---\n")[1])
    assert front["library_name"] == "anycl" and front["pipeline_tag"] == "sentence-similarity"
    assert "ndcg@10" in front["metrics"] and "datasets" not in front  # local files are not Hub datasets
    values = {m["type"]: m["value"] for m in front["model-index"][0]["results"][0]["metrics"]}
    final = anycl.load(run).info["final_metrics"]
    assert values["ndcg@10"] == round(final["ndcg@10"], 4)
    assert "anycl fit pairs.csv --modality text" in card  # the command that ran
    # the tower folder carries our card, not the upstream all-MiniLM-L6-v2 one
    tower_card = (run / "model" / "towers" / "text" / "README.md").read_text()
    assert "s2orc" not in tower_card and "library_name: sentence-transformers" in tower_card
    assert 'SentenceTransformer("run/model/towers/text")' in tower_card and "(24 rows)" in tower_card
    # the card's sentence-transformers recipe works and gives anycl's embeddings
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(run / "model" / "towers" / "text"), device="cpu")
    model = anycl.load(run)
    torch.testing.assert_close(
        torch.as_tensor(st.encode(["facts on cats"])), model.encode(["facts on cats"]), atol=1e-5, rtol=1e-4
    )


def test_report_pngs_are_real_images_and_the_page_inlines_them(fitted):
    run, _ = fitted
    pngs = sorted(p.name for p in (run / "report").glob("*.png"))
    assert pngs == ["collapse.png", "embeddings.png", "eval.png", "loss.png", "lr.png", "similarity.png"]
    for name in pngs:
        with Image.open(run / "report" / name) as im:
            im.verify()
        with Image.open(run / "report" / name) as im:
            assert im.format == "PNG" and im.size == FIG_PX
            colours = np.asarray(im.convert("L"))
            assert colours.std() > 5  # something is drawn, not a blank canvas
    page = (run / "report.html").read_text()
    inlined = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(inlined) == 6
    for b64 in inlined:
        assert Image.open(io.BytesIO(base64.b64decode(b64))).size == FIG_PX
    assert "http://" not in page and "https://" not in page and "<script" not in page  # self-contained
    assert "batch_size: 8" in page and "ndcg@10" in page
    assert "before training" in page and "Nearest neighbours" in page and "<h2>Health</h2>" in page
    # one heading per figure, not repeated in its caption
    headings = re.findall(r"<h3>([^<]+)</h3><figure>", page)
    captions = re.findall(r"<figcaption>([^<]+)</figcaption>", page)
    assert len(headings) == 6 and all(h not in c for h, c in zip(headings, captions))


def test_report_and_tensorboard_record_the_same_points(fitted):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run, _ = fitted
    data = json.loads((run / "report" / "data.json").read_text())
    files = list((run / "logs").rglob("events.out.tfevents.*"))
    assert files
    acc = EventAccumulator(str(files[0].parent))
    acc.Reload()
    tb = {tag: [e.step for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}
    steps = lambda key: [h["step"] for h in data["history"] if key in h]  # noqa: E731
    assert tb["loss"] == steps("loss") == [1, 2, 3]  # 3 steps: every one logged (about 100 points per run)
    assert tb["collapse/spread"] == steps("spread") and tb["similarity/positive"] == steps("positive")
    assert tb["eval/ndcg@10"] == [h["step"] for h in data["eval_history"]] == [0, 3]  # baseline and final
    ex = data["examples"]
    assert len(ex["queries"]) == 3 and set(ex["hits"]) == {"before", "after"}


def test_fit_again_from_the_saved_config_repeats_the_run(fitted, work, capsys):
    run, _ = fitted
    code = cli.main(
        ["fit", "--config", str(run / "model" / "config.yaml"), "--output-dir", str(work / "again"), "--quiet"]
    )
    assert code == 0
    assert "trained 3 steps" in capsys.readouterr().out
    a, b = anycl.load(run), anycl.load(work / "again")
    sa, sb = a.state_dict(), b.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert (work / "again" / "config.yaml").read_text() == (run / "config.yaml").read_text()


# -- embed and eval ----------------------------------------------------------------------------------------
def test_embed_writes_parquet_with_ids(fitted, work):
    import pandas as pd

    run, _ = fitted
    items = work / "items.csv"
    pd.DataFrame({"id": [f"doc-{i}" for i in range(5)], "text": [f"sentence number {i}" for i in range(5)]}).to_csv(
        items, index=False
    )
    proc = run_cli("embed", "run", "items.csv", "--column", "text", "-o", "emb.parquet", "-q", cwd=work)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "wrote 5 embeddings of width 384 to emb.parquet" in proc.stdout
    table = pd.read_parquet(work / "emb.parquet")
    assert list(table["id"]) == [f"doc-{i}" for i in range(5)]
    emb = np.stack(table["embedding"].to_list())
    expected = anycl.load(run).encode([f"sentence number {i}" for i in range(5)]).numpy()
    np.testing.assert_allclose(emb, expected, atol=1e-6)
    # .npy: the array plus ids beside it (in-process: the command's code path is the same)
    assert cli.main(["embed", str(run), str(items), "--column", "text", "-o", str(work / "emb.npy"), "-q"]) == 0
    np.testing.assert_allclose(np.load(work / "emb.npy"), expected, atol=1e-6)
    assert json.loads((work / "emb.ids.json").read_text()) == [f"doc-{i}" for i in range(5)]
    # refuses to overwrite
    assert cli.main(["embed", str(run), str(items), "--column", "text", "-o", str(work / "emb.npy"), "-q"]) == 2


def test_eval_retrieval_and_knn(fitted, work, capsys):
    run, _ = fitted
    proc = run_cli("eval", "run", "pairs.csv", "-o", "metrics.json", "-q", cwd=work)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "retrieval: 24 pairs" in proc.stdout
    metrics = json.loads((work / "metrics.json").read_text())
    # the same numbers as the evaluator run in-process
    from anycl.data.inputs import to_rows
    from anycl.evaluation import RetrievalEvaluator

    expected = RetrievalEvaluator.from_pairs(to_rows(str(work / "pairs.csv")))(anycl.load(run))
    assert metrics.keys() == expected.keys()
    assert all(abs(metrics[k] - expected[k]) < 1e-6 for k in metrics)
    # labelled items: leave-one-out kNN, and kNN + linear probe with --train
    import pandas as pd

    labelled = pd.DataFrame(
        {
            "text": [f"facts on {t}, part {i}" for i in range(3) for t in TOPICS],
            "label": [t for _ in range(3) for t in TOPICS],
        }
    )
    labelled.to_csv(work / "labelled.csv", index=False)
    assert cli.main(["eval", str(run), str(work / "labelled.csv"), "--k", "2", "-q"]) == 0
    assert re.search(r"knn@2_accuracy\s+\d\.\d{4}", capsys.readouterr().out)
    assert cli.main(["eval", str(run), str(work / "labelled.csv"), "--train", str(work / "labelled.csv"), "-q"]) == 0
    out = capsys.readouterr().out
    assert "linear_probe_accuracy" in out and "knn@5_accuracy" in out


def test_mine_writes_negatives_that_a_brute_force_search_agrees_with(fitted, work, minilm_path, capsys):
    import pandas as pd

    run, _ = fitted
    proc = run_cli(
        "mine",
        "run",
        "pairs.csv",
        "-o",
        "mined.csv",
        "--relative-margin",
        "0.05",
        "--stats",
        "stats.json",
        cwd=work,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "hard-negative mining: 24 queries, corpus of 24 documents" in proc.stdout
    # with progress shown, the statistics are still printed once (not by the miner and again by the command)
    assert (proc.stdout + proc.stderr).count("hard-negative mining: 24 queries") == 1
    assert re.search(r"filtered: range_min 0, max_score 0, absolute_margin 0, relative_margin \d+", proc.stdout)
    mined = pd.read_csv(work / "mined.csv")
    stats = json.loads((work / "stats.json").read_text())
    assert f"wrote {len(mined)} rows" in proc.stdout and len(mined) == stats["rows_out"]
    assert list(mined.columns) == ["anchor", "positive", "negative_1"]
    # reference: every query against every other positive, the best one under the relative margin
    pairs = pd.read_csv(work / "pairs.csv")
    model = anycl.load(run)
    q, d = model.encode(list(pairs["anchor"])), model.encode(list(pairs["positive"]))
    scores = q @ d.T
    expected = {}
    for i in range(len(pairs)):
        pos = float(scores[i, i])
        ok = [(float(scores[i, j]), j) for j in range(len(pairs)) if j != i and scores[i, j] <= pos - 0.05 * abs(pos)]
        if ok:
            expected[pairs["anchor"][i]] = pairs["positive"][max(ok)[1]]
    assert dict(zip(mined["anchor"], mined["negative_1"])) == expected
    assert stats["queries_short"] == len(pairs) - len(expected)
    # a sentence-transformers model folder works too (in-process: the same code path)
    out = work / "mined_st.jsonl"
    assert (
        cli.main(
            [
                "mine",
                minilm_path,
                str(work / "pairs.csv"),
                "-o",
                str(out),
                "--num-negatives",
                "2",
                "--on-short",
                "random",
                "-q",
            ]
        )
        == 0
    )
    rows = [json.loads(ln) for ln in out.read_text().splitlines()]
    assert len(rows) == 24 and all(r["negative_1"] != r["positive"] != r["negative_2"] for r in rows)
    assert "wrote 24 rows" in capsys.readouterr().out


def test_mine_with_a_cache_dir_embeds_nothing_the_second_time_and_faiss_flat_agrees(work, minilm_path):
    import pandas as pd

    pytest.importorskip("faiss")

    def mine(name, *flags):
        out, stats = work / f"{name}.csv", work / f"{name}.json"
        args = ["mine", minilm_path, str(work / "pairs.csv"), "-o", str(out), "--stats", str(stats), "-q", *flags]
        assert cli.main(args) == 0
        return pd.read_csv(out), json.loads(stats.read_text())

    cache = ["--cache-dir", str(work / "emb-cache")]
    first, s1 = mine("cached1", *cache)
    second, s2 = mine("cached2", *cache)
    assert s1["embedded"] > 0 and s1["cache_hits"] == 0
    assert s2["embedded"] == 0 and s2["cache_hits"] == s1["embedded"]
    assert first.equals(second)
    flat, s3 = mine("faiss", "--backend", "faiss", "--faiss-index", "flat")
    assert s3["backend"] == "faiss" and flat.equals(first)


# -- errors: one line, exit code 2 ----------------------------------------------------------------------------
def test_errors_are_one_line_with_exit_code_2(work, capsys):
    # a real process: exit status 2 and one line on stderr, no traceback
    one_line_error(
        run_cli("fit", "missing.csv", "--modality", "text", cwd=work),
        r"^anycl fit: error: dataset path 'missing.csv' does not exist",
    )

    # the same handler in-process (saves a process start each): main() returns the exit status
    def err(argv, pattern):
        assert cli.main(argv) == 2
        captured = capsys.readouterr()
        line = captured.err.strip()
        assert "\n" not in line and "Traceback" not in line and re.search(pattern, line), line
        assert captured.out == ""

    (work / "bad.yaml").write_text("dataset: pairs.csv\nmodality: text\nbatchsize: 8\n")
    err(
        ["fit", "--config", str(work / "bad.yaml")],
        r"^anycl fit: error: unknown key\(s\) \['batchsize'\] .*did you mean 'batch_size'.*valid keys: dataset, modality",
    )
    err(
        ["fit", str(work / "pairs.csv"), "--modality", "lidar"],
        r"^anycl fit: error: no adapter for modality 'lidar'; registered modalities: .*text",
    )
    err(
        ["fit", str(work / "pairs.csv"), "--modality", "text", "--batchsize", "3"],
        r"unknown option --batchsize \(did you mean --batch-size\?\)",
    )
    err(["fit", "--modality", "text"], r"no dataset: give DATA")
    err(["fit", str(work / "pairs.csv")], r"no modality: give --modality")
    err(["fit", "--config", str(work / "nope.yaml")], r"config file .*nope.yaml' does not exist")
    err(["eval", str(work / "no-model"), str(work / "pairs.csv")], r"model folder .* does not exist")
    err(
        ["embed", str(work / "no-model"), str(work / "pairs.csv"), "-o", str(work / "x.txt")],
        r"--output must end in .parquet or .npy",
    )
    err(
        ["mine", str(work / "no-model"), str(work / "pairs.csv"), "-o", str(work / "m.csv")],
        r"^anycl mine: error: model '.*no-model' does not exist",
    )
    err(
        ["mine", str(work), str(work / "pairs.csv"), "-o", str(work / "m.txt")],
        r"--output must end in .csv, .tsv, .jsonl or .parquet",
    )
    err(
        ["mine", str(work), str(work / "pairs.csv"), "-o", str(work / "m.csv")],
        r"is neither an anycl model folder nor a sentence-transformers model folder",
    )
    err(
        ["fit", "nobody/no-such-dataset", "--modality", "text"],
        r"not a local file or folder, and loading it as a Hugging Face dataset failed.*give a path",
    )
    (work / "list.yaml").write_text("- a\n- b\n")
    err(["fit", "--config", str(work / "list.yaml")], r"must hold a mapping")
    (work / "broken.json").write_text("{nope")
    err(["fit", "--config", str(work / "broken.json")], r"is not valid JSON")
    # --verbose shows the traceback as well
    assert cli.main(["fit", "--config", str(work / "nope.yaml"), "--verbose"]) == 2
    assert "Traceback" in capsys.readouterr().err


def test_fit_help_gives_every_flag_a_metavar_and_default_and_hides_python_objects(capsys):
    from anycl.api import FIT_OPTIONS

    with pytest.raises(SystemExit):
        cli.main(["fit", "--help"])
    text = capsys.readouterr().out
    for name in FIT_OPTIONS:
        flag = "--" + name.replace("_", "-")
        if name in cli.HIDDEN_FIT_OPTIONS:
            assert not re.search(rf"^\s+{flag}(?=\s|$)", text, re.M)
            continue
        assert name in cli.FIT_FLAG_DOCS, f"document {flag} in cli.FIT_FLAG_DOCS"
        block = re.search(rf"^  {flag}(?=\s|$)(.*)\n(.*)$", text, re.M)
        assert block and "(default: " in block.group(2), flag
    assert "--batch-size N" in text and "--peft JSON" in text
    for cmd in ("eval", "mine", "embed"):
        with pytest.raises(SystemExit):
            cli.main([cmd, "--help"])
        out = capsys.readouterr().out
        for line in re.split(r"\n  (?=-)", out.split("options:")[1]):
            if not line.strip() or line.strip().startswith("-h"):
                continue
            assert "default" in line or "required" in line, (cmd, line)
    with pytest.raises(cli.UsageError, match="Python object"):
        cli.parse_options(["--encoder", "x"], list(FIT_OPTIONS))


def test_the_readme_mine_example_names_a_shipped_file():
    readme = (ROOT / "README.md").read_text()
    m = re.search(r"`anycl mine out (\S+) -o", readme)
    assert m and (ROOT / m.group(1)).is_file()


def test_help_for_every_command(capsys):
    for cmd in ("fit", "embed", "eval", "mine"):
        with pytest.raises(SystemExit) as exc:
            cli.main([cmd, "--help"])
        assert exc.value.code == 0
        out = capsys.readouterr().out
        assert f"usage: anycl {cmd}" in out
    with pytest.raises(SystemExit):
        cli.main(["fit", "--help"])
    fit_help = capsys.readouterr().out
    assert "--gradient-accumulation-steps" in fit_help and "--config" in fit_help
    with pytest.raises(SystemExit) as exc:
        cli.main(["demo", "--help"])
    assert exc.value.code == 0 and "usage: anycl demo" in capsys.readouterr().out
    assert cli.main([]) == 2 and "embeddings of a dataset" in capsys.readouterr().out


# -- option parsing and configs -----------------------------------------------------------------------------
def test_values_and_options_parse_like_json():
    assert parse_value("16") == 16 and parse_value("1e-4") == 1e-4 and parse_value("0.5") == 0.5
    assert parse_value("true") is True and parse_value("False") is False and parse_value("none") is None
    assert parse_value('{"temperature": 0.1}') == {"temperature": 0.1}
    assert parse_value("{anchor: query, positive: doc}") == {"anchor": "query", "positive": "doc"}
    assert parse_value("[1, 2]") == [1, 2] and parse_value("bf16") == "bf16" and parse_value("a b") == "a b"
    own, extra = cli.split_fit_argv(
        ["data.csv", "--output-dir", "out", "--modality", "text", "-q", "--cpu", "--lr=1e-3", "--loss=infonce"]
    )
    assert own == ["data.csv", "--modality", "text", "-q", "--loss=infonce"]
    assert cli.parse_options(extra, ["output_dir", "cpu", "lr"]) == {"output_dir": "out", "cpu": True, "lr": 1e-3}
    with pytest.raises(cli.UsageError, match="unexpected argument 'stray'"):
        cli.parse_options(["stray"], ["lr"])


def test_python_fit_records_config_and_in_memory_data_is_named(tmp_path, text_pairs, minilm_path, capsys):
    model = anycl.fit(
        text_pairs,
        modality="text",
        model=minilm_path,
        batch_size=8,
        progress=False,
        adapter_options={"max_seq_length": 32},
        output_dir=str(tmp_path / "run"),
    )
    cfg_text = (tmp_path / "run" / "config.yaml").read_text()
    assert "not recorded (Python objects, give them again from Python): dataset" in cfg_text
    cfg = load_config(str(tmp_path / "run"))  # a run folder finds its config.yaml
    assert cfg["dataset"] is None and cfg["batch_size"] == 8
    assert model.info["config"]["not_recorded"] == ["dataset"]
    # the report without evaluation and labels: loss, lr and a map of anchors and positives
    assert sorted(p.name for p in (tmp_path / "run" / "report").glob("*.png")) == [
        "collapse.png",
        "embeddings.png",
        "loss.png",
        "lr.png",
        "similarity.png",
    ]
    assert "in-memory dataset" in (tmp_path / "run" / "model" / "README.md").read_text()
    # repeating it from the CLI needs the data again, and says so
    assert cli.main(["fit", "--config", str(tmp_path / "run" / "config.yaml")]) == 2
    assert "no dataset: give DATA" in capsys.readouterr().err


def test_resolved_config_leaves_out_python_objects():
    cfg = resolved_config(
        [{"anchor": "a", "positive": "b"}],
        "text",
        "infonce",
        {
            "encoder": torch.nn.Linear(2, 2),
            "callbacks": [print],
            "lr": 1e-3,
            "output_dir": "x",
            "columns": {"anchor": "q"},
        },
    )
    assert cfg["dataset"] is None and cfg["lr"] == 1e-3 and cfg["columns"] == {"anchor": "q"}
    assert "output_dir" not in cfg and cfg["not_recorded"] == ["dataset", "callbacks", "encoder"]


def test_open_dataset_reads_saved_hf_datasets(tmp_path):
    import datasets

    ds = datasets.DatasetDict({"train": datasets.Dataset.from_dict({"anchor": ["a", "b"], "positive": ["c", "d"]})})
    ds.save_to_disk(str(tmp_path / "hf"))
    assert open_dataset(str(tmp_path / "hf"), "train")["anchor"] == ["a", "b"]
    assert open_dataset(str(tmp_path / "missing.csv")) == str(tmp_path / "missing.csv")  # to_rows reports it
    with pytest.raises(DataError, match="offline"):
        open_dataset("nobody/nothing-here")


# -- the report's parts without training ---------------------------------------------------------------------
class _FakeModel:
    """encode() gives label-clustered embeddings (the report needs only encode and sides)."""

    sides = {"anchor": "x", "positive": "x"}
    info = {"steps": 40, "train_rows": 60, "loss": "vicreg"}

    def encode(self, items, modality=None, **_):
        g = torch.Generator().manual_seed(0)
        centres = torch.randn(3, 16, generator=g) * 5
        return torch.stack([centres[int(s.split("-")[0])] + torch.randn(16, generator=g) for s in items])


class _FakeTrainer:
    """A finished run's record: logged history with an extra loss term, and the collapse watch's measures."""

    def __init__(self):
        from anycl.training.collapse import CollapseWatch

        self.history = [
            {"step": s, "loss": 1 / s, "lr": 1e-3, "items_per_s": 100.0, "epoch": 0, "invariance": 0.5 / s}
            for s in range(1, 41, 5)
        ]
        self.eval_history = [{"step": 20, "knn@5_accuracy": 0.5}, {"step": 40, "knn@5_accuracy": 0.8}]
        watch = CollapseWatch()
        watch.history = [
            {"step": s, "std": 0.01 * s, "spread": 0.2 * s, "alignment": 1.0 / s, "uniformity": -s / 10}
            for s in range(1, 41, 10)
        ]
        self.callbacks = [watch]


def test_report_plots_collapse_watch_terms_and_labels(tmp_path):
    from anycl.data.inputs import to_rows

    rows = to_rows([{"anchor": f"{i % 3}-item{i}", "label": f"class {i % 3}"} for i in range(60)])
    page = write_report(
        str(tmp_path), _FakeModel(), _FakeTrainer(), rows, {"dataset": "x.csv", "loss": "vicreg"}, method="tsne"
    )
    names = sorted(p.name for p in (tmp_path / "report").glob("*.png"))
    assert names == ["collapse.png", "embeddings.png", "eval.png", "loss.png", "lr.png", "terms.png"]
    for n in names:
        assert Image.open(tmp_path / "report" / n).size == FIG_PX
    html = page.read_text()
    assert html.count("data:image/png;base64,") == 6 and "Collapse watch" in html and "0.8000" in html
    with pytest.raises(ConfigError, match="'pca' or 'tsne'"):
        from anycl.report.build import project_2d

        project_2d(np.zeros((5, 3)), method="umap")


def test_model_card_of_a_model_saved_outside_fit(tmp_path, minilm_path):
    model = anycl.api.build_model({"anchor": "text", "positive": "text", "negative": "text"}, model=minilm_path)
    model.save(str(tmp_path / "m"))
    card = (tmp_path / "m" / "README.md").read_text()
    assert "not trained by `anycl.fit`" in card and f'SentenceTransformer("{tmp_path.name}/m/towers/text")' in card
    assert not (tmp_path / "m" / "config.yaml").exists()


# -- slow: the page in a real browser, and the demo command ---------------------------------------------------
CHROMIUM = "/usr/bin/chromium"


def _chromium_console(url, tmp_path):
    args = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--enable-logging=stderr",
        "--v=0",
        "--window-size=1000,7000",
        f"--screenshot={tmp_path / 'shot.png'}",
        url,
    ]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=120)
    console = [ln for ln in proc.stderr.splitlines() if ":CONSOLE" in ln or "Uncaught" in ln]
    return proc, console


@pytest.mark.slow
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium is not installed")
def test_report_page_opens_in_headless_chromium_without_console_errors(fitted, tmp_path):
    run, _ = fitted
    # the check itself catches errors: a page with a failing script shows up
    (tmp_path / "bad.html").write_text("<html><body><script>console.error('boom'); nope();</script></body></html>")
    _, console = _chromium_console((tmp_path / "bad.html").as_uri(), tmp_path)
    assert any("boom" in ln for ln in console) and any("nope is not defined" in ln for ln in console)
    proc, console = _chromium_console((run / "report.html").resolve().as_uri(), tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert console == []
    shot = np.asarray(Image.open(tmp_path / "shot.png").convert("L"))
    assert shot.std() > 10  # the page rendered (text and figures), not a blank screen
    # the figures are drawn down the page: every 1000-pixel band of the first 4000 holds ink
    for top in range(0, 4000, 1000):
        assert (shot[top : top + 1000] < 128).mean() > 0.002, top


@pytest.mark.slow
def test_demo_command_runs(tmp_path):
    proc = run_cli("demo", "--max-train", "64", "--max-seq-length", "32", "--quiet", cwd=tmp_path, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert re.search(r"ndcg@10\s+0\.\d{4}\s+0\.\d{4}", proc.stdout)
