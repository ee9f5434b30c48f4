"""The losses sentence-transformers users know, against sentence-transformers' own classes on the same model
and batch: each loss's value and its gradients with respect to every parameter of the model (and of the
softmax classifier). The model is all-MiniLM-L6-v2 cut to one layer, in eval mode (no dropout), so both
sides see the same embeddings; the anycl loss gets the model's embeddings of each column."""

import copy

import pytest
import torch

import anycl
from anycl.errors import ConfigError

pytestmark = pytest.mark.usefixtures("one_thread")

ANCHORS = ["a cat sits on the mat", "rivers run to the sea", "engines need fuel", "bread is baked", "stars shine"]
OTHERS = ["a kitten on a rug", "the sea takes the river", "a car has an engine", "an oven bakes loaves", "night sky"]
NEGATIVES = ["chess is a game", "violins have strings", "glaciers are ice", "a dog barks", "the stock market fell"]


@pytest.fixture(scope="module")
def st_model(minilm_path):
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(minilm_path, device="cpu")
    st[0].auto_model.encoder.layer = st[0].auto_model.encoder.layer[:1]
    return st.eval()


def _features(st, *columns):
    return [st.tokenize(list(c)) for c in columns]


def _grads(st, extra=()):
    params = [p for p in st.parameters() if p.requires_grad] + list(extra)
    out = [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in params]
    for p in params:
        p.grad = None
    return out


def run_both(st, st_loss, anycl_loss, columns, st_labels, extra=(), **rows):
    """(ST's value, anycl's value), both backpropagated, and the two lists of gradients."""
    for p in st.parameters():
        p.grad = None
    st_value = st_loss(_features(st, *columns), st_labels)
    st_value.backward()
    st_grads = _grads(st, extra)
    reps = [st(dict(f))["sentence_embedding"] for f in _features(st, *columns)]
    negative = torch.stack(reps[2:], dim=1) if len(reps) > 2 else None
    value = anycl_loss(reps[0], reps[1], negative, **rows)
    value.backward()
    return float(st_value.detach()), float(value.detach()), st_grads, _grads(st, extra)


def assert_same(st_value, value, st_grads, grads, atol=1e-5):
    assert value == pytest.approx(st_value, rel=1e-5, abs=1e-6)
    assert any(float(g.abs().max()) > 0 for g in st_grads), "the test batch gives no gradient"
    for g_st, g in zip(st_grads, grads):
        torch.testing.assert_close(g, g_st, atol=atol, rtol=1e-4)


PAIR_LABELS = torch.tensor([1, 0, 1, 0, 0])


@pytest.mark.parametrize("metric", ["cosine", "euclidean", "manhattan"])
def test_contrastive_equals_sentence_transformers(st_model, metric):
    from sentence_transformers.sentence_transformer.losses import ContrastiveLoss, SiameseDistanceMetric

    st_metric = {"cosine": "COSINE_DISTANCE", "euclidean": "EUCLIDEAN", "manhattan": "MANHATTAN"}[metric]
    margin = {"cosine": 0.5, "euclidean": 1.2, "manhattan": 20.0}[metric]  # some negatives inside the margin
    st_loss = ContrastiveLoss(st_model, distance_metric=getattr(SiameseDistanceMetric, st_metric), margin=margin)
    ours = anycl.losses.get("ContrastiveLoss", margin=margin, metric=metric)
    assert ours.registry_name == "contrastive"
    assert_same(*run_both(st_model, st_loss, ours, [ANCHORS, OTHERS], PAIR_LABELS, labels=PAIR_LABELS))


@pytest.mark.parametrize("labels", [[1, 0, 1, 0, 0], [1, 1, 1, 1, 1], [0, 0, 0, 0, 0]])
def test_online_contrastive_equals_sentence_transformers(st_model, labels):
    from sentence_transformers.sentence_transformer.losses import OnlineContrastiveLoss

    labels = torch.tensor(labels)
    ours = anycl.losses.get("OnlineContrastiveLoss", margin=0.9)
    got = run_both(
        st_model, OnlineContrastiveLoss(st_model, margin=0.9), ours, [ANCHORS, OTHERS], labels, labels=labels
    )
    assert_same(*got)


