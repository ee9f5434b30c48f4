"""Each loss against a direct, unoptimised computation of its published formula (values and gradients),
plus known special cases. References loop over rows/pairs on purpose: they share no code with anycl."""

import math

import pytest
import torch
import torch.nn.functional as F

import anycl
from anycl.losses.momentum import momentum_at

torch.set_default_dtype(torch.float32)


def leaves(*shapes, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(*s, generator=g, dtype=dtype).requires_grad_(True) for s in shapes]


def assert_same(ours, ref, inputs, rtol=1e-4, atol=1e-6):
    """Values and gradients of ``ours`` and ``ref`` w.r.t. ``inputs`` agree."""
    assert ours.item() == pytest.approx(ref.item(), rel=rtol, abs=atol)
    g_ours = torch.autograd.grad(ours, inputs, retain_graph=True, allow_unused=True)
    g_ref = torch.autograd.grad(ref, inputs, retain_graph=True, allow_unused=True)
    for x, y in zip(g_ours, g_ref):
        if y is None:
            assert x is None or torch.count_nonzero(x) == 0
            continue
        torch.testing.assert_close(x.double(), y.double(), rtol=rtol * 10, atol=atol * 10)


def val(x):
    return float(x.detach())


def unit(x):
    return x / torch.sqrt(torch.sum(x * x))


# -- InfoNCE family ---------------------------------------------------------------------------------------
def simclr_reference(a, p, t, labels=None):
    z = [unit(r) for r in torch.cat([a, p])]
    n = len(a)
    lab = None if labels is None else list(labels) * 2
    total = 0
    for i in range(2 * n):
        k = (i + n) % (2 * n)
        den = 0
        for j in range(2 * n):
            if j == i or (lab is not None and j != k and lab[j] == lab[i]):
                continue
            den = den + torch.exp(torch.dot(z[i], z[j]) / t)
        total = total - torch.log(torch.exp(torch.dot(z[i], z[k]) / t) / den)
    return total / (2 * n)


def test_simclr_matches_formula():
    a, p = leaves((6, 5), (6, 5))
    assert_same(anycl.losses.get("simclr", temperature=0.2)(a, p), simclr_reference(a, p, 0.2), (a, p))
    labels = torch.tensor([0, 1, 0, 2, 1, 3])
    assert_same(
        anycl.losses.get("simclr", temperature=0.3)(a, p, labels=labels), simclr_reference(a, p, 0.3, labels), (a, p)
    )


def test_supcon_matches_formula_and_reduces_to_simclr_with_distinct_labels():
    a, p = leaves((6, 5), (6, 5), seed=1)
    labels = torch.tensor([0, 1, 0, 2, 1, 0])
    z = [unit(r) for r in torch.cat([a, p])]
    lab = labels.tolist() * 2
    t = 0.1
    total = 0
    for i in range(12):
        den = sum(torch.exp(torch.dot(z[i], z[j]) / t) for j in range(12) if j != i)
        pos = [j for j in range(12) if j != i and lab[j] == lab[i]]
        total = total - sum(torch.log(torch.exp(torch.dot(z[i], z[q]) / t) / den) for q in pos) / len(pos)
    ref = total / 12
    assert_same(anycl.losses.get("supcon", temperature=t)(a, p, labels=labels), ref, (a, p))
    distinct = torch.arange(6)
    torch.testing.assert_close(
        anycl.losses.get("supcon", temperature=0.5)(a, p, labels=distinct),
        anycl.losses.get("simclr", temperature=0.5)(a, p),
    )


def dcl_reference(a, p, t, weighted=False, sigma=0.5):
    n = len(a)
    u, v = [unit(r) for r in a], [unit(r) for r in p]

    def one(u, v):
        w = [1.0] * n
        if weighted:
            e = [torch.exp(torch.dot(u[k], v[k]) / sigma) for k in range(n)]
            mean = sum(e) / n
            w = [2 - e[k] / mean for k in range(n)]
        out = 0
        for i in range(n):
            neg = sum(
                torch.exp(torch.dot(u[i], u[j]) / t) + torch.exp(torch.dot(u[i], v[j]) / t) for j in range(n) if j != i
            )
            out = out + (-w[i] * torch.dot(u[i], v[i]) / t + torch.log(neg))
        return out / n

    return 0.5 * (one(u, v) + one(v, u))


