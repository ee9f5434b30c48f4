"""The debiased contrastive loss (``debiased``, Chuang et al. 2020; with ``hardness_weight``, Robinson et al.'s HCL)
against the paper's estimator written out row by row in float64, against ``infonce`` where it reduces to it, and
its bad options."""

import math

import pytest
import torch

import anycl


def reference(a, p, tau, tau_plus, beta=0.0, labels=None, extra=None):
    """The loss from the papers' formulas, one row at a time, in float64 and without any shift of the exponentials.
    The hardness weights are constants (no gradient), as the loss documents."""
    a = torch.nn.functional.normalize(a.double(), dim=-1)
    p = torch.nn.functional.normalize(p.double(), dim=-1)
    cands = [p[j] for j in range(len(p))]
    if extra is not None:
        cands += [x for x in torch.nn.functional.normalize(extra.double().reshape(-1, a.shape[1]), dim=-1)]
    terms = []
    for i in range(len(a)):
        pos = torch.exp(a[i] @ p[i] / tau)
        sims = [
            a[i] @ c
            for j, c in enumerate(cands)
            if j != i and not (labels is not None and j < len(p) and labels[j] == labels[i])
        ]
        n = len(sims)
        negs = [torch.exp(s / tau) for s in sims]
        if beta:
            imp = [math.exp(beta * float(s.detach())) for s in sims]
            weights = [n * w / sum(imp) for w in imp]
        else:
            weights = [1.0] * n
        g = (sum(w * e for w, e in zip(weights, negs)) - tau_plus * n * pos) / (1 - tau_plus)
        g = torch.maximum(g, torch.tensor(n * math.exp(-1 / tau), dtype=torch.float64))
        terms.append(-torch.log(pos / (pos + g)))
    return torch.stack(terms).mean()


def inputs(batch=10, dim=6, k=0, seed=0, spread=0.7):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(batch, dim, generator=g)
    p = a + spread * torch.randn(batch, dim, generator=g)
    n = torch.randn(batch, k, dim, generator=g) if k else None
    return a, p, n


CASES = [
    {"tau": 0.2, "tau_plus": 0.1},
    {"tau": 0.5, "tau_plus": 0.3},
    {"tau": 0.2, "tau_plus": 0.1, "beta": 1.0},
    {"tau": 0.1, "tau_plus": 0.05, "beta": 2.0, "k": 2},
    {"tau": 0.2, "tau_plus": 0.1, "labels": True},
    {"tau": 0.2, "tau_plus": 0.9},  # the estimate falls below its floor on most rows
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(f"{k}{v}" for k, v in c.items()))
def test_value_and_gradients_equal_the_papers_estimator(case):
    a, p, n = inputs(k=case.get("k", 0))
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 3, 3, 4, 0]) if case.get("labels") else None
    loss = anycl.losses.get(
        "debiased", temperature=case["tau"], tau_plus=case["tau_plus"], hardness_weight=case.get("beta", 0.0)
    )
    xs = [x.clone().requires_grad_(True) for x in (a, p) + ((n,) if n is not None else ())]
    got = loss(*xs, labels=labels)
    ys = [x.double().clone().requires_grad_(True) for x in (a, p) + ((n,) if n is not None else ())]
    want = reference(
        ys[0], ys[1], case["tau"], case["tau_plus"], case.get("beta", 0.0), labels, ys[2] if n is not None else None
    )
    assert got.item() == pytest.approx(want.item(), rel=1e-5, abs=1e-6)
    for gx, gy in zip(torch.autograd.grad(got, xs), torch.autograd.grad(want, ys)):
        torch.testing.assert_close(gx, gy.float(), rtol=1e-4, atol=1e-6)


def test_the_floor_holds_where_the_estimate_would_go_negative():
    a, p, _ = inputs(spread=0.05)  # close positives: tau_plus * n * e^{s_ii/τ} exceeds the negatives' sum
    loss = anycl.losses.get("debiased", temperature=0.2, tau_plus=0.5)
    got = loss(a, p)
    assert got.item() == pytest.approx(reference(a, p, 0.2, 0.5).item(), rel=1e-5, abs=1e-6)
    assert got.item() > 0  # the floor keeps every row's denominator above its positive