def test_labelled_pairs_refuse_other_labels():
    a, p = torch.randn(3, 4), torch.randn(3, 4)
    with pytest.raises(ValueError, match="0 \\(dissimilar\\) or 1"):
        anycl.losses.get("contrastive")(a, p, labels=torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="needs a 'label' column"):
        anycl.losses.get("online_contrastive")(a, p)
    with pytest.raises(ValueError, match="metric must be one of"):
        anycl.losses.get("contrastive", metric="dot")


@pytest.mark.parametrize("mini_batched", [False, True])
def test_mega_batch_margin_equals_sentence_transformers(st_model, mini_batched):
    from sentence_transformers.sentence_transformer.losses import MegaBatchMarginLoss

    st_loss = MegaBatchMarginLoss(st_model, use_mini_batched_version=mini_batched, mini_batch_size=2)
    ours = anycl.losses.get("MegaBatchMarginLoss")
    assert_same(*run_both(st_model, st_loss, ours, [ANCHORS, OTHERS], None))
    with pytest.raises(ValueError, match="no hard-negative column"):
        ours(torch.randn(2, 3), torch.randn(2, 3), torch.randn(2, 1, 3))


@pytest.mark.parametrize("options", [{}, {"concatenation_sent_multiplication": True, "concatenation_sent_rep": False}])
def test_softmax_equals_sentence_transformers_and_its_classifier_learns(st_model, options):
    from sentence_transformers.sentence_transformer.losses import SoftmaxLoss

    torch.manual_seed(0)
    st_loss = SoftmaxLoss(st_model, embedding_dimension=384, num_labels=3, **options)
    ours = anycl.losses.get("SoftmaxLoss", num_labels=3, embedding_dimension=384, **options)
    ours.classifier.load_state_dict(st_loss.classifier.state_dict())
    labels = torch.tensor([0, 1, 2, 1, 0])
    st_value, value, st_grads, grads = run_both(
        st_model, st_loss, ours, [ANCHORS, OTHERS], labels, extra=[*st_loss.classifier.parameters()], labels=labels
    )
    # ST's classifier got its gradient in the first pass; ours in the second (its parameters are anycl's own)
    ours_grads = [p.grad for p in ours.classifier.parameters()]
    assert_same(st_value, value, st_grads[:-2], grads[:-2])
    for g_st, g in zip(st_grads[-2:], ours_grads):
        torch.testing.assert_close(g, g_st, atol=1e-5, rtol=1e-4)
    assert {n for n, _ in ours.named_parameters()} == {"classifier.weight", "classifier.bias"}


def test_softmax_options_and_labels_are_checked():
    with pytest.raises(ValueError, match="needs num_labels"):
        anycl.losses.get("softmax")
    loss = anycl.losses.get("softmax", num_labels=3)
    assert loss.classifier is None and loss.label_values == (0, 1, 2)
    loss.build(4)
    assert loss.classifier.in_features == 12
    with pytest.raises(ValueError, match="integers 0 … 2"):
        loss(torch.randn(2, 4), torch.randn(2, 4), labels=torch.tensor([0, 3]))
    with pytest.raises(ConfigError, match="'embedding_dimension' .* or 'dim'"):
        anycl.losses.get("SoftmaxLoss", num_labels=3, embedding_dimension=4, dim=4)


