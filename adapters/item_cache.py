"""Decoded files kept in memory across epochs, so that an epoch after the first does not decode them again.

The audio adapter keeps decoded, resampled clips (option ``cache_clips`` / ``cache_mb``), the image adapter
decoded images (``cache_mb``). An entry is keyed by the file's path, size and modification time (a file
rewritten between epochs is decoded again), and kept while the cache's byte budget (and count, where one is
given) has room; once full, new items are decoded every time and the kept ones stay. In a shuffled epoch
that hits (budget / data) of the reads, as least-recently-used eviction would about do, without reordering
or evicting at every read. Items other than file paths (arrays, bytes, PIL images, dicts) are not kept: they
are in memory already.

A cached tensor is shared between the reads that return it: the adapters' views never write to it in place.
"""

from __future__ import annotations

import os
from typing import Any, Dict, Optional, Tuple

import torch

from anycl.errors import ConfigError

MB = 1 << 20


def check_size(owner: str, name: str, value: Any, integer: bool = False) -> None:
    """A cache size option: a finite number >= 0 (an integer where ``integer``), else a ConfigError naming it."""
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not 0 <= value < float("inf"):
        what = "an integer" if integer else "a number"
        raise ConfigError(f"{owner} option {name} must be {what} >= 0 (0 switches the cache off), got {value!r}")


def nbytes(value: Any) -> int:
    """Memory a cached value holds: a tensor's bytes; anything else (a long file's header) counts as 0."""
    return value.numel() * value.element_size() if torch.is_tensor(value) else 0


class DecodedCache:
    """A byte-budgeted (and optionally count-limited) cache of decoded files; see the module docstring.

    Args:
        budget_mb: the most memory the kept values take, in MiB (0: nothing kept).
        max_items: the most values kept (None: no limit but the budget; 0: nothing kept).
    """

    def __init__(self, budget_mb: float, max_items: Optional[int] = None):
        self.budget = int(float(budget_mb) * MB)
        self.max_items = None if max_items is None else int(max_items)
        self._kept: Dict[Tuple[str, int, int], Any] = {}
        self.used = 0

    @property
    def enabled(self) -> bool:
        return self.budget > 0 and self.max_items != 0

    def __len__(self) -> int:
        return len(self._kept)

    def key(self, path: Any) -> Optional[Tuple[str, int, int]]:
        """The key of a file path (its path, size and mtime), or None: not a path, no such file, cache off."""
        if not self.enabled or not isinstance(path, str):
            return None
        try:
            st = os.stat(path)
        except OSError:
            return None
        return (path, st.st_size, st.st_mtime_ns)

    def get(self, key: Optional[Tuple[str, int, int]]) -> Any:
        """The kept value of ``key``, or None."""
        return None if key is None else self._kept.get(key)

    def keep(self, key: Optional[Tuple[str, int, int]], value: Any) -> Any:
        """Keep ``value`` under ``key`` when it fits the budget and the count; returns ``value``."""
        if key is None or key in self._kept:
            return value
        size = nbytes(value)
        if self.used + size > self.budget or (self.max_items is not None and len(self._kept) >= self.max_items):
            return value
        self._kept[key] = value
        self.used += size
        return value

    def clear(self) -> None:
        self._kept, self.used = {}, 0
