"""What every ``anycl`` command shares: the user-error type and exit code, logging and quiet library
output, the ``--verbose``/``--quiet`` arguments, loading a saved model and a dataset, printing metrics."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import warnings
from pathlib import Path
from typing import Any, Dict, Optional

import datasets
from transformers.utils import logging as transformers_logging

from anycl import adapters
from anycl.data.inputs import to_rows
from anycl.data.open import open_dataset
from anycl.export.card_sources import is_hub_id
from anycl.model.contrastive import load

EXIT_USER_ERROR = 2

log = logging.getLogger("anycl")


class UsageError(ValueError):
    """A command-line mistake (reported like the library's errors: one line, exit code 2)."""


def add_output_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("output")
    g.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="more logging, the libraries' own progress bars, and tracebacks with errors (default: off)",
    )
    g.add_argument(
        "-q", "--quiet", action="store_true", help="no progress bars, only warnings and results (default: off)"
    )


class BarSafeHandler(logging.StreamHandler):
    """Writes each message through ``tqdm.write``: a message said while a progress bar runs (the audio
    adapter's mono mix-down note during ``encode``) gets a line of its own and the bar is drawn again below it."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            from tqdm import tqdm  # lazy: tqdm: only when a message is written

            tqdm.write(self.format(record), file=self.stream)
        except Exception:  # noqa: BLE001 - logging's own way to report a failing handler
            self.handleError(record)


def setup_logging(verbose: bool, quiet: bool) -> None:
    level = logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO
    handler = BarSafeHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(level)
    log.propagate = False
    _hide_library_bars()  # the libraries' own bars (loading weights, writing shards) are not phases of a run
    if not verbose:
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=UserWarning)
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        for name in ("sentence_transformers", "transformers", "accelerate", "datasets"):
            logging.getLogger(name).setLevel(logging.ERROR)


def _hide_library_bars() -> None:
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    transformers_logging.disable_progress_bar()
    datasets.disable_progress_bars()


def load_model(path: str):
    """``anycl.load(path)``, with a clear error for a missing folder (a Hub id is read from the Hub or its
    cache)."""
    if not Path(path).exists() and not is_hub_id(path):
        raise FileNotFoundError(
            f"model folder {path!r} does not exist; give the output folder of `anycl fit` "
            f"or a folder written by model.save (or a Hub id, 'user/name')"
        )
    return load(path)


def read_rows(data: str, columns: Optional[dict], split: Optional[str], model=None):
    """(the opened source, its rows): a DatasetDict gives its ``split`` (default: test, if it has one)."""
    exts: tuple = ()
    read_file = None
    if model is not None:  # a folder: the files of the model's modalities (a text file's text, a path for others)
        exts = tuple(e for m in model.modalities for e in adapters.file_extensions(m))
        read_file = adapters.file_reader(*model.modalities)
    src = open_dataset(data, split)
    if isinstance(src, datasets.DatasetDict):
        if split is None and "test" in src:
            src = src["test"]
        elif split is not None:
            if split not in src:
                raise UsageError(f"the dataset has no split {split!r}; its splits: {list(src)}")
            src = src[split]
    return src, to_rows(src, columns, exts, read_file=read_file)


def print_metrics(metrics: Dict[str, Any], title: str) -> None:
    print(title)
    width = max(len(k) for k in metrics) if metrics else 0
    for k, v in metrics.items():
        print(f"  {k:<{width}}  {v:.4f}" if isinstance(v, float) else f"  {k:<{width}}  {v}")


def one_line(exc: BaseException) -> str:
    msg = " ".join(str(exc).split())
    if isinstance(exc, KeyError) and msg.startswith("'") and msg.endswith("'"):
        msg = msg[1:-1]
    msg = msg.replace("pass overwrite=True", "pass --overwrite")  # the library's wording → the flag
    return msg or type(exc).__name__


def model_and_data(p: argparse.ArgumentParser, data_help: str) -> None:
    """The MODEL and DATA arguments of ``embed`` and ``eval``."""
    p.add_argument("model", metavar="MODEL", help="a saved model folder (or a fit output folder)")
    p.add_argument("data", metavar="DATA", help=data_help)


def add_columns_argument(p: argparse.ArgumentParser) -> None:
    """``--columns JSON``: the data's column names mapped to the convention's (``eval``, ``mine``)."""
    p.add_argument(
        "--columns",
        metavar="JSON",
        help="JSON mapping of the convention's names to yours, e.g. "
        '\'{"anchor": "query", "positive": "doc"}\' '
        "(default: the convention's names)",
    )


def parsed_columns(args: argparse.Namespace) -> Optional[dict]:
    """The ``--columns`` mapping, or None when the flag is not given."""
    return json.loads(args.columns) if args.columns else None


def write_json(path: str, data: Any) -> None:
    """``data`` as indented JSON at ``path`` (``--output`` / ``--stats`` files), said on stdout."""
    Path(path).write_text(json.dumps(data, indent=2))
    print(f"wrote {path}")
