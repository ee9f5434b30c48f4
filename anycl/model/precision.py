"""Whether a device computes in bfloat16 at speed: :func:`bf16_supported`, the one hardware check behind the
``"auto"`` embedding engine (:mod:`anycl.model.engines`); layer 4, so training and mining may use it too.
"""

from __future__ import annotations

import functools
from typing import Optional, Union

import torch

# CPU flags (Linux /proc/cpuinfo) of units that compute bf16 products natively: AVX-512 BF16 and AMX
CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@functools.lru_cache(maxsize=1)
def _cpu_flags() -> frozenset:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:  # not Linux: no flags to read
        pass
    return frozenset()


def cpu_has_bf16() -> bool:
    """Whether this CPU has bf16 units (``avx512_bf16`` or ``amx_bf16`` among its flags; False where the
    flags cannot be read, e.g. off Linux). Without them bf16 autocast on the CPU is emulated, and slower."""
    return any(flag in _cpu_flags() for flag in CPU_BF16_FLAGS)


def bf16_supported(device: Optional[Union[str, torch.device]] = None) -> bool:
    """Whether bf16 autocast pays on ``device`` (default: the CPU): a CPU with bf16 units
    (:func:`cpu_has_bf16`), a CUDA GPU that supports bf16 (Ampere and newer); False for anything else
    (MPS, an older GPU, a CPU without the units)."""
    kind = torch.device(device).type if device is not None else "cpu"
    if kind == "cpu":
        return cpu_has_bf16()
    if kind == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    return False
