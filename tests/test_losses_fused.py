"""The fused softmax/sigmoid losses (one logits matrix, hand-written backwards; anycl.losses.fused) against
plain-autograd formulas written here in float64: values and gradients within 1e-5, with and without
labels, hard negatives, queues, learnt temperatures; plus the paths that must not fuse."""

import pytest
import torch
import torch.nn.functional as F

import anycl
from anycl.losses.fused import row_col_ce, row_lse
from anycl.losses.siglip import sigmoid_pairs

TOL = dict(rtol=1e-5, atol=1e-5)


@pytest.fixture(autouse=True, params=["one block", "small blocks"])
def blocks(request, monkeypatch):
    """Every test runs twice: the elementwise passes over one block, and over blocks of a few rows (with
    the symmetrisation in 3×3 tiles), so the block boundaries are exercised."""
    if request.param == "small blocks":
        import anycl.losses.fused as fused
        import anycl.losses.siglip as siglip

        monkeypatch.setattr(fused, "_BLOCK_ELEMS", 16)
        monkeypatch.setattr(fused, "_SYM_BLOCK", 3)
        monkeypatch.setattr(siglip, "_BLOCK_ELEMS", 16)


def leaves(*shapes, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(*s, generator=g, dtype=torch.float64).requires_grad_(True) for s in shapes]


def grads(out, inputs):
    return torch.autograd.grad(out, inputs, allow_unused=True)


def check(ours_fn, ref_fn, inputs):
    ours, ref = ours_fn(), ref_fn()
    assert float(ours.detach()) == pytest.approx(float(ref.detach()), rel=1e-5, abs=1e-5)
    for x, y in zip(grads(ours, inputs), grads(ref, inputs)):
        if y is None:
            assert x is None or torch.count_nonzero(x) == 0
        else:
            torch.testing.assert_close(x.double(), y, **TOL)


def n(x):
    return F.normalize(x, dim=-1)


def ce_rows(logits, targets, mask=None):
    """Mean cross-entropy of each row against its target column; masked entries at -1e4."""
    if mask is not None:
        logits = logits.masked_fill(mask, -1e4)
    return F.cross_entropy(logits, targets)


def labels_for(batch, seed=1):
    return torch.randint(0, 3, (batch,), generator=torch.Generator().manual_seed(seed))


def case(b, d, k, seed, with_neg, with_labels, label_seed):
    """Two views (b, d), optional hard negatives (b, k, d) and labels; the tensors that need gradients."""
    a, p, neg = leaves((b, d), (b, d), (b, k, d), seed=seed)
    neg = neg if with_neg else None
    labels = labels_for(b, seed=label_seed) if with_labels else None
    return a, p, neg, labels, [x for x in (a, p, neg) if x is not None]


# -- symmetric InfoNCE (CLIP) ------------------------------------------------------------------------------
def symmetric_reference(a, p, neg, queue, labels, t):
    a, p = n(a), n(p)
    b = a.shape[0]
    extra = [
        x
        for x in (None if neg is None else n(neg).reshape(-1, a.shape[1]), None if queue is None else n(queue))
        if x is not None
    ]
    cands = torch.cat([p] + extra)
    tgt = torch.arange(b)
    mask = None
    if labels is not None:
        same = (labels[:, None] == labels[None, :]) & ~torch.eye(b, dtype=torch.bool)
        mask = torch.zeros(b, cands.shape[0], dtype=torch.bool)
        mask[:, :b] = same
    fwd = ce_rows(a @ cands.T / t, tgt, mask)
    back = ce_rows(p @ a.T / t, tgt, None if mask is None else mask[:, :b].T)
    return 0.5 * (fwd + back)


