"""The ``anycl`` command line: ``fit``, ``embed``, ``eval``, ``mine``, ``push``, ``demo`` (and ``python -m anycl``).

::

    anycl fit pairs.csv --modality text --epochs 1 --output-dir out     # model, report, config, card
    anycl eval out test_pairs.csv                                        # retrieval metrics
    anycl embed out items.csv --output emb.parquet                       # embeddings with item ids
    anycl mine MODEL pairs.csv --output mined.csv --relative-margin 0.05 # hard negatives for a pair file
    anycl push out ada/my-model --license apache-2.0                     # to the Hugging Face Hub
    anycl fit --config out/config.yaml --output-dir out2                 # the same run again

Every ``fit`` option (:class:`anycl.options.fit_config.FitConfig`) is accepted as ``--name value`` (``--batch-size 16``,
``--loss-options '{"temperature": 0.1}'``); values are read as JSON, YAML flow mappings, booleans, or
strings. A bare ``--name`` means true. Command-line values override the config file's.

Problems a user can fix (a bad path, an unknown option or modality, an existing output folder) print one
line that names the problem and how to fix it, and exit with code 2; ``--verbose`` adds the traceback.

The package: ``common`` (errors, logging, loading), ``flags`` (fit's option flags), ``table_output`` (the table
files ``mine`` writes), ``parser`` (the argument parser), and one module per command: ``fit``, ``embed``,
``evaluate`` (eval), ``mine``, ``push``, ``demo``.
"""

from __future__ import annotations

import sys
import traceback
from typing import Optional, Sequence

from anycl.errors import AnyclError
from anycl.options.fit_config import FIT_FLAG_DOCS, HIDDEN_FIT_OPTIONS  # noqa: F401  (anycl.cli's names, as before)

from .common import EXIT_USER_ERROR, UsageError, one_line, setup_logging
from .flags import fit_options_help, parse_options, split_fit_argv  # noqa: F401
from .parser import build_parser

__all__ = [
    "main",
    "build_parser",
    "parse_options",
    "split_fit_argv",
    "fit_options_help",
    "UsageError",
    "EXIT_USER_ERROR",
    "FIT_FLAG_DOCS",
    "HIDDEN_FIT_OPTIONS",
]


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``anycl`` console script; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    verbose = "--verbose" in argv or "-v" in argv
    command = "anycl"
    try:
        parser = build_parser()
        if argv and argv[0] == "fit":
            own, fit_extra = split_fit_argv(argv[1:])
            args, extra = parser.parse_known_args(["fit"] + own)
            extra = extra + fit_extra
        else:
            args, extra = parser.parse_known_args(argv)
        if args.command is None:
            parser.print_help()
            return EXIT_USER_ERROR
        command = f"anycl {args.command}"
        if extra and not getattr(args, "takes_extra", False):
            raise UsageError(f"unrecognised arguments: {' '.join(extra)} (see {command} --help)")
        setup_logging(args.verbose, args.quiet)
        args.argv = argv
        return args.func(args, extra)
    except KeyboardInterrupt:
        print(f"{command}: interrupted", file=sys.stderr)
        return 130
    except (
        AnyclError,
        UsageError,
        FileNotFoundError,
        FileExistsError,
        NotADirectoryError,
        IsADirectoryError,
        PermissionError,
        FloatingPointError,
    ) as exc:
        if verbose:
            traceback.print_exc()
        print(f"{command}: error: {one_line(exc)}", file=sys.stderr)
        return EXIT_USER_ERROR
    except Exception as exc:  # a bug or an environment problem: one line unless --verbose
        if verbose:
            traceback.print_exc()
        print(
            f"{command}: unexpected {type(exc).__name__}: {one_line(exc)} (run again with --verbose for the traceback)",
            file=sys.stderr,
        )
        return 1
