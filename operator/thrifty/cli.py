"""The ``thrifty`` command line: dispatches to the subcommand modules in ``thrifty.commands``."""

from __future__ import annotations

import argparse
import importlib
import sys

SUBCOMMANDS = ("run", "scheduler-config", "features", "replay", "bench", "dashboard", "train")
"""Modules under ``thrifty.commands``, in the order ``--help`` lists them."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="thrifty",
        description="Energy-aware placement and sizing of Kubernetes workloads with an RL policy.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(f"thrifty.commands.{name.replace('-', '_')}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
