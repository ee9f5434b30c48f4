"""The fit's optimiser: AdamW, fused where safe (anycl/training/optimizer.py), checked against the AdamW formula."""

import pytest
import torch
from toy_modality import toy_rows  # noqa: F401  (registers "toyvec")

import anycl
from anycl.training.optimizer import make_optimizer, use_fused


def adamw_reference(w0, grads, lr, wd, betas=(0.9, 0.999), eps=1e-8):
    """AdamW (Loshchilov & Hutter) by its formula, in float64."""
    w = w0.double().clone()
    m = torch.zeros_like(w)
    v = torch.zeros_like(w)
    for t, g in enumerate(grads, start=1):
        g = g.double()
        w = w * (1 - lr * wd)
        m = betas[0] * m + (1 - betas[0]) * g
        v = betas[1] * v + (1 - betas[1]) * g * g
        m_hat = m / (1 - betas[0] ** t)
        v_hat = v / (1 - betas[1] ** t)
        w = w - lr * m_hat / (v_hat.sqrt() + eps)
    return w


@pytest.mark.parametrize("fused", [True, False])
def test_updates_follow_the_adamw_formula(fused, monkeypatch):
    if not fused:
        monkeypatch.setattr("anycl.training.optimizer.use_fused", lambda *a, **k: False)
    g = torch.Generator().manual_seed(0)
    w0 = torch.randn(7, 5, generator=g)
    grads = [torch.randn(7, 5, generator=g) for _ in range(6)]
    p = torch.nn.Parameter(w0.clone())
    opt = make_optimizer([p], lr=1e-2, weight_decay=0.1, device=torch.device("cpu"))
    assert bool(opt.defaults["fused"]) is fused
    for grad in grads:
        p.grad = grad.clone()
        opt.step()
    torch.testing.assert_close(p.detach().double(), adamw_reference(w0, grads, 1e-2, 0.1), rtol=1e-5, atol=1e-6)


def test_fused_only_where_safe():
    p = [torch.nn.Parameter(torch.zeros(3))]
    cpu = torch.device("cpu")
    assert use_fused(p, cpu)
    assert use_fused(p, cpu, "DistributedType.MULTI_CPU")
    assert not use_fused(p, torch.device("meta"))
    for kind in ("DistributedType.FSDP", "DistributedType.DEEPSPEED", "DistributedType.MEGATRON_LM"):
        assert not use_fused(p, cpu, kind)
    assert not use_fused([torch.zeros(3, dtype=torch.long)], cpu)


def test_a_cpu_fit_uses_the_fused_kernel():
    model = anycl.fit(toy_rows(16), modality="toyvec", batch_size=8, epochs=2, progress=False, seed=1)
    inner = getattr(model.trainer.optimizer, "optimizer", model.trainer.optimizer)  # Accelerate's wrapper
    assert isinstance(inner, torch.optim.AdamW) and inner.defaults["fused"] is True
    losses = [h["loss"] for h in model.trainer.history]
    assert all(torch.isfinite(torch.tensor(losses)))