@pytest.mark.parametrize("with_labels", [False, True])
@pytest.mark.parametrize("with_neg", [False, True])
@pytest.mark.parametrize("with_queue", [False, True])
def test_symmetric_infonce_fused_matches_formula(with_labels, with_neg, with_queue):
    a, p, neg, queue = leaves((9, 6), (9, 6), (9, 2, 6), (5, 6))
    neg = neg if with_neg else None
    queue = queue if with_queue else None
    labels = labels_for(9) if with_labels else None
    loss = anycl.losses.get("infonce", temperature=0.1, symmetric=True)
    inputs = [x for x in (a, p, neg, queue) if x is not None]
    check(
        lambda: loss(a, p, neg, labels=labels, queue=queue),
        lambda: symmetric_reference(a, p, neg, queue, labels, 0.1),
        inputs,
    )


def test_symmetric_infonce_learnt_temperature_gets_the_formulas_gradient():
    a, p = leaves((7, 5), (7, 5), seed=3)
    loss = anycl.losses.get("infonce", temperature=0.07, symmetric=True, learn_temperature=True)
    ours = loss(a, p)
    (g_ours,) = torch.autograd.grad(ours, [loss.tau.log_scale])
    log_scale = loss.tau.log_scale.detach().double().requires_grad_(True)
    ref = symmetric_reference(a, p, None, None, None, 1.0 / log_scale.exp())
    (g_ref,) = torch.autograd.grad(ref, [log_scale])
    assert float(ours.detach()) == pytest.approx(float(ref.detach()), rel=1e-5)
    assert float(g_ours) == pytest.approx(float(g_ref), rel=1e-5, abs=1e-6)


def test_symmetric_fused_equals_the_two_matrix_path_and_rows_slicing():
    """chunk_size and rows= keep the two-matrix path: same values and gradients as the fused one."""
    a, p, neg = leaves((8, 6), (8, 6), (8, 1, 6), seed=4)
    labels = labels_for(8, seed=2)
    fused = anycl.losses.get("infonce", temperature=0.2, symmetric=True)
    chunked = anycl.losses.get("infonce", temperature=0.2, symmetric=True, chunk_size=3)
    check(lambda: fused(a, p, neg, labels=labels), lambda: chunked(a, p, neg, labels=labels).double(), (a, p, neg))

    def parts():
        return (
            fused(a, p, neg, labels=labels, rows=slice(0, 3)) * 3
            + fused(a, p, neg, labels=labels, rows=slice(3, 8)) * 5
        ) / 8

    check(parts, lambda: symmetric_reference(a, p, neg, None, labels, 0.2), (a, p, neg))


def test_row_col_ce_masks_differ_by_direction_and_fully_masked_rows_get_no_gradient():
    q, c = leaves((5, 4), (7, 4), seed=5)
    s = torch.tensor(3.0, dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    rmask = torch.rand(5, 7, generator=g) < 0.4
    cmask = torch.rand(5, 5, generator=g) < 0.4
    rmask[2] = True  # a row whose every candidate, target included, is masked
    rmask.diagonal()[:] = False
    rmask[2, 2] = False
    cmask.diagonal()[:] = False

    def ref():
        logits = s * q @ c.T
        t = torch.arange(5)
        r = F.cross_entropy(logits.masked_fill(rmask, -1e4), t, reduction="sum")
        col = F.cross_entropy(logits[:, :5].T.masked_fill(cmask.T, -1e4), t, reduction="sum")
        return r + col

    check(lambda: row_col_ce(q.float(), c.float(), s.float(), rmask, cmask), ref, (q, c))


def test_row_lse_fully_masked_row_matches_masked_fill_formula():
    q, c = leaves((4, 3), (6, 3), seed=6)
    mask = torch.zeros(4, 6, dtype=torch.bool)
    mask[1] = True  # every entry of row 1 masked: plain formula's logsumexp of -1e4s, no gradient
    mask[3, :2] = True
    s = torch.tensor(2.0)
    check(
        lambda: row_lse(q.float(), c.float(), s, mask),
        lambda: torch.logsumexp((2.0 * q @ c.T).masked_fill(mask, -1e4), dim=1).sum(),
        (q, c),
    )


def test_fused_backward_twice_is_refused():
    a, p = leaves((4, 3), (4, 3))
    out = anycl.losses.get("infonce", symmetric=True)(a, p)
    out.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="twice"):
        out.backward()


