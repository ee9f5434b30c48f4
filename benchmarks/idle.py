"""The idle-check's one-line verdict for a results file (``../shared/tools/idle-check``, beside the checkout)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

# ../shared/tools/idle-check beside the checkout; $IDLE_CHECK names it for a checkout elsewhere (a frozen worktree)
IDLE_CHECK = Path(
    os.environ.get("IDLE_CHECK") or Path(__file__).resolve().parents[2] / "shared" / "tools" / "idle-check"
)


def idle_line(default_wait: str = "600") -> str:
    """Run the idle-check (it waits up to ``$IDLE_WAIT`` seconds, else ``default_wait``, for the load to fall) and
    return its load line: ``idle: ...`` or ``busy: ...`` (not the process table that follows a busy line)."""
    if not IDLE_CHECK.exists():
        return f"load average {os.getloadavg()} (idle-check not found)"
    p = subprocess.run(
        [str(IDLE_CHECK)],
        capture_output=True,
        text=True,
        env={**os.environ, "WAIT": os.environ.get("IDLE_WAIT", default_wait)},
    )
    lines = p.stdout.strip().splitlines()
    if not lines:
        return p.stderr.strip()
    return lines[0] if lines[0].startswith("busy") else lines[-1]


def load_line() -> str:
    """:func:`idle_line` without waiting (unless ``$IDLE_WAIT`` says so): the load as it is now."""
    return idle_line(default_wait="0")