@pytest.mark.parametrize("symmetric", [False, True])
def test_tau_plus_zero_is_infonce(symmetric):
    a, p, n = inputs(k=2, seed=1)
    labels = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3, 4, 4])
    plain = anycl.losses.get("infonce", temperature=0.2, symmetric=symmetric)
    debiased = anycl.losses.get("debiased", temperature=0.2, tau_plus=0.0, symmetric=symmetric)
    xs = [x.clone().requires_grad_(True) for x in (a, p, n)]
    ys = [x.clone().requires_grad_(True) for x in (a, p, n)]
    if symmetric:  # infonce's backward direction scores the anchors only: no hard negatives there either
        xs, ys = xs[:2], ys[:2]
    x, y = debiased(*xs, labels=labels), plain(*ys, labels=labels)
    torch.testing.assert_close(x, y)
    for gx, gy in zip(torch.autograd.grad(x, xs), torch.autograd.grad(y, ys)):
        torch.testing.assert_close(gx, gy, rtol=1e-5, atol=1e-7)


def test_symmetric_is_the_mean_of_both_directions():
    a, p, _ = inputs(seed=2)
    one = anycl.losses.get("debiased", temperature=0.2, tau_plus=0.1)
    both = anycl.losses.get("debiased", temperature=0.2, tau_plus=0.1, symmetric=True)
    assert both(a, p).item() == pytest.approx(0.5 * (one(a, p) + one(p, a)).item(), rel=1e-6)


def test_debiasing_lowers_the_push_on_a_same_class_negative():
    """Two rows of one class: InfoNCE's gradient pushes their embeddings apart more than the debiased loss's."""
    g = torch.Generator().manual_seed(4)
    a = torch.randn(16, 8, generator=g)
    a[1] = a[0] + 0.1 * torch.randn(8, generator=g)  # row 1 is row 0's class-mate
    p = a + 0.1 * torch.randn(16, 8, generator=g)

    def push(name, **opts):
        anchor = a.clone().requires_grad_(True)
        loss = anycl.losses.get(name, temperature=0.2, **opts)(anchor, p)
        (grad,) = torch.autograd.grad(loss, anchor)
        return float(grad[0] @ (p[1] - p[0]))  # > 0: a step along -grad moves anchor 0 away from p_1

    assert push("debiased", tau_plus=0.2) < push("infonce")


@pytest.mark.parametrize(
    "opts,match",
    [
        ({"tau_plus": 1.0}, r"tau_plus must be a number in \[0, 1\)"),
        ({"tau_plus": -0.1}, r"tau_plus must be a number in \[0, 1\)"),
        ({"tau_plus": True}, r"tau_plus must be a number in \[0, 1\)"),
        ({"tau_plus": "0.1"}, r"tau_plus must be a number in \[0, 1\)"),
        ({"hardness_weight": -1.0}, "hardness_weight must be a number >= 0"),
    ],
)
def test_bad_options_are_refused(opts, match):
    with pytest.raises(ValueError, match=match):
        anycl.losses.get("debiased", **opts)


def test_a_batch_of_one_without_negatives_is_refused():
    x = torch.randn(1, 4)
    with pytest.raises(ValueError, match="at least 2 pairs"):
        anycl.losses.get("debiased")(x, x)


def test_a_row_whose_candidates_all_share_its_label_adds_nothing():
    a, p, _ = inputs(batch=4, seed=5)
    labels = torch.tensor([0, 0, 1, 2])
    loss = anycl.losses.get("debiased", temperature=0.2, tau_plus=0.1)
    whole = loss(a, p, labels=torch.tensor([7, 7, 7, 7]))  # no row has a negative: every term is 0
    assert whole.item() == 0.0
    assert torch.isfinite(loss(a, p, labels=labels))


def test_names_and_aliases():
    for name in ("debiased", "debiased_infonce", "hcl"):
        assert isinstance(anycl.losses.get(name), anycl.losses.DebiasedInfoNCE)
    assert "tau_plus=0.1" in repr(anycl.losses.get("debiased"))


def test_memory_queue_entries_are_negatives_of_every_anchor():
    a, p, _ = inputs(seed=6)
    queue = torch.randn(5, a.shape[1], generator=torch.Generator().manual_seed(7))
    loss = anycl.losses.get("debiased", temperature=0.2, tau_plus=0.1)
    got = loss(a, p, queue=queue)
    assert got.item() == pytest.approx(reference(a, p, 0.2, 0.1, extra=queue).item(), rel=1e-5, abs=1e-6)
    moco = anycl.losses.get("moco", base="debiased", queue_size=16, key_encoder=None, temperature=0.2, tau_plus=0.1)
    assert isinstance(moco.base, anycl.losses.DebiasedInfoNCE) and moco.base.tau_plus == 0.1
