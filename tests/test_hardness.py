"""Hardness-weighted InfoNCE (``hardness_weight=β``): a loop reference for values and gradients, β = 0 is the
plain loss exactly, and the option composes with labels, guides, chunks and both directions."""

import math

import pytest
import torch
import torch.nn.functional as F
from toy_modality import toy_rows

import anycl
from anycl.losses import InfoNCE


def loop_hardness_infonce(a, p, n, tau, beta, labels=None, symmetric=False):
    """Row by row: -log e^{s_ii/τ} / (e^{s_ii/τ} + Σ_{j∈N_i} w_ij e^{s_ij/τ}), w_ij = |N_i| e^{β s_ij} / Σ_k e^{β s_ik},
    with the weights computed from detached similarities."""
    a, p = F.normalize(a, dim=-1), F.normalize(p, dim=-1)
    B = a.shape[0]
    negs = [] if n is None else list(F.normalize(n.reshape(-1, n.shape[-1]), dim=-1))

    def row(q, i, cands):
        pos = (q * cands[i]).sum() / tau
        sims = [
            (q * c).sum()
            for j, c in enumerate(cands)
            if j != i and not (labels is not None and j < B and labels[j] == labels[i])
        ]
        raw = [math.exp(beta * float(s.detach())) for s in sims]
        w = [len(raw) * r / sum(raw) for r in raw]
        denom = torch.exp(pos) + sum(wj * torch.exp(s / tau) for wj, s in zip(w, sims))
        return torch.log(denom) - pos

    loss = sum(row(a[i], i, list(p) + negs) for i in range(B)) / B
    if symmetric:
        back = sum(row(p[i], i, list(a)) for i in range(B)) / B
        loss = 0.5 * (loss + back)
    return loss


@pytest.mark.parametrize("beta", [0.5, 2.0, 8.0])
@pytest.mark.parametrize(
    "K,labels,symmetric", [(0, None, False), (2, None, False), (2, [0, 1, 0, 2, 1], False), (1, None, True)]
)
def test_hardness_weighted_infonce_matches_loop_reference(beta, K, labels, symmetric):
    g = torch.Generator().manual_seed(1)
    a, p = torch.randn(5, 4, generator=g), torch.randn(5, 4, generator=g)
    n = torch.randn(5, K, 4, generator=g) if K else None
    tau = 0.3
    ins = [t.clone().requires_grad_(True) for t in (a, p) + ((n,) if K else ())]
    got = InfoNCE(temperature=tau, hardness_weight=beta, symmetric=symmetric)(
        ins[0], ins[1], ins[2] if K else None, None if labels is None else torch.tensor(labels)
    )
    got.backward()
    ref = [t.clone().requires_grad_(True) for t in (a, p) + ((n,) if K else ())]
    want = loop_hardness_infonce(ref[0], ref[1], ref[2] if K else None, tau, beta, labels, symmetric)
    want.backward()
    torch.testing.assert_close(got, want.float(), rtol=1e-5, atol=1e-6)
    for x, y in zip(ins, ref):
        torch.testing.assert_close(x.grad, y.grad, rtol=1e-5, atol=1e-6)
    plain = InfoNCE(temperature=tau, symmetric=symmetric)(a, p, n, None if labels is None else torch.tensor(labels))
    assert float(got.detach()) > float(plain)  # harder negatives weigh more: the loss rises


def test_beta_zero_is_plain_infonce_exactly():
    g = torch.Generator().manual_seed(2)
    a, p, n = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g), torch.randn(6, 2, 4, generator=g)
    x1, x2 = (a.clone().requires_grad_(True) for _ in range(2))
    plain = InfoNCE(temperature=0.1, same_side_negatives=True)(x1, p, n)
    zero = InfoNCE(temperature=0.1, same_side_negatives=True, hardness_weight=0.0)(x2, p, n)
    plain.backward()
    zero.backward()
    assert torch.equal(plain, zero) and torch.equal(x1.grad, x2.grad)


def test_hardness_composes_with_guide_and_chunks():
    g = torch.Generator().manual_seed(3)
    a, p, n = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g), torch.randn(6, 2, 4, generator=g)
    guide = {"anchor": a + 0.3 * torch.randn(6, 4, generator=g), "positive": p, "negative": n}
    opts = dict(temperature=0.2, hardness_weight=3.0, same_side_negatives=True, symmetric=True, guide_margin=0.3)
    whole = InfoNCE(**opts)(a, p, n, guide=guide)
    chunked = InfoNCE(chunk_size=4, **opts)(a, p, n, guide=guide)
    torch.testing.assert_close(chunked, whole)
    rows = (
        InfoNCE(**opts)(a, p, n, guide=guide, rows=slice(0, 3))
        + InfoNCE(**opts)(a, p, n, guide=guide, rows=slice(3, 6))
    ) / 2
    torch.testing.assert_close(rows, whole)


@pytest.mark.parametrize("bad", [-1.0, "2", True, float("nan")])
def test_bad_hardness_weight_is_a_clear_error(bad):
    with pytest.raises(ValueError, match="hardness_weight"):
        InfoNCE(hardness_weight=bad)


def test_fit_with_hardness_weight_and_gradcache():
    rows = toy_rows(16, negatives=1)
    opts = dict(
        modality="toyvec",
        batch_size=8,
        epochs=1,
        progress=False,
        seed=5,
        loss_options={"hardness_weight": 2.0},
        mixed_precision="no",  # the equality with GradCache is fp32's ("auto" may pick bf16)
    )
    plain = anycl.fit(rows, **opts)
    cached = anycl.fit(rows, gradcache_mini_batch=3, **opts)
    for k, v in plain.state_dict().items():
        torch.testing.assert_close(cached.state_dict()[k], v, rtol=1e-4, atol=1e-5)
