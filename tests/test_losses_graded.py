"""Graded-pair and distillation losses: each against its formula written out as a loop, and against
sentence-transformers' own loss on the same embeddings and scores; the score columns through the data
layer (numbers checked, range per loss) and through ``anycl.fit``."""

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from toy_modality import toy_rows

import anycl
from anycl.errors import ConfigError, DataError

pytestmark = pytest.mark.usefixtures("one_thread")


def _emb(b=7, d=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, d, generator=g), torch.randn(b, d, generator=g), torch.randn(b, d, generator=g)


class _STModel(torch.nn.Module):
    """What sentence-transformers' losses need from a model when they are given embeddings."""

    def __init__(self, dim=10):
        super().__init__()
        self.dim = dim

    def get_sentence_embedding_dimension(self):
        return self.dim


# -- formulas written out ------------------------------------------------------------------------------
def cosent_by_loop(sims, scores, scale=20.0):
    terms = [
        scale * (sims[j] - sims[i]) for i, j in itertools.product(range(len(sims)), repeat=2) if scores[i] > scores[j]
    ]
    return math.log(1 + sum(math.exp(t) for t in terms))


def angle_by_loop(u, v):
    u, v = F.normalize(u, dim=0).tolist(), F.normalize(v, dim=0).tolist()
    h = len(u) // 2
    total = 0j
    for k in range(h):
        total += complex(u[k], u[k + h]) * complex(v[k], v[k + h]).conjugate()
    return abs(total.real + total.imag)


def test_cosent_matches_its_formula_and_sentence_transformers():
    from sentence_transformers.sentence_transformer.losses import CoSENTLoss

    a, p, _ = _emb()
    scores = torch.tensor([0.1, 0.9, 0.5, 0.5, 0.0, 0.7, 0.3])
    got = anycl.losses.get("cosent")(a, p, score=scores)
    sims = F.cosine_similarity(a, p).tolist()
    assert float(got) == pytest.approx(cosent_by_loop(sims, scores.tolist()), rel=1e-5)
    st = CoSENTLoss(_STModel()).compute_loss_from_embeddings([a, p], scores)
    assert float(got) == pytest.approx(float(st), rel=1e-5)
    # scale is an option, and equal scores give no term (log 1 = 0)
    got5 = anycl.losses.get("cosent", scale=5.0)(a, p, score=scores)
    assert float(got5) == pytest.approx(cosent_by_loop(sims, scores.tolist(), 5.0), rel=1e-5)
    assert float(anycl.losses.get("cosent")(a, p, score=torch.ones(7))) == 0.0


def test_angle_matches_its_formula_and_sentence_transformers():
    from sentence_transformers.sentence_transformer.losses import AnglELoss

    a, p, _ = _emb(d=11)  # odd width: padded with a zero
    scores = torch.tensor([3.0, 1.0, 4.0, 1.5, 5.0, 9.0, 2.0])
    from anycl.losses.graded import angle_similarity

    padded = F.pad(a, (0, 1)), F.pad(p, (0, 1))
    sims = [angle_by_loop(padded[0][i], padded[1][i]) for i in range(7)]
    torch.testing.assert_close(angle_similarity(a, p), torch.tensor(sims), rtol=1e-5, atol=1e-6)
    got = anycl.losses.get("angle")(a, p, score=scores)
    assert float(got) == pytest.approx(cosent_by_loop(sims, scores.tolist()), rel=1e-5)
    st = AnglELoss(_STModel(11)).compute_loss_from_embeddings([a, p], scores)
    assert float(got) == pytest.approx(float(st), rel=1e-5)


def test_cosine_mse_matches_its_formula_and_sentence_transformers():
    from sentence_transformers.sentence_transformer.losses import CosineSimilarityLoss

    a, p, _ = _emb()
    scores = torch.linspace(-1, 1, 7)
    got = anycl.losses.get("cosine_mse")(a, p, score=scores)
    cos = F.cosine_similarity(a, p).tolist()
    assert float(got) == pytest.approx(sum((c - s) ** 2 for c, s in zip(cos, scores.tolist())) / 7, rel=1e-5)
    st = CosineSimilarityLoss(_STModel()).compute_loss_from_embeddings([a, p], scores)
    assert float(got) == pytest.approx(float(st), rel=1e-5)


