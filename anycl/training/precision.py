"""Which precision a run trains in: ``mixed_precision="auto"`` (the default) resolved for this machine.

``"auto"`` is bf16 autocast where the hardware has bf16 arithmetic: a CUDA GPU that supports bf16, or a CPU
with bf16 units (AVX512-BF16 or AMX, :func:`cpu_bf16_units`); fp32 everywhere else (an MPS device, an older
CPU). It never picks fp16, whose loss scaling a user should choose knowingly. Under autocast the master
weights, the optimiser state and the saved model stay fp32; only the arithmetic of the forward and backward
passes runs in bf16. ``"no"``, ``"bf16"`` and ``"fp16"`` keep their meaning (fp16 needs a GPU:
:func:`anycl.training.accelerator.make_accelerator`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional, Set, Tuple

import torch

from anycl.options.validation import check_mixed_precision

log = logging.getLogger("anycl")

AUTO = "auto"
CPUINFO = Path("/proc/cpuinfo")
# the CPU flags (as /proc/cpuinfo names them) of units that compute in bf16, preferred first
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
    Either torch's CPU probe or the kernel's flags (``/proc/cpuinfo``) saying so is enough; tests monkeypatch
    this function."""
    flags = _torch_flags() | _cpuinfo_flags()
    return next((f for f in BF16_FLAGS if f in flags), None)


def _cuda_bf16() -> bool:
    """Whether the GPU computes in bf16 natively (Ampere or newer; torch's default also counts emulation)."""
    if not torch.cuda.is_available():
        return False
    try:
        return bool(torch.cuda.is_bf16_supported(including_emulation=False))
    except TypeError:  # an older torch without the argument: it counted native support only
        return bool(torch.cuda.is_bf16_supported())


def resolve_precision(requested: Optional[str], cpu: bool = False) -> Tuple[str, str]:
    """``(precision, why)``: the precision a run trains in (``"no"``, ``"bf16"`` or ``"fp16"``) for
    ``requested`` (None: ``"auto"``) on this machine, training on the CPU when ``cpu``, and why in words."""
    check_mixed_precision(requested)
    if requested not in (None, AUTO):
        return str(requested), "given"
    if not cpu and torch.cuda.is_available():
        if _cuda_bf16():
            return "bf16", f"the GPU ({torch.cuda.get_device_name()}) supports bf16"
        return "no", "the GPU does not support bf16"
    if not cpu and hasattr(torch.backends, "mps") and torch.backends.mps.is_available():
        return "no", "auto keeps fp32 on Apple MPS"
    units = cpu_bf16_units()
    if units:
        return "bf16", f"the CPU has bf16 units ({units})"
    return "no", "the CPU has no bf16 units (avx512_bf16 or AMX)"


def resolve_args(args: Any) -> None:
    """Resolve ``args.mixed_precision`` (a :class:`~anycl.training.TrainingArgs`) in place when it is
    ``"auto"``, keeping why in ``args.mixed_precision_why`` (None when the precision was given)."""
    check_mixed_precision(args.mixed_precision)
    if args.mixed_precision == AUTO:
        args.mixed_precision, args.mixed_precision_why = resolve_precision(AUTO, bool(args.cpu))


def precision_words(args: Any) -> str:
    """The run's precision in the recipe line's words: ``"bf16 autocast with fp32 weights (auto: the CPU has
    bf16 units (avx512_bf16))"``, ``"fp32"``, ..."""
    said = {"no": "fp32", "bf16": "bf16 autocast with fp32 weights", "fp16": "fp16 autocast with fp32 weights"}
    words = said.get(args.mixed_precision, str(args.mixed_precision))  # "auto": not resolved yet
    why = getattr(args, "mixed_precision_why", None)
    return f"{words} (auto: {why})" if why else words


def log_precision(args: Any) -> None:
    """Say once which precision ``"auto"`` chose and why, and for bf16 how to keep fp32 (nothing when given)."""
    why = getattr(args, "mixed_precision_why", None)
    if not why:
        return
    if args.mixed_precision == "bf16":
        log.info(
            "mixed precision: bf16 autocast, master weights fp32 (mixed_precision='auto': %s); "
            "mixed_precision='no' trains in fp32",
            why,
        )
    else:
        log.info("mixed precision: none, fp32 (mixed_precision='auto': %s)", why)
