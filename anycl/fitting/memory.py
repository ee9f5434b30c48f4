"""A training step's memory, estimated before the first step, against the memory there is.

For the towers whose adapter sets ``estimates_memory`` (images), in bytes:

    weights + gradients + AdamW's two moments:  (w + w + 8) · P      (w: bytes per weight, 4 in float32; the
                                                                      gradient and moments of trainable weights)
    activations:  A · n · r                                         (A: bytes of the outputs of every leaf module
                                                                      for one item, float32, measured by one
                                                                      no-grad forward of two made-up items of the
                                                                      training size, the adapter's example_views;
                                                                      n: items a row gives the tower, 2 for two
                                                                      views of an image, plus views, local views,
                                                                      hard negatives; r: rows per step and process,
                                                                      a GradCache mini-batch when set)

halved for activations under mixed precision (bf16 / fp16, not measured). Measured against the peak resident
memory of a real forward, backward and AdamW step on CPU (``tests/test_image_defaults.py``): the estimate is
within a factor of :data:`STATED_FACTOR` of it. Memory the run holds already is not counted again (on CPU the
weights are in RAM when the check runs; on a GPU they are not yet).

The memory there is: the GPU's free memory (``torch.cuda.mem_get_info``) when training runs on one, else the
RAM the system says is available (``MemAvailable`` of ``/proc/meminfo``, within a cgroup's limit; elsewhere
``os.sysconf``). When the estimate does not fit, ``fit`` stops with a ConfigError naming both numbers and a
batch size that fits (it never changes the batch on its own: the batch size shapes the loss); environment
``ANYCL_MEMORY_CHECK=0`` skips the check.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import nn

from anycl.data.rows import Rows
from anycl.errors import ConfigError

log = logging.getLogger("anycl")

STATED_FACTOR = 2.0  # the estimate is within this factor of a real step's measured peak (the test holds it)
GB = 1024**3


def _leaves(module: nn.Module) -> List[nn.Module]:
    return [m for m in module.modules() if not any(True for _ in m.children())]


def item_activations(tower) -> Optional[int]:
    """Bytes of float32 outputs of every leaf module of ``tower`` (and its input) for one item of its adapter's
    ``example_views()`` (the training size); None when the adapter makes none."""
    views = tower.adapter.example_views()
    if not views:
        return None
    counted: List[int] = []

    def count(_module, _inputs, output) -> None:
        outs = output if isinstance(output, (tuple, list)) else [output]
        counted.extend(4 * t.numel() for t in outs if torch.is_tensor(t))

    parts = [] if tower.frozen else [tower.encoder]  # a frozen encoder runs without a graph: nothing kept
    if tower.head is not None and tower.frozen != "all":
        parts.append(tower.head)
    hooks = [leaf.register_forward_hook(count) for part in parts for leaf in _leaves(part)]
    was = tower.training
    try:
        tower.eval()
        batch = tower.adapter.collate(views)
        device = next((p.device for p in tower.parameters()), torch.device("cpu"))
        batch = batch.to(device) if torch.is_tensor(batch) else batch
        with torch.no_grad():
            tower(batch, train=False)
    finally:
        for h in hooks:
            h.remove()
        tower.train(was)
    inputs = 4 * int(batch.numel()) if torch.is_tensor(batch) else 0
    return (sum(counted) + inputs) // len(views)


def weight_bytes(model: nn.Module) -> Tuple[int, int]:
    """(bytes of the weights, bytes of the gradients and AdamW moments of the trainable ones)."""
    weights = state = 0
    for p in model.parameters():
        weights += p.numel() * p.element_size()
        if p.requires_grad:
            state += p.numel() * (p.element_size() + 8)
    return weights, state


def items_per_row(rows: Rows, counts: Optional[Tuple[int, int]]) -> Dict[str, int]:
    """{side: items one row gives it}: two views of a lone anchor, an anchor and a positive, the hard negatives;
    multi-view training (``counts`` = (views, local views)) gives the anchor side all of its views."""
    if counts is not None:
        return {"anchor": counts[0] + counts[1]}
    out = {"anchor": 1, "positive": 1} if rows.has_positive else {"anchor": 2}
    if rows.negatives:
        out["negative"] = len(rows.negatives)
    return out


def estimate(model, rows: Rows, batch: int, counts=None, mixed: bool = False) -> Optional[Dict[str, Any]]:
    """The estimate for ``batch`` rows per step (see the module docstring), or None when no tower estimates.

    Keys: ``weights``, ``state`` (gradients + AdamW), ``activations``, ``per_row`` (activation bytes of one row),
    ``items`` ({modality: items per step}), ``size`` (the first estimating adapter's ``size``, else None)."""
    per_row = 0.0
    items: Dict[str, int] = {}
    size = None
    for side, n in items_per_row(rows, counts).items():
        tower = model.tower(side)
        if not getattr(tower.adapter, "estimates_memory", False):
            continue
        a = item_activations(tower)
        if a is None:
            continue
        per_row += a * n * (0.5 if mixed else 1.0)
        items[tower.modality] = items.get(tower.modality, 0) + n * batch
        size = size or getattr(tower.adapter, "size", None)
    if not items:
        return None
    weights, state = weight_bytes(model)
    return {
        "weights": weights,
        "state": state,
        "activations": int(per_row * batch),
        "per_row": per_row,
        "items": items,
        "size": size,
    }


def _meminfo_available() -> Optional[int]:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (OSError, ValueError, AttributeError):
        return None


def _read_int(path: str) -> Optional[int]:
    try:
        with open(path) as f:
            text = f.read(64).strip()
        return int(text)
    except (OSError, ValueError):  # "max" (no limit), no such file
        return None


def _cgroup_room() -> Optional[int]:
    """What a cgroup's memory limit leaves (v2, else v1); None without a limit."""
    for limit, usage in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"),
    ):
        top, used = _read_int(limit), _read_int(usage)
        if top is not None and used is not None and top < 1 << 60:
            return max(0, top - used)
    return None


