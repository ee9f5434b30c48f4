"""InfoNCE's ``directions``, ``partition_mode``, ``hardness_mode`` and ``hardness_strength`` against
sentence-transformers' own ``MultipleNegativesRankingLoss`` with the same options: on the same embeddings (value
and the gradients of every embedding, with 0, 1 and 2 hard-negative columns) and, through the model, on the
same batch (the gradients of every weight)."""

import pytest
import torch
from test_losses_st_parity import ANCHORS, NEGATIVES, OTHERS, assert_same, run_both, st_model  # noqa: F401

import anycl
from anycl.errors import ConfigError

pytestmark = pytest.mark.usefixtures("one_thread")

Q2D, Q2Q, D2Q, D2D = "query_to_doc", "query_to_query", "doc_to_query", "doc_to_doc"
JOINT = [(Q2D,), (Q2D, Q2Q), (Q2D, D2Q), (Q2D, D2D), (Q2D, D2Q, D2D), (Q2D, Q2Q, D2Q, D2D), (D2D, Q2D, Q2Q)]
PER_DIRECTION = [(Q2D,), (Q2D, D2Q)]


def _embeddings(columns, batch=6, dim=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, dim, generator=g) for _ in range(columns)]


def _compare(options, columns, scale=20.0, atol=1e-6):
    """ST's loss and anycl's InfoNCE (through its sentence-transformers name) on the same leaf embeddings."""
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    st_loss = MultipleNegativesRankingLoss(torch.nn.Identity(), scale=scale, **options)
    ours = anycl.losses.get("MultipleNegativesRankingLoss", scale=scale, **options)
    st_in = [e.clone().requires_grad_() for e in _embeddings(columns)]
    our_in = [e.clone().requires_grad_() for e in _embeddings(columns)]
    st_value = st_loss.compute_loss_from_embeddings(st_in, None)
    st_value.backward()
    negative = torch.stack(our_in[2:], dim=1) if columns > 2 else None
    value = ours(our_in[0], our_in[1], negative)
    value.backward()
    assert float(value.detach()) == pytest.approx(float(st_value.detach()), rel=1e-6, abs=1e-6)
    for a, b in zip(our_in, st_in):
        torch.testing.assert_close(a.grad, b.grad, atol=atol, rtol=1e-5)
    return ours


@pytest.mark.parametrize("columns", [2, 3, 4])
@pytest.mark.parametrize("directions", JOINT)
def test_joint_directions_equal_sentence_transformers(directions, columns):
    _compare({"directions": directions, "partition_mode": "joint"}, columns)


@pytest.mark.parametrize("columns", [2, 4])
@pytest.mark.parametrize("directions", PER_DIRECTION)
def test_per_direction_equals_sentence_transformers(directions, columns):
    ours = _compare({"directions": directions, "partition_mode": "per_direction"}, columns)
    assert ours.symmetric == (D2Q in directions) and ours.directions is None  # InfoNCE's own (fused) paths


@pytest.mark.parametrize("columns", [2, 3, 4])
@pytest.mark.parametrize("mode", ["in_batch_negatives", "hard_negatives", "all_negatives"])
@pytest.mark.parametrize("directions", [(Q2D,), (Q2D, Q2Q, D2Q, D2D)])
def test_hardness_modes_equal_sentence_transformers(mode, directions, columns):
    _compare({"directions": directions, "hardness_mode": mode, "hardness_strength": 5.0}, columns)


def test_hardness_per_direction_and_zero_strength_equal_sentence_transformers():
    options = {"directions": (Q2D, D2Q), "partition_mode": "per_direction", "hardness_mode": "all_negatives"}
    _compare({**options, "hardness_strength": 9.0}, 3)
    ours = _compare({**options, "hardness_strength": 0.0}, 3)  # no penalty: the plain symmetric path
    assert ours.directions is None and ours.symmetric