@pytest.mark.parametrize("name,weighted", [("dcl", False), ("dclw", True)])
def test_dcl_matches_formula(name, weighted):
    a, p = leaves((5, 4), (5, 4), seed=2)
    assert_same(anycl.losses.get(name, temperature=0.2)(a, p), dcl_reference(a, p, 0.2, weighted), (a, p))


def test_infonce_learnable_temperature_is_trained_and_clamped_as_clip():
    a, p = leaves((5, 4), (5, 4), seed=3)
    loss = anycl.losses.get("infonce", temperature=0.07, learn_temperature=True)
    assert [n for n, _ in loss.named_parameters()] == ["tau.log_scale"]
    assert loss.temperature == pytest.approx(0.07)
    out = loss(a, p)
    (g,) = torch.autograd.grad(out, [loss.tau.log_scale])
    # reference: d/d(log s) of the formula at s = 1/0.07
    log_s = torch.tensor(math.log(1 / 0.07), dtype=torch.float64, requires_grad=True)
    an, pn = F.normalize(a.detach(), dim=-1), F.normalize(p.detach(), dim=-1)
    ref = -torch.stack(
        [
            torch.log(
                torch.exp(log_s.exp() * an[i] @ pn[i]) / sum(torch.exp(log_s.exp() * an[i] @ pn[j]) for j in range(5))
            )
            for i in range(5)
        ]
    ).mean()
    (g_ref,) = torch.autograd.grad(ref, [log_s])
    assert out.item() == pytest.approx(ref.item(), rel=1e-5)
    assert g.item() == pytest.approx(g_ref.item(), rel=1e-4)
    with torch.no_grad():
        loss.tau.log_scale.fill_(math.log(500.0))  # beyond CLIP's clamp: 1/τ stays 100
    assert loss.temperature == pytest.approx(0.01)
    (g,) = torch.autograd.grad(loss(a, p), [loss.tau.log_scale])
    assert g.item() == 0.0
    torch.testing.assert_close(loss(a, p), anycl.losses.get("infonce", temperature=0.01)(a, p))


def test_infonce_special_cases_identical_and_orthogonal_views():
    e = torch.eye(6)
    t = 0.1
    # views identical (and orthogonal to the other rows): only the positive scores 1/t
    assert anycl.losses.get("infonce", temperature=t)(e[:3], e[:3]).item() == pytest.approx(
        math.log(1 + 2 * math.exp(-1 / t)), abs=1e-6
    )
    # every view orthogonal to every candidate, its own positive included: chance, log B
    assert anycl.losses.get("infonce", temperature=t)(e[:3], e[3:]).item() == pytest.approx(math.log(3), rel=1e-5)
    assert anycl.losses.get("simclr", temperature=t)(e[:3], e[3:]).item() == pytest.approx(math.log(5), rel=1e-5)


# -- triplet mining ---------------------------------------------------------------------------------------
def triplet_mined_reference(a, p, margin, mining, labels=None, n=None):
    a, p = [unit(r) for r in a], [unit(r) for r in p]
    negs = None if n is None else [[unit(x) for x in row] for row in n]
    b = len(a)
    vals = []
    for i in range(b):
        d_ap = torch.dist(a[i], p[i])
        cands = [torch.dist(a[i], p[j]) for j in range(b) if j != i and (labels is None or labels[j] != labels[i])]
        if negs is not None:
            cands += [torch.dist(a[i], x) for x in negs[i]]
        if not cands:
            continue
        if mining == "batch_hard":
            if labels is not None:
                d_ap = max([torch.dist(a[i], p[j]) for j in range(b) if labels[j] == labels[i]], key=val)
            d_an = min(cands, key=val)
        else:
            farther = [d for d in cands if val(d) > val(d_ap)]
            d_an = min(farther, key=val) if farther else max(cands, key=val)
        vals.append(torch.clamp(d_ap - d_an + margin, min=0))
    return sum(vals) / len(vals)