@pytest.mark.parametrize("similarity", ["dot", "cosine"])
def test_margin_mse_matches_its_formula_and_sentence_transformers(similarity):
    from sentence_transformers import util
    from sentence_transformers.sentence_transformer.losses import MarginMSELoss

    a, p, n = _emb()
    pos, neg = torch.linspace(2, 9, 7), torch.linspace(0, 3, 7)
    got = anycl.losses.get("margin_mse", similarity=similarity)(
        a, p, n.unsqueeze(1), positive_score=pos, negative_score=neg
    )
    f = (lambda x, y: float(x @ y)) if similarity == "dot" else (lambda x, y: float(F.cosine_similarity(x, y, dim=0)))
    want = sum(((f(a[i], p[i]) - f(a[i], n[i])) - (pos[i] - neg[i])) ** 2 for i in range(7)) / 7
    assert float(got) == pytest.approx(float(want), rel=1e-5)
    fct = util.pairwise_dot_score if similarity == "dot" else util.pairwise_cos_sim
    st = MarginMSELoss(_STModel(), similarity_fct=fct).compute_loss_from_embeddings([a, p, n], pos - neg)
    assert float(got) == pytest.approx(float(st), rel=1e-5)


def test_distill_mse_matches_its_formula_and_sentence_transformers():
    from sentence_transformers.sentence_transformer.losses import MSELoss

    a, p, t = _emb()
    loss = anycl.losses.get("distill_mse", teacher=_FakeTeacher())
    got = loss(a, p, teacher=t)
    want = (
        sum(float(((a[i] - t[i]) ** 2).sum()) for i in range(7))
        + sum(float(((p[i] - t[i]) ** 2).sum()) for i in range(7))
    ) / (2 * 7 * 10)
    assert float(got) == pytest.approx(want, rel=1e-5)
    st = MSELoss(_STModel()).compute_loss_from_embeddings([a, p], [t, t])
    assert float(got) == pytest.approx(float(st), rel=1e-5)


class _FakeTeacher:
    """Any object with a sentence-transformers-like ``encode`` serves as a teacher."""

    def encode(self, items, **kw):
        return torch.tensor([[float(len(x)), 1.0] for x in items])


# -- the data layer -----------------------------------------------------------------------------------------
TOY = dict(modality="toyvec", batch_size=8, epochs=1, progress=False, log_with=None, seed=1)


def scored_rows(n=24, scale=1.0):
    rows = toy_rows(n)
    for i, r in enumerate(rows):
        r["score"] = scale * (i % 5) / 4
    return rows


def test_score_columns_reach_the_loss_through_fit():
    seen = []

    @anycl.losses.register("record_scores", override=True)
    class Record(anycl.losses.CoSENT):
        def forward(self, anchor, positive, negative=None, labels=None, score=None):
            seen.append(score.clone())
            return super().forward(anchor, positive, score=score)

    rows = scored_rows()
    model = anycl.fit(rows, loss="record_scores", sampler_options={"shuffle": False}, **TOY)
    assert model.trainer.global_step == 3
    torch.testing.assert_close(torch.cat(seen), torch.tensor([r["score"] for r in rows], dtype=torch.float32))


@pytest.mark.parametrize("loss", ["cosent", "angle", "cosine_mse"])
def test_graded_losses_train_toy_pairs(loss):
    losses = []
    anycl.fit(
        scored_rows(),
        loss=loss,
        callbacks=[lambda t, s, logs: losses.append(logs["loss"])],
        **{**TOY, "epochs": 3, "log_every": 1},
    )
    assert len(losses) == 9 and all(math.isfinite(x) for x in losses)


