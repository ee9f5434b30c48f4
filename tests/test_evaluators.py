"""STS, triplet, reranking and classification evaluators against independent references (scipy,
scikit-learn, sentence-transformers' own evaluators on the same model), their choice from the columns
or ``eval_kind``, logging during training (TensorBoard, report) and early stopping."""

import numpy as np
import pytest
import torch
from toy_modality import toy_rows

import anycl
from anycl.errors import ConfigError, DataError
from anycl.evaluation import (
    ClassificationEvaluator,
    KNNEvaluator,
    RerankingEvaluator,
    RetrievalEvaluator,
    STSEvaluator,
    TripletEvaluator,
    build_evaluator,
    reranking_metrics,
    spearman,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def test_spearman_matches_scipy_with_ties():
    from scipy.stats import pearsonr, spearmanr

    g = torch.Generator().manual_seed(0)
    x = torch.randn(50, generator=g)
    y = torch.randint(0, 5, (50,), generator=g).float()  # many ties
    assert spearman(x, y) == pytest.approx(spearmanr(x.numpy(), y.numpy()).statistic, abs=1e-12)
    e1, e2 = torch.randn(30, 8, generator=g), torch.randn(30, 8, generator=g)
    got = STSEvaluator.metrics(e1, e2, y[:30])
    cos = torch.nn.functional.cosine_similarity(e1, e2).numpy()
    assert got["sts_spearman"] == pytest.approx(spearmanr(cos, y[:30].numpy()).statistic, abs=1e-6)
    assert got["sts_pearson"] == pytest.approx(pearsonr(cos, y[:30].numpy()).statistic, abs=1e-6)


def test_reranking_metrics_match_scikit_learn():
    from sklearn.metrics import average_precision_score, ndcg_score

    g = np.random.default_rng(0)
    scores = [list(g.normal(size=n)) for n in (5, 8, 3, 12)]
    relevant = [[bool(v) for v in g.integers(0, 2, size=len(s))] for s in scores]
    relevant[2] = [False, True, False]
    got = reranking_metrics(scores, relevant, at_k=10)
    ap = np.mean([average_precision_score(r, s) for r, s in zip(relevant, scores)])
    assert got["reranking_map"] == pytest.approx(ap, abs=1e-12)
    ndcg = np.mean([ndcg_score([r], [s], k=10) for r, s in zip(relevant, scores)])
    assert got["reranking_ndcg@10"] == pytest.approx(ndcg, abs=1e-12)
    mrr = []
    for s, r in zip(scores, relevant):
        ranked = [r[i] for i in np.argsort(-np.asarray(s))]
        first = ranked.index(True)
        mrr.append(1 / (first + 1) if first < 10 else 0.0)
    assert got["reranking_mrr@10"] == pytest.approx(np.mean(mrr), abs=1e-12)


# -- against sentence-transformers' evaluators, same model ------------------------------------------------------
@pytest.fixture(scope="module")
def models(minilm_path):
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(minilm_path, device="cpu")
    ours = anycl.api.build_model(
        {"anchor": "text", "positive": "text", "negative": "text"}, model=minilm_path, head=None
    )
    return st, ours


SENTS = [
    "a cat sits on the mat",
    "a kitten rests on a rug",
    "the stock market fell today",
    "shares dropped sharply",
    "rivers flow into the sea",
    "water runs down to the ocean",
    "I like to bake bread",
    "baking loaves at home",
    "the violin has four strings",
    "chess is a board game",
    "glaciers are melting fast",
    "stars shine at night",
]


def test_sts_evaluator_matches_sentence_transformers(models):
    from sentence_transformers.sentence_transformer.evaluation import EmbeddingSimilarityEvaluator

    st, ours = models
    s1, s2 = SENTS[0::2], SENTS[1::2]
    gold = [4.8, 4.5, 4.2, 3.9, 0.5, 1.0]
    got = STSEvaluator(s1, s2, gold)(ours)
    ref = EmbeddingSimilarityEvaluator(s1, s2, gold, write_csv=False)(st)
    key = next(k for k in ref if k.endswith("spearman_cosine"))
    assert got["sts_spearman"] == pytest.approx(ref[key], abs=1e-6)
    assert got["sts_pearson"] == pytest.approx(ref[key.replace("spearman", "pearson")], abs=1e-4)


def test_triplet_evaluator_matches_sentence_transformers(models):
    from sentence_transformers.sentence_transformer.evaluation import TripletEvaluator as STTriplet

    st, ours = models
    a, p = SENTS[0::2], SENTS[1::2]
    n = [SENTS[(i + 5) % 12] for i in range(6)]
    n[2] = "shares of the market fell"  # closer to the anchor than its positive may be
    got = TripletEvaluator(a, p, [[x] for x in n])(ours)
    ref = STTriplet(a, p, n, write_csv=False)(st)
    key = next(k for k in ref if k.endswith("cosine_accuracy"))
    assert got["triplet_accuracy"] == pytest.approx(ref[key], abs=1e-6)  # ST gives a float32
    assert 0 < got["triplet_accuracy"] < 1  # a case of each kind


def test_reranking_evaluator_matches_sentence_transformers(models):
    from sentence_transformers.sentence_transformer.evaluation import RerankingEvaluator as STRerank

    st, ours = models
    samples = [
        {"query": "cats on mats", "positive": [SENTS[0], SENTS[1]], "negative": SENTS[2:6]},
        {"query": "money and stocks", "positive": [SENTS[3]], "negative": [SENTS[2], SENTS[8], SENTS[9]]},
        {"query": "cold ice", "positive": [SENTS[10]], "negative": SENTS[:10]},
    ]
    got = RerankingEvaluator(
        [s["query"] for s in samples], [s["positive"] for s in samples], [s["negative"] for s in samples]
    )(ours)
    ref = STRerank(samples, write_csv=False, at_k=10)(st)
    for ours_key, suffix in (
        ("reranking_map", "map"),
        ("reranking_mrr@10", "mrr@10"),
        ("reranking_ndcg@10", "ndcg@10"),
    ):
        key = next(k for k in ref if k.endswith(suffix))
        assert got[ours_key] == pytest.approx(ref[key], abs=1e-6), ours_key


def test_reranking_from_rows_groups_by_anchor():
    rows = anycl.data.to_rows(
        [
            {"anchor": "q1", "positive": "p1", "negative": "n1"},
            {"anchor": "q1", "positive": "p2", "negative": "n2"},
            {"anchor": "q2", "positive": "p3", "negative": "p1"},
        ]
    )
    ev = RerankingEvaluator.from_rows(rows)
    assert ev.queries == ["q1", "q2"]
    assert ev.positives == [["p1", "p2"], ["p3"]] and ev.negatives == [["n1", "n2"], ["p1"]]


# -- classification, any modality (toy vectors) ----------------------------------------------------------------------
def test_classification_evaluator_matches_scikit_learn():
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = anycl.fit(toy_rows(24), modality="toyvec", max_steps=1, progress=False, log_with=None)
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(3, 6, generator=g) * 2
    labels = [i % 3 for i in range(60)]
    items = [(centres[y] + torch.randn(6, generator=g)).tolist() for y in labels]
    ev = ClassificationEvaluator(items, labels, test_fraction=0.25, seed=7, k=5)
    got = ev(model)
    emb = model.encode(items).numpy()
    tr, te = train_test_split(list(range(60)), test_size=0.25, random_state=7, stratify=[repr(y) for y in labels])
    ytr, yte = [labels[i] for i in tr], [labels[i] for i in te]
    knn = KNeighborsClassifier(n_neighbors=5, metric="cosine").fit(emb[tr], ytr)
    assert got["knn@5_accuracy"] == pytest.approx(knn.score(emb[te], yte), abs=1e-9)
    lr = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=0)).fit(emb[tr], ytr)
    assert got["linear_probe_accuracy"] == pytest.approx(lr.score(emb[te], yte), abs=1e-9)
    assert ev.primary_metric == "linear_probe_accuracy"


