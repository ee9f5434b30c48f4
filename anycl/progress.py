"""Progress bars: one tqdm bar per phase of work (an evaluation, a mining pass, an ``encode`` call).

The training loop's bar (steps, with the loss) is made in ``anycl/training.py``.
"""
from __future__ import annotations


def phase_bar(enabled: bool, total: int, desc: str):
    """A tqdm bar over ``total`` items (items/s, ETA), or None when not ``enabled``."""
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="item", dynamic_ncols=True)
