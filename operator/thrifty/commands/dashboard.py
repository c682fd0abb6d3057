"""``thrifty dashboard``: write the Grafana dashboard of the operator's metrics.

The committed copy is ``manifests/grafana/thrifty.json``; regenerate it after changing
:mod:`thrifty.dashboard` with ``thrifty dashboard --out manifests/grafana/thrifty.json``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "dashboard", help="write the Grafana dashboard (JSON) of the operator's metrics",
        description="Write Thrifty's Grafana dashboard as JSON, ready for Grafana's Import dashboard.",
    )
    parser.add_argument("--out", metavar="PATH", type=Path,
                        help="file to write (default: standard output)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from thrifty.dashboard import build, render

    text = render(build())
    if args.out is None:
        sys.stdout.write(text)
        return 0
    try:
        args.out.write_text(text)
    except OSError as error:
        print(f"thrifty dashboard: --out {args.out}: {error.strerror or error}", file=sys.stderr)
        return 2
    return 0
