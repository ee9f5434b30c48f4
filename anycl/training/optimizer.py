"""The optimiser of a fit: AdamW, with torch's fused kernel wherever it is safe.

torch's default AdamW on CPU updates each parameter tensor in a Python loop of small element-wise ops; the
fused kernel does the whole update in one pass per tensor. One CPU step on a ResNet-18 (11 M parameters)
took about 0.74 s with the default against 0.10 s fused (timed on a loaded machine: a rough ratio). The
update is the same AdamW; only the float rounding order differs (tests/test_optimizer.py checks it against
the formula).

The fused kernel is used when the training device is a CPU or a CUDA GPU, every trained parameter is a
floating-point tensor, and no sharding plugin (FSDP, DeepSpeed, Megatron) owns the parameters; otherwise
the default implementation runs, as before.
"""

from __future__ import annotations

from typing import Any, Iterable, List, Optional

import torch

FUSED_DEVICES = ("cpu", "cuda")
SHARDED = ("DEEPSPEED", "FSDP", "MEGATRON", "XLA")


def use_fused(params: List[torch.Tensor], device: torch.device, distributed_type: Any = None) -> bool:
    """Whether AdamW's fused kernel can run these parameters on ``device``."""
    kind = str(distributed_type or "").upper()
    if any(s in kind for s in SHARDED):
        return False
    if device.type not in FUSED_DEVICES:
        return False
    return all(torch.is_floating_point(p) for p in params)


def make_optimizer(
    params: Iterable[torch.Tensor], lr: float, weight_decay: float, device: torch.device, distributed_type: Any = None
) -> torch.optim.AdamW:
    """AdamW over ``params`` (fused where :func:`use_fused` allows)."""
    params = list(params)
    fused = use_fused(params, device, distributed_type)
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=fused or None)


def state_mismatch(optimizer: torch.optim.Optimizer) -> Optional[str]:
    """What in an optimiser's state (after ``load_state_dict``, which checks no shapes) does not fit its parameters:
    AdamW keeps, per parameter, moments of the parameter's shape and a one-element step count. None when all fit."""
    for group in optimizer.param_groups:
        for p in group["params"]:
            for key, value in optimizer.state.get(p, {}).items():
                if torch.is_tensor(value) and value.numel() != 1 and tuple(value.shape) != tuple(p.shape):
                    return f"{key!r} of a parameter of shape {list(p.shape)} has shape {list(value.shape)}"
    return None
