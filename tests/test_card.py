"""Model cards (anycl.export.card): Hub front matter, the true base model, one writer for every folder."""

import yaml

import anycl
from anycl.adapters.text import DEFAULT_MODEL_ID, resolve_text_model
from anycl.export.card import front_matter


def _front(text: str) -> dict:
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def test_default_base_model_is_recorded_in_config_and_cards(text_pairs, minilm_path, tmp_path):
    model = anycl.fit(
        text_pairs,
        modality="text",
        batch_size=8,
        max_steps=1,
        progress=False,
        log_with=None,
        adapter_options={"max_seq_length": 32},
        collapse_watch=False,
    )
    cfg = model.info["config"]
    assert cfg["model"] == DEFAULT_MODEL_ID  # not a machine-specific path: it reruns anywhere
    assert list(cfg)[:4] == ["dataset", "modality", "loss", "model"]
    assert resolve_text_model(DEFAULT_MODEL_ID) == minilm_path  # the id loads the packaged copy, offline
    model.save(str(tmp_path / "m"))
    assert f"model: {DEFAULT_MODEL_ID}" in (tmp_path / "m" / "config.yaml").read_text()
    front = _front((tmp_path / "m" / "README.md").read_text())
    assert front["base_model"] == DEFAULT_MODEL_ID and front["library_name"] == "anycl"
    assert {"anycl", "sentence-transformers", "loss:infonce"} <= set(front["tags"])
    assert "metrics" not in front  # no evaluation ran
    from pathlib import Path

    for folder in (tmp_path / "m" / "towers" / "text", Path(model.export_sentence_transformers(str(tmp_path / "st")))):
        text = (folder / "README.md").read_text()
        tower = _front(text)
        assert tower["library_name"] == "sentence-transformers" and tower["base_model"] == DEFAULT_MODEL_ID
        assert "s2orc" not in text and "from sentence_transformers import SentenceTransformer" in text
    # data named by a Hub id are listed as datasets; local files are not
    model.info["config"] = dict(cfg, dataset="sentence-transformers/natural-questions", eval_dataset="/tmp/x.csv")
    model.info["final_metrics"] = {"step": 1, "ndcg@10": 0.5}
    fm = front_matter(model)
    assert fm["datasets"] == ["sentence-transformers/natural-questions"]
    assert fm["metrics"] == ["ndcg@10"]
    assert fm["model-index"][0]["results"][0]["metrics"] == [{"type": "ndcg@10", "value": 0.5}]


def test_a_batch_larger_than_the_data_is_said(text_pairs, minilm_path, caplog):
    anycl.fit(
        text_pairs[:6],
        modality="text",
        model=minilm_path,
        batch_size=32,
        max_steps=1,
        progress=False,
        log_with=None,
        adapter_options={"max_seq_length": 32},
        collapse_watch=False,
    )
    assert "batch_size=32 is larger than the data: every step uses one batch of 6 rows" in caplog.text


def test_library_progress_bars_stay_quiet_in_python(minilm_path, tmp_path, capfd):
    model = anycl.api.build_model({s: "text" for s in ("anchor", "positive", "negative")}, model=minilm_path)
    model.save(str(tmp_path / "m"))
    anycl.load(str(tmp_path / "m"))
    err = capfd.readouterr().err
    assert "Loading weights" not in err and "Writing model shards" not in err


def test_keep_best_card_gives_the_scores_of_the_saved_weights(text_pairs, tiny_text_encoder, one_thread, tmp_path):
    """Under keep_best the model is handed back (and saved) with the best step's weights: the card's results,
    its model-index and the report give that step's scores, which a model loaded from the folder re-measures."""
    import copy
    import re

    import torch.nn.functional as F

    encoder = copy.deepcopy(tiny_text_encoder)
    encoder.st[0].auto_model.config.num_hidden_layers = 1  # the fixture's one layer, saved and loaded as one
    calls = []

    def alignment(model):  # mean cosine of each anchor with its positive: a function of the weights alone
        a = model.encode([r["anchor"] for r in text_pairs[:8]])
        p = model.encode([r["positive"] for r in text_pairs[:8]])
        return float(F.cosine_similarity(a, p).mean())

    def evaluator(model):
        calls.append(alignment(model))
        late = len(calls) > 2  # evaluations after step 1 are scored down, so the best step is not the last
        return {"score": calls[-1] - (1.0 if late else 0.0), "align": calls[-1]}

    model = anycl.fit(
        text_pairs,
        modality="text",
        encoder=encoder,
        batch_size=8,
        max_steps=3,
        eval_every=1,
        lr=1e-4,
        eval_dataset=evaluator,
        keep_best="score",
        progress=False,
        log_with=None,
        output_dir=str(tmp_path / "run"),
        adapter_options={"max_seq_length": 24},
        collapse_watch=False,
    )
    best = model.info["best"]
    assert best["step"] < 3 and model.trainer.eval_history[-1]["step"] == 3
    last_align = model.trainer.eval_history[-1]["align"]
    folder = tmp_path / "run" / "model"
    card = (folder / "README.md").read_text()
    front = _front(card)
    card_metrics = {m["type"]: m["value"] for m in front["model-index"][0]["results"][0]["metrics"]}
    remeasured = alignment(anycl.load(str(folder)))
    assert card_metrics["align"] == round(remeasured, 4)
    assert abs(last_align - remeasured) > 1e-3  # the last step's score is not what the card gives
    assert card_metrics["score"] == round(best["value"], 4)
    assert f"evaluation at step {best['step']} of 3" in card and "keep_best" in card
    row = re.search(r"\| align \| [0-9.]+ \| ([0-9.]+) \|", card)
    assert row is not None and float(row.group(1)) == float(f"{remeasured:.4f}")
    # the sentence-transformers tower of the same folder carries the same numbers
    tower = _front((folder / "towers" / "text" / "README.md").read_text())
    assert tower["model-index"] == front["model-index"]
    report = (tmp_path / "run" / "report.html").read_text()
    assert f"{remeasured:.4f}" in report and f"{last_align:.4f}" not in report.split("<h2>Evaluation</h2>")[1][:2000]