def available(cpu: bool) -> Optional[Tuple[int, str, bool]]:
    """(bytes free for training, where, on a GPU?) — the GPU's free memory when training runs on CUDA, else the
    available RAM (within a cgroup's limit); None where it cannot be told (an MPS device)."""
    if not cpu and torch.cuda.is_available():
        device = int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count()
        free, _total = torch.cuda.mem_get_info(device)
        return int(free), f"free on GPU {device} ({torch.cuda.get_device_name(device)})", True
    if not cpu and hasattr(torch.backends, "mps") and torch.backends.mps.is_available():
        return None
    ram = _meminfo_available()
    room = _cgroup_room()
    if ram is None and room is None:
        return None
    free = min(x for x in (ram, room) if x is not None)
    return free, "available RAM" + (" (the cgroup's limit)" if room is not None and room == free else ""), False


def _gb(n: float) -> str:
    return f"{n / GB:.2f} GB" if n < 10 * GB else f"{n / GB:.1f} GB"


def check_step_memory(
    model, rows: Rows, batch: int, cpu: bool, counts=None, mixed: bool = False, mini_batch: Optional[int] = None
) -> Optional[Dict[str, Any]]:
    """Estimate a step's memory, say it in the log, and raise ConfigError when it exceeds what is available
    (see the module docstring). ``batch``: rows per step and process; ``mini_batch``: GradCache's. Returns the
    estimate (None when no tower estimates, or ``ANYCL_MEMORY_CHECK=0``)."""
    if os.environ.get("ANYCL_MEMORY_CHECK", "1").strip().lower() in ("0", "false", "no", "off"):
        return None
    if not rows.streaming:
        batch = max(1, min(batch, len(rows)))
    rows_at_once = min(batch, mini_batch) if mini_batch else batch
    est = estimate(model, rows, rows_at_once, counts, mixed)
    if est is None:
        return None
    room = available(cpu)
    on_gpu = bool(room and room[2])
    fixed = est["state"] + (est["weights"] if on_gpu else 0)  # on CPU the weights are in RAM already
    need = fixed + est["activations"]
    items = ", ".join(f"{n} {m} items" for m, n in est["items"].items())
    crop = f" of {est['size']} px" if est["size"] else ""
    weights = f"weights {_gb(est['weights'])}" if on_gpu else f"the weights' {_gb(est['weights'])} held already"
    said = (
        f"a training step needs about {_gb(need)}: activations {_gb(est['activations'])} for {rows_at_once} rows "
        f"({items}{crop}), gradients and AdamW state {_gb(est['state'])}, {weights}"
    )
    if room is None:
        log.info("%s", said)
        return est
    free, where = room[0], room[1]
    if need <= free:
        log.info("%s; %s %s", said, _gb(free), where)
        return est
    fits = int((free - fixed) // max(est["per_row"], 1.0))
    fix = []
    if fits >= 2:
        fix.append(
            f"batch_size={_floor_pow2(fits)} fits (or keep the batch with gradcache_mini_batch={_floor_pow2(fits)})"
        )
    else:
        fix.append("a smaller model (encoder_options) or a GPU with more memory")
    if est["size"] and est["size"] > 32:
        fix.append("smaller crops (adapter_options={'size': ...}; preset='small' for images of 64 px or less)")
    raise ConfigError(
        f"{said}, but {_gb(free)} is {where} (the estimate is within a factor {STATED_FACTOR:g} of a measured "
        f"step): {'; or '.join(fix)}; to train anyway set the environment variable ANYCL_MEMORY_CHECK=0"
    )


def _floor_pow2(n: int) -> int:
    p = 1
    while p * 2 <= n:
        p *= 2
    return p
