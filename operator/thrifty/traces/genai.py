"""Alibaba ``cluster-trace-v2026-GenAI``: per-container request rate and memory utilisation.

Two files, shipped as tar.gz, joined on ``container_ip`` (an MD5 hash of the container's IP):

- ``qps.csv``: ``timestamp_anon,value,container_ip,request_type``
- ``pod_memory_util_anon.csv``: ``value,timestamp_anon,container_ip``

A file whose header has ``request_type`` is read as QPS; one without, as memory utilisation.

Units and conventions (decided from the data and the dataset's README):

- ``timestamp_anon`` is seconds on an anonymised clock (shifted). On that clock the "1-minute"
  samples are 57 s apart; the grid step is the most common interval in the data (57 s for the
  shipped trace), so times stay on the trace's own clock.
- QPS ``value`` is a per-second rate ("QPS"), anonymised by an undisclosed scale factor that
  preserves proportions: it is loaded as ``request_rate_per_second`` unchanged, so absolute levels
  are not real but ratios between containers and over time are. It is not a per-minute count:
  the values are multiples of 0.09 (0.045 for a few), not integers. Rows of the same container at
  the same time (one per request type) are summed.
- The QPS reporter writes only non-zero values (0 never occurs), so for a container that appears
  in the QPS file a missing tick inside its lifetime (first to last sample in either file) is a
  rate of 0. A container absent from the QPS file (about half of those with memory samples,
  probably not request-serving) has an all-NaN rate, as has every container when only the memory
  file is loaded.
- Memory ``value`` is a fraction of the container's memory limit in [0, 1] (the README says
  "percentage", but the values never exceed 0.993). The limit is not in the trace, so it is a
  parameter: ``memory_capacity_bytes`` (default :data:`ASSUMED_MEMORY_CAPACITY_BYTES` = 32 GiB,
  an assumption for a Stable Diffusion serving pod) becomes the container's
  ``memory_capacity_bytes`` and usage = fraction x capacity, so usage / capacity returns the
  trace's own fraction. Values within 0.001 below 0 (anonymisation noise: -1.2e-5 occurs) are
  read as 0; lower ones are an error. Missing ticks are NaN.
- Rows without a ``container_ip`` (empty, ``None`` or ``NULL``: the gateway's API requests and a
  few memory rows) belong to no container and are skipped.

All containers share one grid (origin: the first memory sample, else the first QPS sample), so
their series line up; each ContainerUsage spans its own lifetime on it. There is no CPU series.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from thrifty.traces.model import ContainerUsage, Trace, TraceFormatError
from thrifty.traces.sources import members
from thrifty.traces.table import MISSING_TOKENS, numbers, read_table, texts
from thrifty.traces.timegrid import bin_means, fixed_bins, typical_step

TIME, VALUE, CONTAINER, REQUEST_TYPE = "timestamp_anon", "value", "container_ip", "request_type"

ASSUMED_MEMORY_CAPACITY_BYTES = 32.0 * 2**30
"""Memory limit assumed for a GenAI container, to turn its utilisation into bytes."""

NOMINAL_STEP_SECONDS = 60.0
"""The dataset's nominal sampling interval, used only when it cannot be inferred."""

_UTILISATION_NOISE = 1e-3


@dataclass(frozen=True)
class _Samples:
    """Rows of one metric, restricted to those with a container, grouped by container."""

    times: dict[str, np.ndarray]
    values: dict[str, np.ndarray]


def _group(containers: tuple[str, ...], times: np.ndarray, values: np.ndarray) -> _Samples:
    attributed = np.array([c.lower() not in MISSING_TOKENS for c in containers], dtype=bool)
    names = np.asarray(containers, dtype=str)[attributed]
    times, values = times[attributed], values[attributed]
    unique, which = np.unique(names, return_inverse=True)
    order = np.argsort(which, kind="stable")
    splits = np.cumsum(np.bincount(which, minlength=len(unique)))[:-1]
    return _Samples(
        times=dict(zip(unique.tolist(), np.split(times[order], splits), strict=False)),
        values=dict(zip(unique.tolist(), np.split(values[order], splits), strict=False)),
    )


