"""InfoNCE and triplet against direct computations of their textbook formulas."""

import math

import pytest
import torch
import torch.nn.functional as F

import anycl
from anycl.errors import UnknownNameError


def infonce_reference(a, p, n=None, t=0.05, labels=None, same_side=False):
    """Loop-by-loop: -log( exp(s_ii/t) / sum_j exp(s_ij/t) ), cosine similarity. ``same_side``: the
    other anchors a_j (j != i, not sharing i's label) are in the denominator too (GTE)."""
    a, p = F.normalize(a, dim=-1), F.normalize(p, dim=-1)
    cands = [p[j] for j in range(len(p))]
    if n is not None:
        n = F.normalize(n, dim=-1)
        cands += [n[i, k] for i in range(n.shape[0]) for k in range(n.shape[1])]
    total = 0.0
    for i in range(len(a)):
        terms = []
        for j, c in enumerate(cands):
            if labels is not None and j < len(p) and j != i and labels[j] == labels[i]:
                continue
            terms.append(torch.exp(torch.dot(a[i], c) / t))
        if same_side:
            terms += [
                torch.exp(torch.dot(a[i], a[j]) / t)
                for j in range(len(a))
                if j != i and (labels is None or labels[j] != labels[i])
            ]
        total = total - torch.log(torch.exp(torch.dot(a[i], p[i]) / t) / sum(terms))
    return total / len(a)


def test_infonce_matches_formula_values_and_gradients():
    torch.manual_seed(0)
    a = torch.randn(6, 8, dtype=torch.float64, requires_grad=True)
    p = torch.randn(6, 8, dtype=torch.float64, requires_grad=True)
    n = torch.randn(6, 2, 8, dtype=torch.float64, requires_grad=True)
    loss = anycl.losses.get("infonce", temperature=0.1)
    ours = loss(a, p, n)
    ref = infonce_reference(a, p, n, t=0.1)
    assert ours.item() == pytest.approx(ref.item(), rel=1e-5)
    g_ours = torch.autograd.grad(ours, (a, p, n))
    g_ref = torch.autograd.grad(ref, (a, p, n))
    for x, y in zip(g_ours, g_ref):
        torch.testing.assert_close(x.double(), y, rtol=1e-4, atol=1e-6)


def test_infonce_label_mask_and_symmetric():
    torch.manual_seed(1)
    a, p = torch.randn(5, 4, dtype=torch.float64), torch.randn(5, 4, dtype=torch.float64)
    labels = torch.tensor([0, 1, 0, 2, 1])
    ours = anycl.losses.get("infonce", temperature=0.2)(a, p, labels=labels)
    assert ours.item() == pytest.approx(infonce_reference(a, p, t=0.2, labels=labels).item(), rel=1e-5)
    sym = anycl.losses.get("infonce", temperature=0.2, symmetric=True)(a, p)
    both = 0.5 * (infonce_reference(a, p, t=0.2) + infonce_reference(p, a, t=0.2))
    assert sym.item() == pytest.approx(both.item(), rel=1e-5)


@pytest.mark.parametrize("labelled", [False, True])
def test_infonce_same_side_negatives_match_formula(labelled):
    torch.manual_seed(2)
    a, p = (
        torch.randn(6, 5, dtype=torch.float64, requires_grad=True),
        torch.randn(6, 5, dtype=torch.float64, requires_grad=True),
    )
    n = torch.randn(6, 2, 5, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([0, 1, 0, 2, 1, 3]) if labelled else None
    ours = anycl.losses.get("infonce", temperature=0.2, same_side_negatives=True)(a, p, n, labels=labels)
    ref = infonce_reference(a, p, n, t=0.2, labels=labels, same_side=True)
    assert ours.item() == pytest.approx(ref.item(), rel=1e-6)
    assert ours.item() > anycl.losses.get("infonce", temperature=0.2)(a, p, n, labels=labels).item()  # more negatives
    for x, y in zip(torch.autograd.grad(ours, (a, p, n)), torch.autograd.grad(ref, (a, p, n))):
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-8)
    # symmetric: the positives' direction has the other positives as negatives
    sym = anycl.losses.get("infonce", temperature=0.2, symmetric=True, same_side_negatives=True)(a, p, labels=labels)
    both = 0.5 * (
        infonce_reference(a, p, t=0.2, labels=labels, same_side=True)
        + infonce_reference(p, a, t=0.2, labels=labels, same_side=True)
    )
    assert sym.item() == pytest.approx(both.item(), rel=1e-6)
    # chunked scoring and per-process rows give the same loss
    chunked = anycl.losses.get("infonce", temperature=0.2, symmetric=True, same_side_negatives=True, chunk_size=4)
    assert chunked(a, p, labels=labels).item() == pytest.approx(sym.item(), rel=1e-6)
    parts = [
        anycl.losses.get("infonce", temperature=0.2, same_side_negatives=True)(a, p, n, labels=labels, rows=r)
        for r in (slice(0, 3), slice(3, 6))
    ]
    assert ((parts[0] + parts[1]) / 2).item() == pytest.approx(ours.item(), rel=1e-6)