@pytest.mark.parametrize(
    "options", [{}, {"temperature": 2.0}, {"student_temperature": 0.5, "teacher_temperature": 3.0}]
)
@pytest.mark.parametrize("similarity", ["dot", "cosine"])
def test_distill_kl_equals_sentence_transformers(st_model, options, similarity):
    from sentence_transformers import util
    from sentence_transformers.sentence_transformer.losses import DistillKLDivLoss

    fct = util.pairwise_dot_score if similarity == "dot" else util.pairwise_cos_sim
    st_loss = DistillKLDivLoss(st_model, similarity_fct=fct, **options)
    ours = anycl.losses.get("DistillKLDivLoss", similarity=similarity, **options)
    teacher = torch.tensor([[9.0, 1.0], [2.0, 5.0], [7.5, 7.0], [3.0, -1.0], [0.5, 4.0]])
    got = run_both(
        st_model,
        st_loss,
        ours,
        [ANCHORS, OTHERS, NEGATIVES],
        teacher,
        positive_score=teacher[:, 0],
        negative_score=teacher[:, 1],
    )
    assert_same(*got)


# -- the sentence-transformers names of anycl's older losses, on the same model and batch -----------------------
def test_multiple_negatives_ranking_aliases_equal_sentence_transformers(st_model):
    from sentence_transformers.sentence_transformer.losses import (
        MultipleNegativesRankingLoss,
        MultipleNegativesSymmetricRankingLoss,
    )

    cols = [ANCHORS, OTHERS, NEGATIVES]
    ours = anycl.losses.get("MultipleNegativesRankingLoss", scale=10.0)
    assert_same(*run_both(st_model, MultipleNegativesRankingLoss(st_model, scale=10.0), ours, cols, None))
    ours = anycl.losses.get("MultipleNegativesSymmetricRankingLoss")
    assert_same(*run_both(st_model, MultipleNegativesSymmetricRankingLoss(st_model), ours, cols, None))


def test_triplet_alias_equals_sentence_transformers(st_model):
    from sentence_transformers.sentence_transformer.losses import TripletLoss

    ours = anycl.losses.get("TripletLoss", triplet_margin=1.0)
    got = run_both(st_model, TripletLoss(st_model, triplet_margin=1.0), ours, [ANCHORS, OTHERS, NEGATIVES], None)
    assert_same(*got, atol=1e-4)  # F.pairwise_distance adds eps=1e-6 to the difference


def test_graded_aliases_equal_sentence_transformers(st_model):
    from sentence_transformers.sentence_transformer import losses as st_losses

    scores = torch.tensor([0.9, 0.1, 0.5, 0.3, 0.7])
    for st_name in ("CoSENTLoss", "AnglELoss", "CosineSimilarityLoss"):
        ours = anycl.losses.get(st_name)
        got = run_both(st_model, getattr(st_losses, st_name)(st_model), ours, [ANCHORS, OTHERS], scores, score=scores)
        assert_same(*got)


def test_every_table_alias_builds_and_every_refusal_names_what_to_use():
    from sentence_transformers.sentence_transformer import losses as st_losses

    from anycl.losses.st_names import ST_LOSSES

    for st_name, entry in ST_LOSSES.items():
        assert hasattr(st_losses, st_name), st_name  # a real sentence-transformers class
        if entry.anycl is not None:
            assert entry.anycl in anycl.losses.names()
            continue
        with pytest.raises(ConfigError, match=f"sentence-transformers' {st_name} is not one anycl loss") as err:
            anycl.losses.get(st_name)
        assert "loss=" in str(err.value) or "fit(" in str(err.value) or "anycl" in str(err.value)
    assert "gradcache_mini_batch" in _refusal("CachedMultipleNegativesRankingLoss")
    assert "guide=" in _refusal("GISTEmbedLoss")
    assert "matryoshka_dims" in _refusal("MatryoshkaLoss")
    assert "decoder" in _refusal("tsdae") and "decoder" in _refusal("DenoisingAutoEncoderLoss")
    assert anycl.losses.get("ContrastiveTensionLoss").registry_name == "contrastive_tension"


def _refusal(name):
    with pytest.raises(ConfigError) as err:
        anycl.losses.get(name)
    return str(err.value)


