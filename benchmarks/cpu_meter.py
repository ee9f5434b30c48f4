"""Wall time of a block of a benchmark, the 1-minute load after it, and the CPU that *other* processes used
during it: the machine's busy time (/proc/stat, all cores; steal counts, it is time this VM did not get) minus
this process's CPU time and that of its reaped children (DataLoader workers), in cores. The load average
counts a benchmark's own threads and workers; ``others`` does not."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Optional


def _machine_busy_seconds() -> Optional[float]:
    """CPU seconds the whole machine has been busy (all cores; steal counts: time this VM did not get)."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _own_cpu_seconds() -> float:
    t = os.times()  # children: reaped DataLoader workers
    return t.user + t.system + t.children_user + t.children_system


class Meter:
    """Wall seconds of a block, the 1-minute load after it, and the cores other processes used during it."""

    def __enter__(self):
        self.t0, self.own0, self.busy0 = time.perf_counter(), _own_cpu_seconds(), _machine_busy_seconds()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.t0
        busy = _machine_busy_seconds()
        own = _own_cpu_seconds() - self.own0
        self.others = None if busy is None or self.busy0 is None else max(0.0, (busy - self.busy0 - own) / self.wall)
        self.load = os.getloadavg()[0]
        return False
