"""``thrifty trace export``: your own cluster's usage history from Prometheus, as a trace file.

The files it writes (``DIR/usage.tar.gz``, and ``DIR/requests.csv.gz`` with a request-rate query)
are in shipped formats, so ``thrifty bench --trace`` and the training scenarios read them like
the slices in ``traces/`` (:mod:`thrifty.traces.prometheus_export`).
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from datetime import datetime
from pathlib import Path

from thrifty.commands.flags import positive_float, url


def _instant(flag: str):
    """A time: Unix seconds, or an ISO 8601 date-time with a zone (``2026-12-01T00:00:00Z``)."""
    def parse(text: str) -> float:
        try:
            return float(text)
        except ValueError:
            pass
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag}: want Unix seconds or an ISO 8601 time, got {text!r}") from None
        if moment.tzinfo is None:
            raise argparse.ArgumentTypeError(f"{flag}: give the time zone (Z or +HH:MM), got {text!r}")
        return moment.timestamp()

    return parse


def register(subparsers: argparse._SubParsersAction) -> None:
    from thrifty.traces import prometheus_export as px

    parser = subparsers.add_parser("trace", help="traces from your own cluster",
                                   description="Work with traces: `thrifty trace export` reads a Prometheus.")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    export = verbs.add_parser(
        "export", help="write the pods' CPU, memory and request-rate history from Prometheus as a trace",
        description="Query a Prometheus for every container's CPU and memory (and, with --request-rate-query, "
                    "request rates) and write them as trace files that `thrifty bench --trace` reads.",
    )
    export.add_argument("--prometheus", required=True, metavar="URL",
                        type=url("--prometheus", lambda u: u.scheme in ("http", "https") and bool(u.netloc),
                                 "an http:// or https:// URL"),
                        help="base URL of the Prometheus HTTP API")
    export.add_argument("--out", required=True, metavar="DIR", help="output directory (created if missing)")
    export.add_argument("--start", type=_instant("--start"), metavar="TIME",
                        help="first sample: Unix seconds or ISO 8601 (default: --hours before --end)")
    export.add_argument("--end", type=_instant("--end"), metavar="TIME", help="last sample (default: now)")
    export.add_argument("--hours", type=positive_float("--hours"), default=24.0,
                        help="length of the range when --start is not given (default %(default)s)")
    export.add_argument("--step-seconds", type=positive_float("--step-seconds"), default=60.0,
                        help="grid step of the written series (default %(default)s, the simulator's step)")
    export.add_argument("--namespace", action="append", default=[], metavar="NS",
                        help="keep only this namespace's containers (repeat; default: all)")
    export.add_argument("--cpu-query", default=px.DEFAULT_CPU_QUERY, metavar="PROMQL",
                        help="busy cores by namespace, pod, container (default: the kubelet's "
                             "container_cpu_usage_seconds_total as a rate)")
    export.add_argument("--memory-query", default=px.DEFAULT_MEMORY_QUERY, metavar="PROMQL",
                        help="bytes by namespace, pod, container (default: container_memory_working_set_bytes)")
    export.add_argument("--request-rate-query", metavar="PROMQL",
                        help="requests per second, any labels (default: no request-rate file)")
    export.set_defaults(func=_export)


def _export(args: argparse.Namespace) -> int:
    from thrifty.traces import prometheus_export as px

    end = args.end if args.end is not None else time.time()
    start = args.start if args.start is not None else end - args.hours * 3600.0
    try:
        config = px.ExportConfig(prometheus_url=args.prometheus, start_seconds=start, end_seconds=end,
                                 step_seconds=args.step_seconds, cpu_query=args.cpu_query,
                                 memory_query=args.memory_query, request_rate_query=args.request_rate_query,
                                 namespaces=tuple(args.namespace))
        result = px.export(config, Path(args.out), command=shlex.join(["thrifty", *sys.argv[1:]]))
    except px.ExportError as error:
        print(f"thrifty trace export: {error}", file=sys.stderr)
        return 2
    print(f"{result.containers} containers over {result.steps} steps -> {result.usage_path}")
    if result.requests_path is not None:
        print(f"{result.rate_series} request-rate series -> {result.requests_path}")
    return 0
