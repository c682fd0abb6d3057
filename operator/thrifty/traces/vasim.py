"""microsoft/vasim example traces: one container's CPU at 1-minute steps.

Format::

    TIMESTAMP,CPU_USAGE_ACTUAL
    2023.04.02-00:09:00:000,7.2

The timestamp is ``YYYY.MM.DD-HH:MM:SS:fff`` (vasim's own writer puts microseconds after the
last colon; any number of fraction digits is read as a decimal fraction of a second).

Unit of ``CPU_USAGE_ACTUAL``
----------------------------
vasim's own recorder writes busy cores, but its Alibaba examples (``c_<id>_cpu.csv``) are
``cpu_util_percent`` of Alibaba's cluster-trace-v2018 ``container_usage`` table, resampled to
one minute. That column is a percentage of the container's CPU *request*, not of the machine
(confirmed by the trace maintainers in alibaba/clusterdata issue #62). The shipped file agrees:
6.2 to 15.6, a typical online-service utilisation, where "cores" would mean 6 to 16 busy cores
for a container that requests a few. So the default is ``cpu_unit="percent"``::

    usage_millicores = CPU_USAGE_ACTUAL / 100 * cpu_request_millicores

The request of the container is not in the file (it is in v2018's ``container_meta``, as
``cpu_request`` in hundredths of a core, which vasim does not ship), so it is a parameter. Its
default, :data:`ASSUMED_CPU_REQUEST_MILLICORES` = 4 cores, is an assumption, not a fact about the
container: pass the real request when it is known. It is also the container's
``cpu_capacity_millicores``, so utilisation (usage / capacity) is the trace's own percentage
whatever request is assumed. For a file written by vasim's recorder, pass ``cpu_unit="cores"``.
"""

from __future__ import annotations

import os
import re
from typing import Literal

import numpy as np

from thrifty.traces.model import ContainerUsage, Trace
from thrifty.traces.sources import single_member
from thrifty.traces.table import numbers, read_table, timestamps
from thrifty.traces.timegrid import anchored_bins, bin_means, typical_step

TIMESTAMP = "TIMESTAMP"
CPU = "CPU_USAGE_ACTUAL"

ASSUMED_CPU_REQUEST_MILLICORES = 4000.0
"""The CPU request assumed for a vasim/Alibaba container when none is given."""

NOMINAL_STEP_SECONDS = 60.0

_TIME = re.compile(r"(\d{4})\.(\d{1,2})\.(\d{1,2})-(\d{1,2}):(\d{1,2}):(\d{1,2})(?:[:.](\d+))?")


def load_vasim(
    path: str | os.PathLike[str],
    *,
    cpu_unit: Literal["percent", "cores"] = "percent",
    cpu_request_millicores: float = ASSUMED_CPU_REQUEST_MILLICORES,
    step_seconds: float | None = None,
) -> Trace:
    """Load a vasim CPU trace (CSV, optionally gzip) as one container, named by file stem.

    ``cpu_unit`` says what ``CPU_USAGE_ACTUAL`` counts: ``percent`` of ``cpu_request_millicores``
    (Alibaba examples), or busy ``cores``. Samples go on a grid of ``step_seconds`` (default: the
    most common interval, 60 s) from the first sample; missing minutes are NaN.
    """
    if cpu_unit not in ("percent", "cores"):
        raise ValueError(f"cpu_unit must be 'percent' or 'cores', not {cpu_unit!r}")
    member = single_member(path)
    table = read_table(member, (TIMESTAMP, CPU))
    times = timestamps(table, TIMESTAMP, _TIME, "expected YYYY.MM.DD-HH:MM:SS:fff")
    cpu = numbers(table, CPU, gaps=True)
    millicores = cpu / 100.0 * cpu_request_millicores if cpu_unit == "percent" else cpu * 1000.0

    order = np.argsort(times, kind="stable")
    times, millicores = times[order], millicores[order]
    step = step_seconds or typical_step([times], NOMINAL_STEP_SECONDS)
    bins = anchored_bins(times, step)
    length = int(bins[-1]) + 1 if len(bins) else 0
    container = ContainerUsage(
        name=member.stem,
        step_seconds=step,
        start_seconds=float(times[0]) if len(times) else 0.0,
        cpu_usage_millicores=bin_means(bins, millicores, length),
        memory_usage_bytes=np.full(length, np.nan),
        request_rate_per_second=np.full(length, np.nan),
        cpu_capacity_millicores=cpu_request_millicores,
    )
    return Trace(source="vasim", path=str(path), containers=(container,))