def test_directions_given_as_a_list_and_the_rows_of_a_gathered_batch():
    a, p, n1, n2 = _embeddings(4)
    negative = torch.stack([n1, n2], dim=1)
    loss = anycl.losses.get("infonce", temperature=0.05, directions=[Q2D, Q2Q, D2Q, D2D])
    whole = loss(a, p, negative)
    # each process scores its own rows against every candidate: the rows' means weighted by their counts
    parts = [loss(a, p, negative, rows=slice(0, 2)), loss(a, p, negative, rows=slice(2, 6))]
    torch.testing.assert_close(whole, (2 * parts[0] + 4 * parts[1]) / 6)


def test_labels_mask_same_label_candidates_in_every_direction():
    a, p = _embeddings(2)
    loss = anycl.losses.get("infonce", directions=(Q2D, Q2Q, D2Q, D2D))
    labels = torch.tensor([0, 0, 1, 2, 3, 4])
    # rows 0 and 1 share a label: the same as a batch where the other one is absent from their candidates
    with_labels = loss(a, p, labels=labels, rows=slice(0, 1))
    alone = loss(torch.cat([a[:1], a[2:]]), torch.cat([p[:1], p[2:]]), rows=slice(0, 1))
    torch.testing.assert_close(with_labels, alone)


def test_the_model_gradients_equal_sentence_transformers(st_model):  # noqa: F811
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    options = {"directions": (Q2D, Q2Q, D2Q, D2D), "hardness_mode": "in_batch_negatives", "hardness_strength": 9.0}
    st_loss = MultipleNegativesRankingLoss(st_model, **options)
    ours = anycl.losses.get("MultipleNegativesRankingLoss", **options)
    assert_same(*run_both(st_model, st_loss, ours, [ANCHORS, OTHERS, NEGATIVES], None))


@pytest.mark.parametrize(
    "options, match",
    [
        ({"directions": ()}, "at least 'query_to_doc'"),
        ({"directions": (Q2Q,)}, "must include 'query_to_doc'"),
        ({"directions": (Q2D, "doc_to_everything")}, "unknown direction"),
        ({"directions": (Q2D, Q2D)}, "twice"),
        ({"partition_mode": "both"}, "partition_mode must be one of"),
        ({"directions": (Q2D, Q2Q), "partition_mode": "per_direction"}, "use partition_mode='joint'"),
        ({"hardness_mode": "hardest"}, "hardness_mode must be None or one of"),
        ({"hardness_mode": "hard_negatives", "hardness_strength": -1}, "hardness_strength must be a number >= 0"),
        ({"directions": (Q2D, D2D), "chunk_size": 2}, "without chunk_size"),
        ({"directions": (Q2D, D2Q), "symmetric": True}, "not both"),
    ],
)
def test_bad_direction_options_are_refused(options, match):
    with pytest.raises(ValueError, match=match):
        anycl.losses.get("infonce", **options)


def test_direction_path_refuses_a_queue_and_a_guide():
    a, p = _embeddings(2)
    loss = anycl.losses.get("infonce", directions=(Q2D, D2D))
    with pytest.raises(ValueError, match="memory-queue"):
        loss(a, p, queue=torch.randn(3, 8))
    with pytest.raises(ValueError, match="guide="):
        loss(a, p, guide={"anchor": a, "positive": p})


def test_symmetric_alias_and_directions_conflict_names_both():
    with pytest.raises((ValueError, ConfigError), match="not both"):
        anycl.losses.get("MultipleNegativesSymmetricRankingLoss", directions=(Q2D, D2Q, D2D))


def test_fit_trains_with_directions(fit_text_two_steps):
    rows = [{"anchor": a, "positive": o} for a, o in zip(ANCHORS * 2, OTHERS * 2)]
    options = {"directions": [Q2D, Q2Q, D2Q, D2D], "hardness_mode": "in_batch_negatives", "hardness_strength": 9}
    _, losses = fit_text_two_steps(rows, "MultipleNegativesRankingLoss", options)
    assert len(losses) == 2 and all(torch.isfinite(torch.tensor(losses)))
