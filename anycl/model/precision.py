"""Whether a device computes in bfloat16 at speed: the one hardware check behind both ``"auto"`` choices, the
embedding engine (:mod:`anycl.model.engines`) and training's ``mixed_precision`` (:mod:`anycl.training.precision`);
layer 4, so training and mining use it too.

- :func:`cpu_bf16_units`: the CPU's bf16 units by flag name (``"amx_bf16"``, ``"avx512_bf16"``) or None; either
  torch's own CPU probe or the kernel's flags (``/proc/cpuinfo``) saying so is enough.
- :func:`cuda_bf16`: whether the GPU computes in bf16 natively (Ampere or newer).
- :func:`bf16_supported`: the two by device.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Set, Union

import torch

CPUINFO = Path("/proc/cpuinfo")
# the CPU flags (as /proc/cpuinfo names them) of units that compute bf16 products natively, preferred first
BF16_FLAGS = ("amx_bf16", "avx512_bf16")


def _torch_flags() -> Set[str]:
    """The bf16 flags torch's own CPU probe reports (its private ``torch.cpu`` helpers, where this torch has them)."""
    out = set()
    probes = (("avx512_bf16", "_is_avx512_bf16_supported"), ("amx_bf16", "_is_amx_tile_supported"))
    for flag, probe in probes:
        fn = getattr(torch.cpu, probe, None)
        try:
            if fn is not None and fn():
                out.add(flag)
        except Exception:  # a private helper: any failure only means "not known from torch"
            continue
    return out


def _cpuinfo_flags() -> Set[str]:
    """The CPU flags of :data:`CPUINFO` (Linux; empty elsewhere or when unreadable)."""
    try:
        text = CPUINFO.read_text(errors="replace")
    except OSError:
        return set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return set(value.split())
    return set()


def cpu_bf16_units() -> Optional[str]:
    """The CPU's bf16 units by flag name (``"amx_bf16"``, ``"avx512_bf16"``), or None where it has none.
    Without them bf16 autocast on the CPU is emulated, and slower. Tests monkeypatch this function."""
    flags = _torch_flags() | _cpuinfo_flags()
    return next((f for f in BF16_FLAGS if f in flags), None)


def cpu_has_bf16() -> bool:
    """Whether this CPU has bf16 units (:func:`cpu_bf16_units`)."""
    return cpu_bf16_units() is not None


def cuda_bf16() -> bool:
    """Whether the GPU computes in bf16 natively (Ampere or newer; torch's default also counts emulation)."""
    if not torch.cuda.is_available():
        return False
    try:
        return bool(torch.cuda.is_bf16_supported(including_emulation=False))
    except TypeError:  # an older torch without the argument: it counted native support only
        return bool(torch.cuda.is_bf16_supported())


def bf16_supported(device: Optional[Union[str, torch.device]] = None) -> bool:
    """Whether bf16 autocast pays on ``device`` (default: the CPU): a CPU with bf16 units, a CUDA GPU with native
    bf16; False for anything else (MPS, an older GPU, a CPU without the units)."""
    kind = torch.device(device).type if device is not None else "cpu"
    if kind == "cpu":
        return cpu_has_bf16()
    if kind == "cuda":
        return cuda_bf16()
    return False
