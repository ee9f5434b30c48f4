"""Mixed precision on the CPU: bf16 autocast trains end to end (with and without GradCache, the loss
computed in float32), fp16 on a machine without a GPU is refused with a clear message."""

import pytest
import torch
from toy_modality import ToyEncoder, toy_rows

import anycl
from anycl.errors import ConfigError


@pytest.mark.parametrize("gradcache", [None, 3])
def test_bf16_autocast_trains_on_cpu(gradcache):
    rows = toy_rows(24, negatives=1)
    opts = dict(
        modality="toyvec",
        batch_size=8,
        epochs=1,
        progress=False,
        seed=2,
        cpu=True,
        log_with=None,
        log_every=1,
        gradcache_mini_batch=gradcache,
    )
    dtypes = []
    torch.manual_seed(0)
    encoder = ToyEncoder()
    encoder.register_forward_hook(lambda m, i, out: dtypes.append(out.dtype))
    bf16 = anycl.fit(rows, mixed_precision="bf16", encoder=encoder, **opts)
    assert set(dtypes) == {torch.bfloat16}  # autocast really ran the encoder in bf16
    torch.manual_seed(0)
    fp32 = anycl.fit(rows, mixed_precision="no", encoder=ToyEncoder(), **opts)
    losses = [h["loss"] for h in bf16.trainer.history]
    assert len(losses) == 3 and all(torch.isfinite(torch.tensor(losses)))
    # weights stay float32; bf16 only changes the arithmetic, so the runs stay close to each other
    for k, v in bf16.state_dict().items():
        assert v.dtype == fp32.state_dict()[k].dtype
    assert losses == pytest.approx([h["loss"] for h in fp32.trainer.history], rel=0.05)
    emb = bf16.encode([r["anchor"] for r in rows[:4]])
    assert emb.dtype == torch.float32 and torch.isfinite(emb).all()


@pytest.mark.skipif(torch.cuda.is_available(), reason="fp16 is allowed where a GPU is present")
def test_fp16_without_a_gpu_is_a_clear_error():
    with pytest.raises(ConfigError, match=r"mixed_precision='fp16' needs a CUDA or MPS device; on CPU use 'bf16'"):
        anycl.fit(toy_rows(8), modality="toyvec", mixed_precision="fp16", progress=False)
    with pytest.raises(ConfigError, match=r"mixed_precision must be 'no', 'bf16' or 'fp16', got 'int8'"):
        anycl.fit(toy_rows(8), modality="toyvec", mixed_precision="int8", progress=False)
