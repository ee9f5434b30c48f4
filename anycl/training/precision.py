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
from typing import Any, Optional, Tuple

import torch

from anycl.model.precision import cpu_bf16_units, cuda_bf16
from anycl.options.validation import check_mixed_precision

log = logging.getLogger("anycl")

AUTO = "auto"


def resolve_precision(requested: Optional[str], cpu: bool = False) -> Tuple[str, str]:
    """``(precision, why)``: the precision a run trains in (``"no"``, ``"bf16"`` or ``"fp16"``) for
    ``requested`` (None: ``"auto"``) on this machine, training on the CPU when ``cpu``, and why in words."""
    check_mixed_precision(requested)
    if requested not in (None, AUTO):
        return str(requested), "given"
    if not cpu and torch.cuda.is_available():
        if cuda_bf16():
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