def test_score_outside_the_loss_range_or_not_a_number_is_a_data_error():
    with pytest.raises(DataError, match=r"row 1, column 'score' is 1.25, outside \[-1.0, 1.0\].*cosine_mse"):
        anycl.fit(scored_rows(scale=5.0), loss="cosine_mse", **TOY)
    anycl.fit(scored_rows(scale=5.0), loss="cosent", max_steps=1, **{k: v for k, v in TOY.items() if k != "epochs"})
    rows = scored_rows()
    rows[3]["score"] = "high"
    with pytest.raises(DataError, match=r"row 3, column 'score' is 'high' \(str\); a score must be a number"):
        anycl.fit(rows, loss="cosent", **TOY)
    rows[3]["score"] = float("nan")
    with pytest.raises(DataError, match="row 3, column 'score'.*finite"):
        anycl.fit(rows, loss="cosent", **TOY)
    rows[3]["score"] = None
    with pytest.raises(DataError, match="row 3, column 'score' is missing"):
        anycl.fit(rows, loss="cosent", **TOY)


def test_score_column_from_a_csv_with_a_word_names_the_row(tmp_path):
    import pandas as pd

    f = tmp_path / "sts.csv"
    pd.DataFrame({"anchor": ["a", "b", "c"], "positive": ["x", "y", "z"], "score": ["0.5", "n/a", "0.1"]}).to_csv(
        f, index=False
    )
    rows = anycl.data.to_rows(str(f))
    ok = {"anchor": lambda v, w: None, "positive": lambda v, w: None}
    anycl.data.inputs.check_items(rows, ok)  # a loss that does not read scores: the column is carried unread
    with pytest.raises(DataError, match=r"row 0, column 'score' is '0.5' \(str\)"):
        anycl.data.inputs.check_items(rows, {**ok, "score": anycl.data.inputs.check_score})


def test_a_score_column_a_loss_does_not_read_is_left_alone(caplog):
    rows = toy_rows(16)
    for i, r in enumerate(rows):
        r["score"] = "high" if i % 2 else None
    model = anycl.fit(rows, loss="infonce", max_steps=1, **{k: v for k, v in TOY.items() if k != "epochs"})
    assert model.trainer.global_step == 1
    assert "does not read the column(s) ['score']" in caplog.text


def test_missing_score_columns_and_negatives_are_config_errors():
    with pytest.raises(ConfigError, match=r"loss 'cosent' needs the column\(s\) \['score'\]"):
        anycl.fit(toy_rows(16), loss="cosent", **TOY)
    rows = toy_rows(16, negatives=2)
    for r in rows:
        r["positive_score"], r["negative_score"] = 1.0, 0.0
    with pytest.raises(ConfigError, match="exactly one hard-negative column"):
        anycl.fit(rows, loss="margin_mse", **TOY)


def test_margin_mse_trains_on_teacher_scores():
    rows = toy_rows(24, negatives=1)
    for i, r in enumerate(rows):
        r["positive_score"], r["negative_score"] = 5.0 + i % 3, float(i % 2)
    losses = []
    anycl.fit(
        rows,
        loss="margin_mse",
        callbacks=[lambda t, s, logs: losses.append(logs["loss"])],
        **{**TOY, "epochs": 6, "log_every": 1, "lr": 5e-3},
    )
    assert losses[-1] < losses[0]


# -- distillation ---------------------------------------------------------------------------------------------
def test_distillation_from_an_anycl_teacher_without_gradient_and_the_loss_falls():
    teacher = anycl.fit(toy_rows(24, seed=3), max_steps=2, **{k: v for k, v in TOY.items() if k != "epochs"})
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    losses = []
    student = anycl.fit(
        [r["anchor"] for r in toy_rows(32)],
        loss="distill_mse",
        loss_options={"teacher": teacher},
        callbacks=[lambda t, s, logs: losses.append(logs["loss"])],
        **{**TOY, "epochs": 8, "log_every": 1, "lr": 1e-2},
    )
    assert losses[-1] < 0.5 * losses[0]
    for k, v in teacher.state_dict().items():  # the teacher is never trained
        assert torch.equal(v, before[k]) and not any(
            p.requires_grad and p.grad is not None for p in teacher.parameters()
        )
    assert not any("teacher" in k for k in student.state_dict())  # not saved with the student