# -- SimCLR (2N-way) ---------------------------------------------------------------------------------------
def simclr_reference(a, p, extra, labels, t):
    z = torch.cat([n(a), n(p)])
    b = a.shape[0]
    cands = z if extra is None else torch.cat([z, n(extra)])
    idx = torch.arange(2 * b)
    partner = (idx + b) % (2 * b)
    mask = torch.zeros(2 * b, cands.shape[0], dtype=torch.bool)
    mask[idx, idx] = True
    if labels is not None:
        lab = torch.cat([labels, labels])
        same = lab[:, None] == lab[None, :]
        same[idx, partner] = False
        mask[:, : 2 * b] |= same
    return ce_rows(z @ cands.T / t, partner, mask)


@pytest.mark.parametrize("with_labels", [False, True])
@pytest.mark.parametrize("with_neg", [False, True])
def test_simclr_gram_matches_formula(with_labels, with_neg):
    a, p, neg, labels, inputs = case(8, 5, 2, 7, with_neg, with_labels, 3)
    loss = anycl.losses.get("simclr", temperature=0.15)
    extra = None if neg is None else neg.reshape(-1, 5)
    check(lambda: loss(a, p, neg, labels=labels), lambda: simclr_reference(a, p, extra, labels, 0.15), inputs)


def test_simclr_learnt_temperature_and_queue():
    a, p, queue = leaves((6, 4), (6, 4), (5, 4), seed=8)
    loss = anycl.losses.get("simclr", temperature=0.2, learn_temperature=True)
    ours = loss(a, p, queue=queue)
    g_ours = torch.autograd.grad(ours, [a, p, queue, loss.tau.log_scale])
    log_scale = loss.tau.log_scale.detach().double().requires_grad_(True)
    ref = simclr_reference(a, p, queue, None, 1.0 / log_scale.exp())
    g_ref = torch.autograd.grad(ref, [a, p, queue, log_scale])
    assert float(ours.detach()) == pytest.approx(float(ref.detach()), rel=1e-5)
    for x, y in zip(g_ours, g_ref):
        torch.testing.assert_close(x.double().reshape(y.shape), y, **TOL)


# -- DCL / DCLW ---------------------------------------------------------------------------------------------
def dcl_reference(u, v, extra, labels, t, weighted=False, sigma=0.5):
    u, v = n(u), n(v)
    b = u.shape[0]
    not_neg = torch.eye(b, dtype=torch.bool)
    if labels is not None:
        not_neg = not_neg | (labels[:, None] == labels[None, :])
    pos = (u * v).sum(-1) / t
    if weighted:
        pos = pos * (2 - b * torch.softmax((u * v).sum(-1) / sigma, dim=0))
    total = 0
    for x, y in ((u, v), (v, u)):
        parts = [(x @ x.T / t).masked_fill(not_neg, -1e4), (x @ y.T / t).masked_fill(not_neg, -1e4)]
        if extra is not None:
            parts.append(x @ n(extra).T / t)
        total = total + (torch.logsumexp(torch.cat(parts, 1), dim=1) - pos).mean()
    return 0.5 * total


@pytest.mark.parametrize("name", ["dcl", "dclw"])
@pytest.mark.parametrize("with_labels", [False, True])
@pytest.mark.parametrize("with_neg", [False, True])
def test_dcl_gram_matches_formula(name, with_labels, with_neg):
    u, v, neg, labels, inputs = case(7, 5, 1, 9, with_neg, with_labels, 4)
    loss = anycl.losses.get(name, temperature=0.2)
    extra = None if neg is None else neg.reshape(-1, 5)
    check(
        lambda: loss(u, v, neg, labels=labels),
        lambda: dcl_reference(u, v, extra, labels, 0.2, weighted=name == "dclw"),
        inputs,
    )