def test_names_match_in_any_spelling_and_anycl_names_come_first():
    assert anycl.losses.get("multiple_negatives_ranking_loss").registry_name == "infonce"
    assert anycl.losses.get("cosentloss").registry_name == "cosent"
    assert anycl.losses.get("contrastive").registry_name == "contrastive"
    with pytest.raises(ConfigError, match="'scale' .* or 'temperature'"):
        anycl.losses.get("MultipleNegativesRankingLoss", scale=20, temperature=0.05)
    with pytest.raises(ConfigError, match="scale must be a positive number"):
        anycl.losses.get("MultipleNegativesRankingLoss", scale=0)


def test_a_sentence_transformers_loss_object_is_refused_naming_its_name(st_model):
    from sentence_transformers.sentence_transformer.losses import CoSENTLoss, GISTEmbedLoss

    with pytest.raises(ConfigError, match="loss='CoSENTLoss' \\(anycl's 'cosent'\\)"):
        anycl.losses.get(CoSENTLoss(st_model))
    with pytest.raises(ConfigError, match="guide="):
        anycl.losses.get(GISTEmbedLoss(st_model, guide=copy.deepcopy(st_model)))


# -- through fit: the data each loss reads, checked before training -----------------------------------------------
def _labelled(labels):
    return [{"anchor": a, "positive": o, "label": y} for a, o, y in zip(ANCHORS + NEGATIVES, OTHERS + ANCHORS, labels)]


def test_fit_trains_labelled_pairs_and_the_softmax_classifier(fit_text_two_steps):
    _, losses = fit_text_two_steps(_labelled([1, 0] * 5), "ContrastiveLoss", None)
    assert len(losses) == 2 and all(torch.isfinite(torch.tensor(losses)))
    loss = anycl.losses.SoftmaxLoss(num_labels=3)
    _, losses = fit_text_two_steps(_labelled([0, 1, 2, 1, 0] * 2), loss, None)
    assert len(losses) == 2 and loss.classifier is not None
    before = anycl.losses.SoftmaxLoss(num_labels=3, dim=384)
    assert loss.classifier.weight.shape == before.classifier.weight.shape  # sized by build() from the model
    # the classifier's parameters are optimised with the encoder's: two AdamW steps moved every weight
    fresh = copy.deepcopy(loss)
    _, _ = fit_text_two_steps(_labelled([0, 1, 2, 1, 0] * 2), loss, None)
    assert not torch.equal(fresh.classifier.weight, loss.classifier.weight)


def test_fit_refuses_labels_a_loss_cannot_read(fit_text_two_steps):
    from anycl.errors import DataError

    with pytest.raises(DataError, match="row 2, column 'label' is 2; loss 'contrastive' needs the integers 0, 1"):
        fit_text_two_steps(_labelled([1, 0, 2, 1, 0] * 2), "contrastive", None)
    with pytest.raises(DataError, match="row 0, column 'label' is 'entailment'.* 0, 1, 2"):
        fit_text_two_steps(_labelled(["entailment", 0, 1, 2, 0] * 2), "softmax", {"num_labels": 3})


def test_fit_distill_kl_reads_the_teacher_scores(fit_text_two_steps):
    rows = [
        {"anchor": a, "positive": o, "negative": n, "positive_score": 5.0 + i, "negative_score": float(i)}
        for i, (a, o, n) in enumerate(zip(ANCHORS * 2, OTHERS * 2, NEGATIVES * 2))
    ]
    _, losses = fit_text_two_steps(rows, "DistillKLDivLoss", None)
    assert len(losses) == 2 and all(torch.isfinite(torch.tensor(losses)))
    with pytest.raises(ConfigError, match="needs the column\\(s\\) \\['positive_score', 'negative_score'\\]"):
        fit_text_two_steps([{k: r[k] for k in ("anchor", "positive", "negative")} for r in rows], "distill_kl", None)
