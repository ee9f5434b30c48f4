"""``anycl fit``'s option flags, generated from :class:`anycl.options.fit_config.FitConfig`: the ``--help`` section
(flag, metavar, meaning, default of each option), parsing ``--name value`` tokens, and separating them
from ``fit``'s own arguments."""

from __future__ import annotations

import re
from typing import Any, Dict, List, Sequence

from anycl.errors import ConfigError, did_you_mean
from anycl.options.fit_config import FIT_FLAG_DOCS, FIT_OPTIONS, HIDDEN_FIT_OPTIONS
from anycl.options.run_config import parse_value

from .common import UsageError


def fit_options_help() -> str:
    """The fit options' section of ``anycl fit --help``: flag, metavar, meaning, default."""
    lines = []
    for name, meaning in FIT_OPTIONS.items():
        if name in HIDDEN_FIT_OPTIONS:
            continue
        metavar, default = FIT_FLAG_DOCS[name]
        flag = f"--{name.replace('_', '-')}" + (f" {metavar}" if metavar else "")
        meaning = re.sub(r"\s*\(default\b(?:[^()]|\([^()]*\))*\)", "", meaning)  # the default is said once, below
        lines.append(f"  {flag}\n      {meaning} (default: {default})")
    return "\n".join(lines)


def parse_options(tokens: Sequence[str], valid: Sequence[str]) -> Dict[str, Any]:
    """``--name value`` / ``--name=value`` / bare ``--flag`` tokens → {name: parsed value}.

    Dashes in names become underscores; names not in ``valid`` raise ConfigError listing the valid ones.
    """
    out: Dict[str, Any] = {}
    i = 0
    tokens = list(tokens)
    while i < len(tokens):
        tok = tokens[i]
        if not tok.startswith("--") or tok == "--":
            raise UsageError(f"unexpected argument {tok!r}; options are written --name value")
        name, eq, value = tok[2:].partition("=")
        name = name.replace("-", "_")
        if name in HIDDEN_FIT_OPTIONS:
            raise UsageError(
                f"--{name} takes a Python object, which a command line cannot give; use anycl.fit from Python for it"
            )
        if name not in valid:
            hint = did_you_mean(name, list(valid)).replace("'", "").replace("mean ", "mean --").replace("_", "-")
            raise ConfigError(
                f"unknown option --{name.replace('_', '-')}{hint}; valid fit options: "
                + ", ".join("--" + v.replace("_", "-") for v in sorted(valid))
            )
        if eq:
            out[name] = parse_value(value)
            i += 1
        elif i + 1 < len(tokens) and not tokens[i + 1].startswith("--"):
            out[name] = parse_value(tokens[i + 1])
            i += 2
        else:
            out[name] = True
            i += 1
    return out


FIT_FLAGS_WITH_VALUE = ("--modality", "--loss", "--config")
FIT_FLAGS = ("-v", "--verbose", "-q", "--quiet", "-h", "--help")


def split_fit_argv(tokens: Sequence[str]):
    """Separate ``fit``'s own arguments from ``--option value`` pairs of fit options.

    argparse cannot do it alone: in ``DATA --output-dir out`` it would take ``out`` for DATA.
    """
    own: List[str] = []
    extra: List[str] = []
    i = 0
    tokens = list(tokens)
    while i < len(tokens):
        tok = tokens[i]
        name = tok.split("=", 1)[0]
        if name in FIT_FLAGS or (name in FIT_FLAGS_WITH_VALUE and "=" in tok):
            own.append(tok)
            i += 1
        elif name in FIT_FLAGS_WITH_VALUE:
            own.extend(tokens[i : i + 2])
            i += 2
        elif tok.startswith("--") and tok != "--":
            extra.append(tok)
            i += 1
            if "=" not in tok and i < len(tokens) and not tokens[i].startswith("--"):
                extra.append(tokens[i])
                i += 1
        else:
            own.append(tok)
            i += 1
    return own, extra
