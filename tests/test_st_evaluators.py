"""sentence-transformers' evaluators on anycl models (anycl.evaluation.from_sentence_transformers): the same scores
as the evaluator gives on the sentence-transformers export of the model, accepted by fit as eval_dataset= or
evaluator=, logged, and watched by keep_best."""

from __future__ import annotations

import copy

import pytest

import anycl
from anycl.errors import ConfigError

QUERIES = {"q1": "what do cats eat", "q2": "where do rivers go", "q3": "how is bread made"}
CORPUS = {
    "d1": "cats eat fish and mice",
    "d2": "rivers flow into the sea",
    "d3": "bread is baked from flour and water",
    "d4": "violins have four strings",
}
RELEVANT = {"q1": {"d1"}, "q2": {"d2"}, "q3": {"d3"}}


def _evaluators():
    from sentence_transformers.sentence_transformer.evaluation import (
        EmbeddingSimilarityEvaluator,
        InformationRetrievalEvaluator,
        SequentialEvaluator,
        TripletEvaluator,
    )

    ir = InformationRetrievalEvaluator(QUERIES, CORPUS, RELEVANT, name="dev", show_progress_bar=False)
    sts = EmbeddingSimilarityEvaluator(
        ["a cat", "a dog", "a car", "rain"], ["a kitten", "a puppy", "bread", "snow"], [0.9, 0.8, 0.1, 0.5], name="sts"
    )
    triplet = TripletEvaluator(["a cat", "a river"], ["a kitten", "the sea"], ["a car", "a violin"], name="tri")
    return {"ir": ir, "sts": sts, "triplet": triplet, "sequential": SequentialEvaluator([sts, triplet])}


@pytest.fixture
def small_model(tiny_text_encoder):
    from anycl.model.contrastive import build_model

    return build_model({"anchor": "text", "positive": "text"}, encoder=copy.deepcopy(tiny_text_encoder))


@pytest.mark.parametrize("kind", ["ir", "sts", "triplet", "sequential"])
def test_scores_equal_the_evaluator_on_the_sentence_transformers_export(small_model, kind, tmp_path):
    from sentence_transformers import SentenceTransformer

    from anycl.evaluation.choose import build_evaluator

    ours = build_evaluator(_evaluators()[kind])(small_model)
    small_model.towers["text"].encoder.st[0].auto_model.config.num_hidden_layers = 1  # as the fixture cut it
    exported = SentenceTransformer(small_model.export_sentence_transformers(str(tmp_path / "st")), device="cpu")
    theirs = _evaluators()[kind](exported)
    assert set(ours) == set(theirs) and ours
    for k, v in theirs.items():
        assert ours[k] == pytest.approx(float(v), abs=1e-5), k


def test_fit_takes_an_evaluator_logs_its_metrics_and_keep_best_watches_its_primary_metric(
    tiny_text_encoder, text_pairs
):
    seen = []
    ev = _evaluators()["ir"]
    model = anycl.fit(
        text_pairs,
        modality="text",
        encoder=copy.deepcopy(tiny_text_encoder),
        batch_size=8,
        max_steps=2,
        eval_every=1,
        evaluator=ev,  # sentence-transformers' trainer name for it
        keep_best=True,
        progress=False,
        log_with=None,
        callbacks=[lambda trainer, step, logs: seen.append(dict(logs))],
    )
    assert model.info["best"]["metric"] == ev.primary_metric == "dev_cosine_ndcg@10"
    assert "dev_cosine_ndcg@10" in model.info["final_metrics"]
    assert "dev_cosine_ndcg@10" in model.info["baseline_metrics"]


def test_a_lower_is_better_evaluator_is_watched_downwards():
    from anycl.evaluation.choose import build_evaluator
    from anycl.fitting.checks import watch_callbacks
    from anycl.options.fit_config import FitConfig

    st_eval = _evaluators()["ir"]
    cfg = FitConfig(keep_best=True, early_stopping_patience=2, collapse_watch=False)
    keep, stop = watch_callbacks(cfg, build_evaluator(st_eval), None)
    assert keep.mode == stop.mode == "max" and keep.metric == st_eval.primary_metric
    st_eval.greater_is_better = False  # as an MSE or loss evaluator says
    keep, stop = watch_callbacks(cfg, build_evaluator(st_eval), None)
    assert keep.mode == stop.mode == "min"


def test_eval_kind_with_an_evaluator_object_is_refused():
    from anycl.evaluation.choose import build_evaluator

    with pytest.raises(ConfigError, match="eval_kind applies to evaluation data, not to a sentence-transformers"):
        build_evaluator(_evaluators()["sts"], "sts")


def test_the_ported_sentence_transformers_example_runs(tmp_path, minilm_path):
    import importlib.util
    from pathlib import Path

    from sentence_transformers import SentenceTransformer

    path = Path(__file__).resolve().parents[1] / "examples" / "st_training_stsbenchmark.py"
    spec = importlib.util.spec_from_file_location("st_training_stsbenchmark", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    out = tmp_path / "out"
    scores = example.main(["--max-steps", "2", "--epochs", "1", "--output-dir", str(out)])
    assert -1 <= scores["sts-test_spearman_cosine"] <= 1
    model = anycl.load(str(out))
    assert "sts-dev_spearman_cosine" in model.info["final_metrics"]
    assert model.info["loss"] == "cosent" and model.info["steps"] == 2
    st = SentenceTransformer(str(out / "final"), device="cpu")  # the save_pretrained folder of the original
    assert st.encode(["a cat"]).shape == (1, 384)
