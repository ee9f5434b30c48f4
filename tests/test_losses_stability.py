"""Numerical stability (float32, bf16 and fp16 autocast at temperature 0.01 with 4,096 candidates), the
chunked InfoNCE against the plain one, and bad inputs."""

import pytest
import torch

import anycl
from anycl.errors import ConfigError

CANDIDATE_LOSSES = [
    ("infonce", {"temperature": 0.01}),
    ("infonce", {"temperature": 0.01, "symmetric": True}),
    ("simclr", {"temperature": 0.01}),
    ("dcl", {"temperature": 0.01}),
    ("dclw", {"temperature": 0.01}),
    ("debiased", {"temperature": 0.01, "tau_plus": 0.1}),
    ("debiased", {"temperature": 0.01, "tau_plus": 0.1, "hardness_weight": 1.0, "symmetric": True}),
    ("supcon", {"temperature": 0.01}),
    ("siglip", {"temperature": 0.01}),
    ("triplet", {"mining": "semi_hard"}),
]
AUTOCAST = {"float32": None, "bfloat16": torch.bfloat16, "float16": torch.float16}


def views(batch, k, dim, dtype, seed=0):
    """Nearly identical views (the worst case for exp overflow: logits at +1/τ) and hard negatives, so
    that batch + batch*k = 4,096 candidates."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(batch, dim, generator=g)
    p = a + 1e-3 * torch.randn(batch, dim, generator=g)
    n = a.unsqueeze(1) + 0.5 * torch.randn(batch, k, dim, generator=g)
    return [x.to(dtype).requires_grad_(True) for x in (a, p, n)]


@pytest.mark.parametrize("precision", list(AUTOCAST))
@pytest.mark.parametrize("name,opts", CANDIDATE_LOSSES, ids=lambda x: x if isinstance(x, str) else "")
def test_no_nan_or_inf_at_low_temperature_with_4096_candidates(name, opts, precision):
    dtype = AUTOCAST[precision] or torch.float32
    a, p, n = views(64, 63, 32, dtype)  # 64 + 64*63 = 4096 candidates
    labels = torch.arange(64) % 8
    loss = anycl.losses.get(name, **opts)
    with torch.autocast("cpu", dtype=dtype, enabled=AUTOCAST[precision] is not None):
        out = loss(a, p, n, labels=labels)
    assert torch.isfinite(out), (name, precision, out)
    grads = torch.autograd.grad(out, (a, p, n), allow_unused=True)
    assert all(g is None or torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("precision", list(AUTOCAST))
@pytest.mark.parametrize("name", ["vicreg", "barlow_twins", "simsiam"])
def test_negative_free_losses_stay_finite_in_half_precision(name, precision):
    dtype = AUTOCAST[precision] or torch.float32
    a, p, _ = views(32, 1, 16, dtype)
    loss = anycl.losses.get(name, **({"dim": 16} if name == "simsiam" else {}))
    with torch.autocast("cpu", dtype=dtype, enabled=AUTOCAST[precision] is not None):
        out = loss(a, p)
    out = out["loss"] if isinstance(out, dict) else out
    assert torch.isfinite(out)
    assert all(torch.isfinite(g).all() for g in torch.autograd.grad(out, (a, p)))


def test_4096_by_4096_infonce_in_bf16_autocast_at_temperature_001():
    a, p, _ = views(4096, 1, 16, torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = anycl.losses.get("infonce", temperature=0.01, symmetric=True)(a, p)
    assert torch.isfinite(out)
    assert all(torch.isfinite(g).all() for g in torch.autograd.grad(out, (a, p)))


@pytest.mark.parametrize("symmetric", [False, True])
def test_chunked_infonce_equals_plain_values_and_gradients(symmetric):
    g = torch.Generator().manual_seed(3)
    a, p = (torch.randn(37, 12, generator=g, requires_grad=True) for _ in range(2))
    n = torch.randn(37, 2, 12, generator=g, requires_grad=True)
    labels = torch.randint(0, 9, (37,), generator=g)
    plain = anycl.losses.get("infonce", temperature=0.05, symmetric=symmetric, learn_temperature=True)
    chunked = anycl.losses.get("infonce", temperature=0.05, symmetric=symmetric, learn_temperature=True, chunk_size=8)
    x, y = plain(a, p, n, labels), chunked(a, p, n, labels)
    torch.testing.assert_close(x, y)
    gx = torch.autograd.grad(x, (a, p, n, plain.tau.log_scale))
    gy = torch.autograd.grad(y, (a, p, n, chunked.tau.log_scale))
    for u, v in zip(gx, gy):
        torch.testing.assert_close(u, v, rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="chunk_size must be >= 1"):
        anycl.losses.get("infonce", chunk_size=0)


ALL_PAIR_LOSSES = [
    "infonce",
    "simclr",
    "dcl",
    "dclw",
    "debiased",
    "supcon",
    "siglip",
    "triplet",
    "vicreg",
    "barlow_twins",
    "simsiam",
    "byol",
]


@pytest.mark.parametrize("name", ALL_PAIR_LOSSES)
def test_mismatched_views_name_the_problem(name):
    loss = anycl.losses.get(name, **({"dim": 8} if name in ("simsiam", "byol") else {}))
    labels = torch.tensor([0, 1, 0, 1])
    with pytest.raises(ValueError, match="differ in batch size or embedding width"):
        loss(torch.randn(4, 8), torch.randn(3, 8), labels=labels)
    with pytest.raises(ValueError, match="differ in batch size or embedding width"):
        loss(torch.randn(4, 8), torch.randn(4, 7), labels=labels)


@pytest.mark.parametrize("name", ["vicreg", "barlow_twins", "simsiam", "byol"])
def test_negative_free_losses_refuse_hard_negatives(name):
    loss = anycl.losses.get(name, **({"dim": 8} if name in ("simsiam", "byol") else {}))
    assert loss.negative_free and not loss.accepts_negatives
    x = torch.randn(4, 8)
    with pytest.raises(ValueError, match="negative-free and cannot use hard negatives"):
        loss(x, x, torch.randn(4, 2, 8), target={"anchor": x, "positive": x}) if name == "byol" else loss(
            x, x, torch.randn(4, 2, 8)
        )


def test_other_bad_inputs():
    x = torch.randn(4, 8)
    with pytest.raises(ValueError, match="supcon needs labels"):
        anycl.losses.get("supcon")(x, x)
    with pytest.raises(ValueError, match="negatives must have shape"):
        anycl.losses.get("infonce")(x, x, torch.randn(3, 2, 8))
    with pytest.raises(ValueError, match="byol needs the momentum target"):
        anycl.losses.get("byol", dim=8)(x, x)
    with pytest.raises(ValueError, match="predictor is not built"):
        anycl.losses.get("simsiam")(x, x)
    with pytest.raises(ValueError, match="mining must be one of"):
        anycl.losses.get("triplet", mining="hardest")
    with pytest.raises(ValueError, match="at least 2 pairs"):
        anycl.losses.get("vicreg")(x[:1], x[:1])
    with pytest.raises(ConfigError, match="negative-free"):
        anycl.losses.get("moco", base="vicreg")


@pytest.mark.parametrize("opts", [{}, {"symmetric": True}, {"chunk_size": 2, "symmetric": True}])
def test_infonce_rows_split_the_mean_over_anchors(opts):
    """``rows=`` (what each process scores across processes) splits the batch mean exactly."""
    g = torch.Generator().manual_seed(4)
    a, p = torch.randn(6, 5, generator=g), torch.randn(6, 5, generator=g)
    n, labels = torch.randn(6, 1, 5, generator=g), torch.tensor([0, 1, 0, 2, 2, 1])
    loss = anycl.losses.get("infonce", temperature=0.1, **opts)
    parts = [loss(a, p, n, labels, rows=slice(s, s + 3)) for s in (0, 3)]
    torch.testing.assert_close(0.5 * (parts[0] + parts[1]), loss(a, p, n, labels))