def test_dcl_with_all_labels_equal_has_masked_rows_and_the_formulas_gradient():
    """Every in-batch item shares the label: only the queue entries are negatives."""
    u, v, queue = leaves((4, 3), (4, 3), (3, 3), seed=10)
    labels = torch.zeros(4, dtype=torch.long)
    loss = anycl.losses.get("dcl", temperature=0.3)
    check(
        lambda: loss(u, v, labels=labels, queue=queue), lambda: dcl_reference(u, v, queue, labels, 0.3), (u, v, queue)
    )


# -- SigLIP -------------------------------------------------------------------------------------------------
def siglip_reference(x, y, extra, labels, t_prime, bias):
    x, y = n(x), n(y)
    b = x.shape[0]
    cands = y if extra is None else torch.cat([y, n(extra)])
    z = -torch.ones(b, cands.shape[0], dtype=torch.float64)
    pos = torch.eye(b, dtype=torch.bool)
    if labels is not None:
        pos = pos | (labels[:, None] == labels[None, :])
    z[:, :b][pos] = 1.0
    return -F.logsigmoid(z * (t_prime.exp() * x @ cands.T + bias)).sum() / b


@pytest.mark.parametrize("with_labels", [False, True])
@pytest.mark.parametrize("with_neg", [False, True])
def test_siglip_fused_matches_formula_with_parameter_gradients(with_labels, with_neg):
    x, y, neg, labels, inputs = case(6, 4, 2, 11, with_neg, with_labels, 5)
    loss = anycl.losses.get("siglip", temperature=0.5, bias=-2.0)
    ours = loss(x, y, neg, labels=labels)
    g_ours = torch.autograd.grad(ours, inputs + [loss.t_prime, loss.bias])
    tp = loss.t_prime.detach().double().requires_grad_(True)
    b = loss.bias.detach().double().requires_grad_(True)
    ref = siglip_reference(x, y, None if neg is None else neg.reshape(-1, 4), labels, tp, b)
    g_ref = torch.autograd.grad(ref, inputs + [tp, b])
    assert float(ours.detach()) == pytest.approx(float(ref.detach()), rel=1e-5)
    for u, w in zip(g_ours, g_ref):
        torch.testing.assert_close(u.double().reshape(w.shape), w, **TOL)


def test_siglip_fixed_parameters_and_bad_shapes():
    x, y = leaves((5, 3), (5, 3), seed=12)
    loss = anycl.losses.get("siglip", learnable=False)
    check(
        lambda: loss(x, y),
        lambda: siglip_reference(
            x, y, None, None, torch.tensor(10.0).log().double(), torch.tensor(-10.0, dtype=torch.float64)
        ),
        (x, y),
    )
    with pytest.raises(ValueError, match="scalars"):
        sigmoid_pairs(x.float(), y.float(), torch.zeros(1), torch.zeros(()))


# -- single-direction InfoNCE through row_lse ---------------------------------------------------------------
@pytest.mark.parametrize("with_labels", [False, True])
@pytest.mark.parametrize("with_neg", [False, True])
def test_infonce_row_lse_matches_formula(with_labels, with_neg):
    a, p, neg, labels, inputs = case(9, 6, 3, 13, with_neg, with_labels, 6)
    b = 9
    loss = anycl.losses.get("infonce", temperature=0.05)

    def ref():
        cands = torch.cat([n(p)] + ([] if neg is None else [n(neg).reshape(-1, 6)]))
        mask = None
        if labels is not None:
            mask = torch.zeros(b, cands.shape[0], dtype=torch.bool)
            mask[:, :b] = (labels[:, None] == labels[None, :]) & ~torch.eye(b, dtype=torch.bool)
        return ce_rows(n(a) @ cands.T / 0.05, torch.arange(b), mask)

    check(lambda: loss(a, p, neg, labels=labels), ref, inputs)


def test_row_lse_diags_need_gram():
    q = torch.randn(3, 2)
    with pytest.raises(ValueError, match="gram"):
        row_lse(q, q, torch.tensor(1.0), diags=(0,))