# -- the kind, from the columns or eval_kind ---------------------------------------------------------------------------
def test_kind_from_columns_or_eval_kind():
    pairs = [{"anchor": f"q{i}", "positive": f"d{i}", "negative": f"n{i}"} for i in range(4)]
    scored = [{"anchor": f"q{i}", "positive": f"d{i}", "score": i / 4} for i in range(4)]
    labelled = [{"anchor": f"x{i}", "label": i % 2} for i in range(6)]
    assert isinstance(build_evaluator(scored), STSEvaluator)
    assert isinstance(build_evaluator(pairs), RetrievalEvaluator)
    assert isinstance(build_evaluator(labelled), KNNEvaluator)
    assert isinstance(build_evaluator(pairs, "triplet"), TripletEvaluator)
    assert isinstance(build_evaluator(pairs, "reranking"), RerankingEvaluator)
    assert isinstance(build_evaluator(labelled, "classification"), ClassificationEvaluator)
    from anycl.evaluation import primary_metric

    assert primary_metric(build_evaluator(labelled)) == "knn@5_accuracy"
    assert primary_metric(build_evaluator(labelled[:4])) == "knn@3_accuracy"  # k capped by the items
    assert primary_metric(build_evaluator(scored)) == "sts_spearman"
    own = lambda model: {"x": 1.0}  # noqa: E731
    assert build_evaluator(own) is own
    with pytest.raises(ConfigError, match="eval_kind must be one of"):
        build_evaluator(pairs, "sst")
    with pytest.raises(DataError, match="STS evaluation needs anchor, positive and score"):
        build_evaluator(pairs, "sts")
    with pytest.raises(DataError, match="triplet evaluation needs anchor, positive and negative"):
        build_evaluator(scored, "triplet")
    with pytest.raises(DataError, match="classification evaluation needs a 'label' column"):
        build_evaluator(pairs, "classification")