def test_infonce_special_cases():
    x = torch.eye(4)
    # identical, orthogonal views: the positive scores 1/t, every other candidate 0
    t = 0.1
    expected = -math.log(math.exp(1 / t) / (math.exp(1 / t) + 3))
    assert anycl.losses.get("ntxent", temperature=t)(x, x).item() == pytest.approx(expected, rel=1e-3)
    # one pair: nothing to contrast, loss 0
    assert anycl.losses.get("infonce")(x[:1], x[:1]).item() == pytest.approx(0.0, abs=1e-6)


def test_infonce_stable_at_low_temperature_half_precision():
    torch.manual_seed(0)
    a = torch.randn(256, 32).bfloat16()
    p = (a.float() + 0.1 * torch.randn(256, 32)).bfloat16()
    out = anycl.losses.get("infonce", temperature=0.01)(a, p)
    assert torch.isfinite(out)


def triplet_reference(a, p, n, margin):
    a, p, n = (F.normalize(x, dim=-1) for x in (a, p, n))
    vals = []
    for i in range(len(a)):
        for k in range(n.shape[1]):
            vals.append(max(0.0, float(torch.dist(a[i], p[i]) - torch.dist(a[i], n[i, k]) + margin)))
    return sum(vals) / len(vals)


def test_triplet_matches_formula():
    torch.manual_seed(2)
    a, p, n = torch.randn(4, 6), torch.randn(4, 6), torch.randn(4, 3, 6)
    ours = anycl.losses.get("triplet", margin=0.5)(a, p, n)
    assert ours.item() == pytest.approx(triplet_reference(a, p, n, 0.5), rel=1e-4)


def test_triplet_in_batch_uses_other_positives():
    torch.manual_seed(3)
    a, p = torch.randn(4, 6), torch.randn(4, 6)
    ours = anycl.losses.get("triplet", margin=0.3)(a, p)
    a_, p_ = F.normalize(a, dim=-1), F.normalize(p, dim=-1)
    vals = [
        max(0.0, float(torch.dist(a_[i], p_[i]) - torch.dist(a_[i], p_[j]) + 0.3))
        for i in range(4)
        for j in range(4)
        if i != j
    ]
    assert ours.item() == pytest.approx(sum(vals) / len(vals), rel=1e-4)


def test_loss_bad_inputs_name_the_problem():
    loss = anycl.losses.get("infonce")
    with pytest.raises(ValueError, match="differ in batch size or embedding width"):
        loss(torch.randn(4, 8), torch.randn(3, 8))
    with pytest.raises(ValueError, match="differ in batch size or embedding width"):
        loss(torch.randn(4, 8), torch.randn(4, 7))
    with pytest.raises(ValueError, match="temperature must be > 0"):
        anycl.losses.get("infonce", temperature=0)
    with pytest.raises(TypeError, match="has no option"):
        anycl.losses.get("infonce", margin=1.0)


def test_registry_lists_names_and_registers_functions():
    with pytest.raises(UnknownNameError, match="registered losses: .*infonce"):
        anycl.losses.get("no-such-loss")

    @anycl.losses.register("test_cosine_pull")
    def cosine_pull(anchor, positive, negative=None, labels=None, weight=1.0):
        return weight * (1 - F.cosine_similarity(anchor, positive)).mean()

    assert "test_cosine_pull" in anycl.losses.names()
    x = torch.randn(3, 4)
    assert anycl.losses.get("test_cosine_pull", weight=2.0)(x, x).item() == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="already registered"):
        anycl.losses.register("test_cosine_pull")(lambda *a, **k: 0)