def test_distillation_teacher_from_a_sentence_transformers_path(minilm_path):
    from sentence_transformers import SentenceTransformer

    from anycl.model.teacher import open_teacher, teacher_embeddings

    texts = ["a cat sat on the mat", "rivers flow to the sea", "engines need fuel"]
    got = teacher_embeddings(open_teacher(minilm_path), texts)
    want = SentenceTransformer(minilm_path, device="cpu").encode(texts, convert_to_tensor=True)
    torch.testing.assert_close(got, want.float(), rtol=1e-4, atol=1e-5)
    assert not got.requires_grad


def test_distillation_bad_teacher_and_width_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="distill_mse needs a teacher"):
        anycl.fit(toy_rows(16), loss="distill_mse", **TOY)
    with pytest.raises(ConfigError, match="cannot open the teacher"):
        anycl.fit(toy_rows(16), loss="distill_mse", loss_options={"teacher": str(tmp_path / "nothing")}, **TOY)
    one_step = {k: v for k, v in TOY.items() if k != "epochs"}
    teacher = anycl.fit(toy_rows(16), max_steps=1, **one_step)  # embeds 12 wide
    with pytest.raises(
        ConfigError, match="teacher's embeddings are 12 wide but the student's are 4; give the student head=12"
    ):
        anycl.fit(toy_rows(16), loss="distill_mse", loss_options={"teacher": teacher}, head=4, **TOY)
    anycl.fit(toy_rows(16), loss="distill_mse", loss_options={"teacher": teacher}, head=12, max_steps=1, **one_step)


# -- text, through the whole stack ----------------------------------------------------------------------------
def graded_text():
    topics = ["cats", "rivers", "engines", "bread"]
    return [
        {
            "anchor": f"a question about {t}, number {i}",
            "positive": f"an answer on {t} ({i})",
            "negative": f"something on {topics[(k + 1) % 4]} ({i})",
            "score": (i % 4) / 3,
            "positive_score": 8.0 - i,
            "negative_score": float(i % 3),
        }
        for i in range(4)
        for k, t in enumerate(topics)
    ]


def test_every_graded_or_teacher_loss_is_trained_on_text_here():
    mine = {
        c
        for c in map(anycl.losses.LOSSES.lookup, anycl.losses.names())
        if isinstance(c, type)
        and c.__module__.startswith("anycl.losses")
        and (getattr(c, "score_columns", ()) or getattr(c, "needs_teacher", False))
    }
    assert mine == {
        anycl.losses.LOSSES.lookup(n)
        for n in ["cosent", "angle", "cosine_mse", "margin_mse", "distill_mse", "distill_kl"]
    }


@pytest.mark.parametrize("name", ["cosent", "angle", "cosine_mse", "margin_mse", "distill_mse", "distill_kl"])
def test_graded_losses_train_text(name, fit_text_two_steps, minilm_path):
    rows = graded_text()
    options = {"teacher": minilm_path} if name == "distill_mse" else {}
    if name == "distill_mse":
        rows = [r["anchor"] for r in rows]
    elif name not in ("margin_mse", "distill_kl"):
        rows = [{k: v for k, v in r.items() if k in ("anchor", "positive", "score")} for r in rows]
    model, steps = fit_text_two_steps(rows, name, options)
    assert model.trainer.global_step == 2 and all(math.isfinite(s) for s in steps)


@pytest.mark.parametrize("loss", ["cosent", "margin_mse"])
def test_gradcache_gives_graded_losses_the_full_batch_update(loss):
    rows = toy_rows(24, negatives=1 if loss == "margin_mse" else 0, scores=True)
    for i, r in enumerate(rows):
        if loss == "margin_mse":
            r["negative"] = r.pop("negative_1")
            r["positive_score"], r["negative_score"] = r.pop("score") + 1.0, float(i % 3) / 2
    opts = dict(loss=loss, max_grad_norm=None, **{**TOY, "epochs": 2, "mixed_precision": "no"})  # fp32's equality
    plain = anycl.fit(rows, **opts)
    cached = anycl.fit(rows, gradcache_mini_batch=3, **opts)
    for k, v in plain.state_dict().items():
        torch.testing.assert_close(cached.state_dict()[k], v, rtol=1e-5, atol=1e-6)
