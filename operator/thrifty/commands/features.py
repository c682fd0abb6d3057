"""``thrifty features TRACE``: characterise every container of a trace, as the policy sees it.

Each container's last ``--window`` samples become its usage history; its provisioned size in
the trace, when known, stands for its request. The output is a table (or CSV) with one row
per container and the key behaviour columns of ``thrifty.features`` (all of them with ``--all``).
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from thrifty.commands.flags import positive_int

if TYPE_CHECKING:  # the heavy imports stay inside run(), so `thrifty --help` stays fast
    import numpy as np

    from thrifty.traces.model import ContainerUsage

DEFAULT_WINDOW = 288
"""One day of 5-minute samples, the step of the Bitbrains and Alibaba traces."""

KEY_COLUMNS = (
    "cpu_valid_fraction",
    "cpu_mean_millicores",
    "cpu_p95_millicores",
    "cpu_max_millicores",
    "cpu_cv",
    "cpu_burstiness",
    "cpu_trend_per_hour",
    "cpu_period_seconds",
    "cpu_period_strength",
    "cpu_slack",
    "memory_mean_bytes",
    "memory_p95_bytes",
    "memory_growth_bytes_per_hour",
    "memory_slack",
)
"""Columns shown without ``--all``: level, spread, shape and slack, the sizing essentials."""

EXIT_BAD_INPUT = 2


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "features",
        help="characterise the containers of a trace (usage percentiles, burstiness, period, slack)",
        description=(
            "Load a trace (any format thrifty.traces reads), take the last --window samples of "
            "each container and print its behaviour features, one row per container. The "
            "container's provisioned CPU and memory in the trace stand for its requests."
        ),
    )
    parser.add_argument("trace", metavar="TRACE", help="trace file, archive or directory")
    parser.add_argument(
        "--window",
        type=positive_int("--window"),
        default=DEFAULT_WINDOW,
        metavar="N",
        help=f"samples per container, the most recent ones (default {DEFAULT_WINDOW})",
    )
    parser.add_argument(
        "--limit", type=positive_int("--limit"), default=None, metavar="N", help="only the first N containers"
    )
    parser.add_argument(
        "--format", choices=("table", "csv"), default="table", help="output format (default table)"
    )
    parser.add_argument(
        "--all", action="store_true", help="print every feature column, not only the key ones"
    )
    parser.set_defaults(func=run)




def run(args: argparse.Namespace) -> int:
    from thrifty.features import FEATURE_NAMES
    from thrifty.traces import load

    try:
        trace = load(args.trace)
    except (OSError, ValueError) as error:  # TraceFormatError is a ValueError naming file and line
        return _fail(str(error))
    except Exception as error:  # an unreadable archive or encoding: still the input's fault
        return _fail(f"{args.trace}: cannot read trace: {type(error).__name__}: {error}")
    containers = trace.containers[: args.limit]
    if not containers:
        return _fail(f"{args.trace}: the {trace.source} trace has no container usage series to characterise")

    matrix = trace_features(containers, args.window)
    columns = FEATURE_NAMES if args.all else KEY_COLUMNS
    positions = [FEATURE_NAMES.index(name) for name in columns]
    names = [container.name for container in containers]
    if args.format == "csv":
        _write_csv(names, columns, matrix[:, positions])
    else:
        _write_table(names, columns, matrix[:, positions])
        steps = sorted({container.step_seconds for container in containers})
        print(
            f"{len(containers)} of {len(trace.containers)} containers from {trace.source} trace "
            f"{trace.path}; window {args.window} samples of {', '.join(f'{s:g}' for s in steps)} s"
        )
    return 0


def _fail(message: str) -> int:
    print(f"thrifty features: error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def usage_windows(containers: Sequence[ContainerUsage], window: int) -> tuple[np.ndarray, np.ndarray]:
    """(C, window) CPU millicores and memory bytes: each container's last ``window`` samples.

    A shorter series is padded with NaN at the old end, where the feature module treats the
    samples as missing.
    """
    import numpy as np

    cpu = np.full((len(containers), window), np.nan)
    memory = np.full((len(containers), window), np.nan)
    for row, container in enumerate(containers):
        recent_cpu = container.cpu_usage_millicores[-window:]
        recent_memory = container.memory_usage_bytes[-window:]
        cpu[row, window - len(recent_cpu) :] = recent_cpu
        memory[row, window - len(recent_memory) :] = recent_memory
    return cpu, memory


def trace_features(containers: Sequence[ContainerUsage], window: int) -> np.ndarray:
    """(C, len(FEATURE_NAMES)) features of trace containers, in their order.

    Traces record no limits, throttling or OOM kills: limits count as none, counts as zero.
    Containers are grouped by sampling step, since a window has one step.
    """
    import numpy as np

    from thrifty.features import FEATURE_NAMES, container_features

    matrix = np.empty((len(containers), len(FEATURE_NAMES)))
    steps = np.array([container.step_seconds for container in containers])
    for step in np.unique(steps):
        rows = np.flatnonzero(steps == step)
        group = [containers[int(row)] for row in rows]
        cpu, memory = usage_windows(group, window)
        matrix[rows] = container_features(
            cpu,
            memory,
            float(step),
            cpu_request_millicores=np.array([c.cpu_capacity_millicores for c in group]),
            cpu_limit_millicores=np.inf,
            memory_request_bytes=np.array([c.memory_capacity_bytes for c in group]),
            memory_limit_bytes=np.inf,
        )
    return matrix


def _format_value(column: str, value: float) -> str:
    """A human reading: binary prefixes for bytes, 3 significant digits, integers past 1000."""
    if "_bytes" in column and value != 0:
        magnitude = abs(value)
        for prefix, size in (("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
            if magnitude >= size:
                return f"{value / size:.3g}{prefix}"
    if abs(value) >= 1000:
        return f"{value:.0f}"
    return f"{value:.3g}"


def _write_table(names: list[str], columns: Sequence[str], values: np.ndarray) -> None:
    header = ["container", *columns]
    rows = [
        [name, *(_format_value(column, v) for column, v in zip(columns, row, strict=True))]
        for name, row in zip(names, values, strict=True)
    ]
    widths = [max(len(line[i]) for line in [header, *rows]) for i in range(len(header))]
    for line in [header, *rows]:
        cells = [line[0].ljust(widths[0])] + [
            cell.rjust(width) for cell, width in zip(line[1:], widths[1:], strict=True)
        ]
        print("  ".join(cells).rstrip())


def _write_csv(names: list[str], columns: Sequence[str], values: np.ndarray) -> None:
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(["container", *columns])
    for name, row in zip(names, values, strict=True):
        writer.writerow([name, *(repr(float(v)) for v in row)])
