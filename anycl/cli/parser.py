"""The ``anycl`` argument parser: one sub-command per module of this package."""

from __future__ import annotations

import argparse

from anycl.version import __version__

from . import demo, embed, evaluate, fit, mine, push

COMMANDS = (fit, embed, evaluate, mine, push, demo)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="anycl",
        description="Contrastive representation learning for text, audio and images.",
        epilog="Run `anycl COMMAND --help` for each command's options.",
    )
    parser.add_argument("--version", action="version", version=f"anycl {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(sub)
    return parser