def _merge(parts: list[_Samples]) -> _Samples:
    names = sorted({name for part in parts for name in part.times})
    return _Samples(
        times={n: np.concatenate([p.times[n] for p in parts if n in p.times]) for n in names},
        values={n: np.concatenate([p.values[n] for p in parts if n in p.values]) for n in names},
    )


def _sum_per_instant(times: np.ndarray, rates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Add up the rates reported at the same instant (one row per request type)."""
    instants, which = np.unique(times, return_inverse=True)
    return instants, np.bincount(which, weights=rates, minlength=len(instants))


def _container(
    name: str,
    qps: _Samples,
    memory: _Samples,
    origin: float,
    step: float,
    memory_capacity_bytes: float,
) -> ContainerUsage:
    """One container's series on the shared grid, from its first to its last sample."""
    series: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # metric -> (bins, values)
    if name in qps.times:
        instants, rates = _sum_per_instant(qps.times[name], qps.values[name])
        series["qps"] = (fixed_bins(instants, origin, step), rates)
    if name in memory.times:
        series["memory"] = (fixed_bins(memory.times[name], origin, step), memory.values[name])
    first = min(int(bins.min()) for bins, _ in series.values())
    length = max(int(bins.max()) for bins, _ in series.values()) - first + 1

    rate = np.full(length, np.nan)
    if "qps" in series:
        bins, rates = series["qps"]
        rate = bin_means(bins - first, rates, length, empty=0.0)
    usage = np.full(length, np.nan)
    if "memory" in series:
        bins, fractions = series["memory"]
        usage = bin_means(bins - first, fractions, length) * memory_capacity_bytes
    return ContainerUsage(
        name=name,
        step_seconds=step,
        start_seconds=origin + first * step,
        cpu_usage_millicores=np.full(length, np.nan),
        memory_usage_bytes=usage,
        request_rate_per_second=rate,
        memory_capacity_bytes=memory_capacity_bytes,
    )


def load_genai(
    path: str | os.PathLike[str],
    *,
    memory_capacity_bytes: float = ASSUMED_MEMORY_CAPACITY_BYTES,
    step_seconds: float | None = None,
) -> Trace:
    """Load GenAI QPS and/or memory files into ``Trace.containers``, one per ``container_ip``.

    ``path`` is a CSV (optionally gzip), a tar archive holding one or both CSVs, or a directory
    of any of these. ``step_seconds`` sets the grid step (default: inferred from the memory
    samples if any, else from the QPS samples).
    """
    qps_parts: list[_Samples] = []
    memory_parts: list[_Samples] = []
    for member in members(path, suffixes=(".csv",)):
        table = read_table(member, (TIME, VALUE, CONTAINER))
        is_qps = REQUEST_TYPE in (name.lower() for name in table.header)
        times = numbers(table, TIME, minimum=None)
        if is_qps:
            values = numbers(table, VALUE, gaps=True)
            qps_parts.append(_group(texts(table, CONTAINER), times, values))
        else:
            values = np.maximum(numbers(table, VALUE, gaps=True, minimum=-_UTILISATION_NOISE), 0)
            memory_parts.append(_group(texts(table, CONTAINER), times, values))
    if not qps_parts and not memory_parts:
        raise TraceFormatError(str(path), None, "no GenAI CSV files found")
    qps, memory = _merge(qps_parts), _merge(memory_parts)

    # Memory samples are dense and on one clock for all containers: the best grid reference.
    reference = memory if memory.times else qps
    names = sorted(set(qps.times) | set(memory.times))
    if not names:
        return Trace(source="genai", path=str(path))
    origin = min(float(t.min()) for t in reference.times.values())
    step = step_seconds or typical_step(reference.times.values(), NOMINAL_STEP_SECONDS)
    containers = tuple(
        _container(name, qps, memory, origin, step, memory_capacity_bytes) for name in names
    )
    return Trace(source="genai", path=str(path), containers=containers)
