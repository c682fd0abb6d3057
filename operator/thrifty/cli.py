"""The ``thrifty`` command line: dispatches to the subcommand modules in ``thrifty.commands``."""

from __future__ import annotations

import argparse
import importlib
import sys

from thrifty import __version__
from thrifty.commands.flags import Parser

SUBCOMMANDS = ("run", "scheduler-config", "features", "replay", "bench", "trace", "dashboard", "train")
"""Modules under ``thrifty.commands``, in the order ``--help`` lists them."""


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="thrifty",
        description="Energy-aware placement and sizing of Kubernetes workloads with an RL policy.",
        epilog="`thrifty run` also reads each of its flags from an environment variable (THRIFTY_ and the "
               "flag's name: see `thrifty run --help`); the other commands, run by hand, read only their "
               "command line.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(f"thrifty.commands.{name.replace('-', '_')}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