@pytest.mark.parametrize("mining", ["batch_hard", "semi_hard"])
def test_triplet_mining_matches_formula(mining):
    a, p, n = leaves((6, 4), (6, 4), (6, 2, 4), seed=4)
    loss = anycl.losses.get("triplet", margin=0.4, mining=mining)
    assert_same(loss(a, p), triplet_mined_reference(a, p, 0.4, mining), (a, p))
    labels = torch.tensor([0, 1, 0, 1, 2, 2])
    assert_same(loss(a, p, labels=labels), triplet_mined_reference(a, p, 0.4, mining, labels.tolist()), (a, p))
    assert_same(loss(a, p, n), triplet_mined_reference(a, p, 0.4, mining, n=n), (a, p, n))


def test_triplet_semi_hard_prefers_the_closest_negative_farther_than_the_positive():
    a = torch.tensor([[1.0, 0.0]])
    p = torch.tensor([[math.cos(0.5), math.sin(0.5)]])  # d(a,p) = 2 sin(0.25)
    n = torch.tensor(
        [
            [
                [math.cos(0.2), math.sin(0.2)],  # harder than the positive: skipped
                [math.cos(0.7), math.sin(0.7)],  # semi-hard: chosen
                [math.cos(2.0), math.sin(2.0)],
            ]
        ]
    )
    d = lambda ang: 2 * math.sin(ang / 2)  # noqa: E731
    out = anycl.losses.get("triplet", margin=1.0, mining="semi_hard")(a, p, n)
    assert out.item() == pytest.approx(d(0.5) - d(0.7) + 1.0, rel=1e-5)
    hard = anycl.losses.get("triplet", margin=1.0, mining="batch_hard")(a, p, n)
    assert hard.item() == pytest.approx(d(0.5) - d(0.2) + 1.0, rel=1e-5)


# -- SigLIP -----------------------------------------------------------------------------------------------
def test_siglip_matches_formula_and_initialisation():
    a, p, n = leaves((5, 4), (5, 4), (5, 1, 4), seed=5)
    loss = anycl.losses.get("siglip")
    assert loss.bias.item() == -10.0 and loss.t_prime.exp().item() == pytest.approx(10.0)
    assert {k for k, _ in loss.named_parameters()} == {"t_prime", "bias"}
    x = [unit(r) for r in a]
    y = [unit(r) for r in p] + [unit(r) for r in n[:, 0]]
    labels = [0, 1, 0, 2, 3]
    ref = 0
    for i in range(5):
        for j in range(len(y)):
            z = 1.0 if j == i or (j < 5 and labels[j] == labels[i]) else -1.0
            logit = loss.t_prime.exp() * torch.dot(x[i], y[j]) + loss.bias
            ref = ref - torch.log(torch.sigmoid(z * logit))
    ref = ref / 5
    ours = loss(a, p, n, labels=torch.tensor(labels))
    assert_same(ours, ref, (a, p, n, loss.t_prime, loss.bias))
    fixed = anycl.losses.get("siglip", learnable=False, temperature=0.5, bias=0.0)
    assert not list(fixed.parameters()) and float(fixed.t_prime.exp()) == pytest.approx(2.0)


# -- negative-free ----------------------------------------------------------------------------------------
def test_byol_matches_formula_and_stops_gradient_at_the_target():
    loss = anycl.losses.get("byol", dim=4, hidden_dim=8)
    a, p, t1, t2 = leaves((6, 4), (6, 4), (6, 4), (6, 4), seed=6, dtype=torch.float32)
    out = loss(a, p, target={"anchor": t1, "positive": t2})
    q1, q2 = loss.predictor(a), loss.predictor(p)
    ref = (
        sum(2 - 2 * torch.dot(unit(q1[i]), unit(t2[i])) for i in range(6)) / 6
        + sum(2 - 2 * torch.dot(unit(q2[i]), unit(t1[i])) for i in range(6)) / 6
    )
    assert out.item() == pytest.approx(ref.item(), rel=1e-5)
    ga = torch.autograd.grad(out, (a, p), retain_graph=True)
    gr = torch.autograd.grad(ref, (a, p), retain_graph=True)
    for x, y in zip(ga, gr):
        torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-6)
    assert torch.autograd.grad(out, (t1, t2), allow_unused=True) == (None, None)
    # the EMA momentum follows BYOL's cosine schedule from 0.99 to 1
    assert loss.momentum_target == {"momentum": 0.99, "final_momentum": 1.0, "schedule": "cosine"}
    assert momentum_at(0, 100, 0.99) == pytest.approx(0.99)
    assert momentum_at(50, 100, 0.99) == pytest.approx(0.995)
    assert momentum_at(100, 100, 0.99) == pytest.approx(1.0)
    assert loss(t1, t1, target={"anchor": loss.predictor(t1), "positive": loss.predictor(t1)}).item() == pytest.approx(
        0.0, abs=1e-5
    )