# -- during training: logged, reported, early stopping -----------------------------------------------------------------
TOY = dict(modality="toyvec", batch_size=8, progress=False, seed=1)


def scored_toy(n, seed):
    rows = toy_rows(n, seed=seed)
    for r in rows:
        r["score"] = float(
            torch.nn.functional.cosine_similarity(torch.tensor(r["anchor"]), torch.tensor(r["positive"]), dim=0)
        )
    return rows


def test_sts_metrics_are_logged_to_tensorboard_and_the_report(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    model = anycl.fit(
        scored_toy(32, 0),
        loss="cosent",
        eval_dataset=scored_toy(16, 1),
        eval_every=2,
        max_steps=4,
        output_dir=str(tmp_path / "run"),
        **TOY,
    )
    assert [h["step"] for h in model.trainer.eval_history] == [0, 2, 4]  # a baseline before training, then every 2
    assert set(model.info["final_metrics"]) == {"step", "sts_spearman", "sts_pearson"}
    logs = next((tmp_path / "run" / "logs").rglob("events.out.tfevents*")).parent
    acc = EventAccumulator(str(logs))
    acc.Reload()
    assert {"eval/sts_spearman", "eval/sts_pearson"} <= set(acc.Tags()["scalars"])
    values = [e.value for e in acc.Scalars("eval/sts_spearman")]
    assert values == pytest.approx([h["sts_spearman"] for h in model.trainer.eval_history], abs=1e-6)
    assert "sts_spearman" in (tmp_path / "run" / "report.html").read_text()


def test_early_stopping_on_the_watched_metric():
    values = iter([0.4, 0.5, 0.6, 0.55, 0.58, 0.59, 0.9, 0.9, 0.9])  # the first: the step-0 baseline

    def evaluator(model):
        return {"score": next(values), "other": 0.0}

    model = anycl.fit(
        toy_rows(80),
        eval_dataset=evaluator,
        eval_every=1,
        early_stopping_patience=3,
        early_stopping_metric="score",
        epochs=1,
        log_with=None,
        **TOY,
    )
    # best 0.6 at step 2, then 3 evaluations without improvement: stops at step 5 of 10
    assert model.trainer.global_step == 5
    assert model.info["early_stopping"] == {"metric": "score", "best": 0.6, "best_step": 2, "stopped_step": 5}


def test_early_stopping_uses_keep_best_metric_or_the_primary_metric():
    seq = [0.0, 0.1, 0.3, 0.2, 0.2, 0.9]  # the first: the step-0 baseline
    calls = []

    def evaluator(model):
        calls.append(1)
        return {"m": seq[len(calls) - 1]}

    model = anycl.fit(
        toy_rows(80),
        eval_dataset=evaluator,
        eval_every=1,
        early_stopping_patience=2,
        keep_best="m",
        log_with=None,
        **TOY,
    )
    assert model.trainer.global_step == 4 and model.info["best"]["step"] == 2

    # without a name: the evaluator's primary metric
    class Watched:
        primary_metric = "m"

        def __init__(self):
            self.values = iter([0.0, 0.4, 0.3, 0.5, 0.2, 0.1, 0.0])  # the first: the step-0 baseline

        def __call__(self, model):
            return {"m": next(self.values), "n": 1.0}

    model = anycl.fit(
        toy_rows(80), eval_dataset=Watched(), eval_every=1, early_stopping_patience=2, log_with=None, **TOY
    )
    assert model.info["early_stopping"] == {"metric": "m", "best": 0.5, "best_step": 3, "stopped_step": 5}
    # STS data: keep_best=True watches the primary metric, sts_spearman
    model = anycl.fit(
        scored_toy(32, 0),
        loss="cosent",
        eval_dataset=scored_toy(16, 1),
        max_steps=2,
        keep_best=True,
        log_with=None,
        **TOY,
    )
    assert model.info["best"]["metric"] == "sts_spearman"


def test_early_stopping_bad_inputs_are_config_errors():
    with pytest.raises(ConfigError, match="early_stopping_patience needs an eval_dataset"):
        anycl.fit(toy_rows(16), early_stopping_patience=2, log_with=None, **TOY)
    with pytest.raises(ConfigError, match="early_stopping_patience must be an integer >= 1, got 0"):
        anycl.fit(toy_rows(16), early_stopping_patience=0, eval_dataset=lambda m: {"a": 1.0}, log_with=None, **TOY)
    with pytest.raises(ConfigError, match="does not name a primary metric"):
        anycl.fit(toy_rows(16), early_stopping_patience=2, eval_dataset=lambda m: {"a": 1.0}, log_with=None, **TOY)
    with pytest.raises(ConfigError, match="early stopping watches 'b', which is not a metric"):
        anycl.fit(
            toy_rows(16),
            early_stopping_patience=2,
            early_stopping_metric="b",
            eval_dataset=lambda m: {"a": 1.0},
            log_with=None,
            **TOY,
        )


def test_early_stopping_resumes_from_a_checkpoint_where_it_was(tmp_path):
    # patience 3: the step-0 baseline stays best until step 3 (patience 2 would stop at step 2, before any checkpoint)
    opts = dict(
        loss="cosent",
        eval_dataset=scored_toy(16, 1),
        eval_every=1,
        early_stopping_patience=3,
        epochs=3,
        lr=0.2,
        log_with=None,
        **TOY,
    )
    full = anycl.fit(
        scored_toy(64, 0), output_dir=str(tmp_path / "a"), checkpoint_every=2, keep_checkpoints=None, **opts
    )
    stop = full.info["early_stopping"]
    assert stop["best_step"] < 4 < stop["stopped_step"]  # improved before the step-4 checkpoint, stopped after it
    resumed = anycl.fit(
        scored_toy(64, 0),
        output_dir=str(tmp_path / "a"),
        resume_from=str(tmp_path / "a" / "checkpoints" / "step-4"),
        **opts,
    )
    assert [h["step"] for h in resumed.trainer.eval_history] == list(range(5, stop["stopped_step"] + 1))
    assert resumed.info["early_stopping"] == stop and resumed.trainer.global_step == full.trainer.global_step
