"""How ``anycl fit --help`` shows each fit option: its metavar and default (the meaning is
``anycl.options.FIT_OPTIONS``), and which options a shell cannot give."""
import re
from typing import Dict

from .options import FIT_OPTIONS

from .fit_config import DEFAULT_RUNS, FIT_FLAG_DOCS, HIDDEN_FIT_OPTIONS  # noqa: E402,F401


def fit_options_help() -> str:
    """The fit options' section of ``anycl fit --help``: flag, metavar, meaning, default."""

    lines = []
    for name, meaning in FIT_OPTIONS.items():
        if name in HIDDEN_FIT_OPTIONS:
            continue
        metavar, default = FIT_FLAG_DOCS.get(name, ("VALUE", "see anycl.api.FIT_OPTIONS"))
        flag = f"--{name.replace('_', '-')}" + (f" {metavar}" if metavar else "")
        meaning = re.sub(r"\s*\(default\b(?:[^()]|\([^()]*\))*\)", "", meaning)  # the default is said once, below
        lines.append(f"  {flag}\n      {meaning} (default: {default})")
    return "\n".join(lines)
