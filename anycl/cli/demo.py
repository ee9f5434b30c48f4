"""``anycl demo``: the built-in demo (anycl.cli.demo_job), its own flags passed through."""

from __future__ import annotations

from typing import List

from .demo_job import main as demo_main


def run(args, extra: List[str]) -> int:
    return int(demo_main(list(extra) + (["--quiet"] if args.quiet else [])) or 0)


def add_parser(sub) -> None:
    """The ``demo`` command (its flags are anycl.cli.demo_job's)."""
    p = sub.add_parser(
        "demo",
        add_help=False,
        help="fine-tune MiniLM on built-in data, print metrics before/after",
        description="The built-in demo (see `anycl demo --help`).",
    )
    p.add_argument("-v", "--verbose", action="store_true")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=run, takes_extra=True)