def test_simsiam_matches_formula_with_stop_gradient():
    loss = anycl.losses.get("simsiam", dim=8)
    assert loss.predictor[0].out_features == 2  # bottleneck dim / 4
    a, p = leaves((5, 8), (5, 8), seed=7, dtype=torch.float32)
    out = loss(a, p)
    q1, q2 = loss.predictor(a), loss.predictor(p)
    ref = -0.5 * (
        sum(torch.dot(unit(q1[i]), unit(p[i].detach())) for i in range(5)) / 5
        + sum(torch.dot(unit(q2[i]), unit(a[i].detach())) for i in range(5)) / 5
    )
    assert_same(out, ref, (a, p))


def vicreg_reference(z1, z2, lam=25.0, mu=25.0, nu=1.0, gamma=1.0, eps=1e-4):
    n, d = z1.shape
    inv = sum(torch.sum((z1[i] - z2[i]) ** 2) for i in range(n)) / (n * d)

    def var(z):
        out = 0
        for j in range(d):
            m = sum(z[i, j] for i in range(n)) / n
            v = sum((z[i, j] - m) ** 2 for i in range(n)) / (n - 1)
            out = out + torch.clamp(gamma - torch.sqrt(v + eps), min=0)
        return out / d

    def cov(z):
        mean = [sum(z[i, j] for i in range(n)) / n for j in range(d)]
        out = 0
        for j in range(d):
            for k in range(d):
                if j != k:
                    c = sum((z[i, j] - mean[j]) * (z[i, k] - mean[k]) for i in range(n)) / (n - 1)
                    out = out + c**2
        return out / d

    return lam * inv + mu * (var(z1) + var(z2)) + nu * (cov(z1) + cov(z2))


def test_vicreg_matches_formula_and_variance_term_at_zero_spread():
    z1, z2 = leaves((6, 3), (6, 3), seed=8)
    z1s, z2s = (z1 * 0.3), (z2 * 0.3)  # stds under 1: the variance hinge is active
    out = anycl.losses.get("vicreg")(z1s, z2s)
    assert set(out) == {"loss", "invariance", "variance", "covariance"}
    assert_same(out["loss"], vicreg_reference(z1s, z2s), (z1, z2))
    # every row identical: each dimension's std is sqrt(eps), the variance term is gamma - sqrt(eps)
    same = torch.ones(5, 4)
    flat = anycl.losses.get("vicreg")(same, same)
    assert flat["variance"].item() == pytest.approx(2 * (1 - math.sqrt(1e-4)), rel=1e-5)
    assert flat["invariance"].item() == 0 and flat["covariance"].item() == 0


def test_barlow_twins_matches_formula_and_identity_correlation():
    z1, z2 = leaves((7, 3), (7, 3), seed=9)
    lam = 0.1
    n, d = z1.shape

    def standardise(z):
        cols = []
        for j in range(d):
            m = sum(z[i, j] for i in range(n)) / n
            s = torch.sqrt(sum((z[i, j] - m) ** 2 for i in range(n)) / n + 1e-5)
            cols.append([(z[i, j] - m) / s for i in range(n)])
        return cols

    c1, c2 = standardise(z1), standardise(z2)
    ref = 0
    for i in range(d):
        for j in range(d):
            c = sum(c1[i][k] * c2[j][k] for k in range(n)) / n
            ref = ref + ((1 - c) ** 2 if i == j else lam * c**2)
    out = anycl.losses.get("barlow_twins", lambda_=lam)(z1, z2)
    assert_same(out["loss"], ref, (z1, z2))
    # identical views with uncorrelated (orthogonal, zero-mean) dimensions: C = I, loss ~ 0
    basis = torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]])
    assert anycl.losses.get("barlow")(basis, basis)["loss"].item() == pytest.approx(0.0, abs=1e-4)
