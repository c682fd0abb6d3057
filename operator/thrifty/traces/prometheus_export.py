"""Your own cluster as a trace: container usage (and request rates) from a Prometheus, written in
shipped formats that ``thrifty bench`` and ``thrifty train`` read.

What is written, into one output directory:

- ``usage.tar.gz``: one Bitbrains GWA-T-12 CSV per (namespace, pod, container) series of the CPU
  query (cores busy) and the memory query (bytes), which :func:`thrifty.traces.load_bitbrains`
  reads back. Bitbrains states CPU as MHz of a provisioned size; the export provisions
  ``ceil(max CPU)`` cores (at least one) of :data:`NOMINAL_MHZ_PER_CORE` each, so the loader's
  ``usage_MHz / (capacity_MHz / cores)`` gives back the busy cores exactly, and the memory
  provisioned is the peak seen (the traces hold no limits).
- ``requests.csv.gz`` (only with a request-rate query): the Alibaba GenAI ``qps.csv`` layout, one
  series per result series of the query, keyed by a hash of its labels.
- ``PROVENANCE.md``: the Prometheus, the queries, the time range and step, the command.

The default queries are the kubelet's own series (``/metrics/resource`` and cAdvisor use the same
names and labels), as kube-prometheus-stack and the local demo's Prometheus scrape them. A step
that has no sample is written as an empty field, which the loader reads as missing.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import math
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

DEFAULT_CPU_QUERY = ('sum by (namespace, pod, container) '
                     '(rate(container_cpu_usage_seconds_total{container!="", container!="POD"}[2m]))')
"""Busy cores of each container: the kubelet's CPU counter as a rate."""
DEFAULT_MEMORY_QUERY = ('sum by (namespace, pod, container) '
                        '(container_memory_working_set_bytes{container!="", container!="POD"})')
"""Working set of each container, the figure the kubelet evicts and metrics-server reports by."""
NOMINAL_MHZ_PER_CORE = 2000.0
"""Clock written per provisioned core in the Bitbrains files; it cancels out when read back."""
MAX_POINTS_PER_QUERY = 10_000
"""Prometheus refuses a range query of more than 11,000 points per series; ranges are split."""
SERIES_LABELS = ("namespace", "pod", "container")


class ExportError(RuntimeError):
    """The export cannot go on; the message names the flag or the endpoint at fault."""


@dataclass(frozen=True, kw_only=True)
class ExportConfig:
    """What to read from Prometheus and over which range."""

    prometheus_url: str
    """Base URL of the Prometheus HTTP API (``http://host:9090``)."""
    start_seconds: float
    """First sample time, Unix seconds."""
    end_seconds: float
    """Last sample time, Unix seconds."""
    step_seconds: float = 60.0
    """Grid step of the written series, seconds (the simulator steps 60 s)."""
    cpu_query: str = DEFAULT_CPU_QUERY
    """PromQL returning busy cores by ``namespace``, ``pod``, ``container``."""
    memory_query: str = DEFAULT_MEMORY_QUERY
    """PromQL returning bytes by ``namespace``, ``pod``, ``container``."""
    request_rate_query: str | None = None
    """PromQL returning requests per second (any labels); none writes no rate file."""
    namespaces: tuple[str, ...] = ()
    """Keep only series of these namespaces (all when empty)."""
    timeout_seconds: float = 30.0
    """Per HTTP request to Prometheus."""

    def __post_init__(self) -> None:
        if not self.prometheus_url.startswith(("http://", "https://")):
            raise ExportError(f"--prometheus: want an http:// or https:// URL, got {self.prometheus_url!r}")
        if not (math.isfinite(self.step_seconds) and self.step_seconds > 0):
            raise ExportError(f"--step-seconds: must be > 0, got {self.step_seconds}")
        if not self.end_seconds > self.start_seconds:
            raise ExportError(f"the range is empty: end {self.end_seconds} is not after start {self.start_seconds}")


@dataclass
class Series:
    """One result series of a range query, on the export's grid."""

    labels: dict[str, str]
    values: np.ndarray = field(repr=False)
    """One value per grid step; NaN where Prometheus had no sample."""


def _get(config: ExportConfig, path: str, params: Mapping[str, str], what: str) -> dict:
    url = f"{config.prometheus_url.rstrip('/')}{path}?{urllib.parse.urlencode(params)}"
    try:
        with urllib.request.urlopen(url, timeout=config.timeout_seconds) as response:
            body = json.loads(response.read())
    except urllib.error.HTTPError as error:
        # Prometheus explains a bad query in the body of its 400/422 answer.
        with error:
            try:
                detail = json.loads(error.read()).get("error", error.reason)
            except (ValueError, AttributeError):
                detail = error.reason
        raise ExportError(f"{what}: Prometheus at {config.prometheus_url} refused it ({error.code}): "
                          f"{detail}") from None
    except (urllib.error.URLError, OSError, ValueError) as error:
        raise ExportError(f"--prometheus {config.prometheus_url}: no answer ({error})") from None
    if body.get("status") != "success":
        raise ExportError(f"{what}: Prometheus answered {body.get('status')}: {body.get('error')}")
    return body["data"]


def grid(config: ExportConfig) -> np.ndarray:
    """The sample times, Unix seconds: ``start``, ``start + step``, ... up to ``end``."""
    count = int(math.floor((config.end_seconds - config.start_seconds) / config.step_seconds)) + 1
    return config.start_seconds + config.step_seconds * np.arange(count)


def query_range(config: ExportConfig, query: str, what: str) -> list[Series]:
    """Every series of ``query`` over the export's grid (split into Prometheus-sized ranges)."""
    times = grid(config)
    found: dict[tuple[tuple[str, str], ...], Series] = {}
    for first in range(0, len(times), MAX_POINTS_PER_QUERY):
        chunk = times[first:first + MAX_POINTS_PER_QUERY]
        data = _get(config, "/api/v1/query_range", {
            "query": query, "start": f"{chunk[0]:.3f}", "end": f"{chunk[-1]:.3f}", "step": f"{config.step_seconds:g}",
        }, what)
        if data.get("resultType") != "matrix":
            raise ExportError(f"{what}: want a range vector (matrix), Prometheus returned {data.get('resultType')}")
        for result in data["result"]:
            key = tuple(sorted(result["metric"].items()))
            series = found.setdefault(key, Series(dict(result["metric"]), np.full(len(times), np.nan)))
            for stamp, value in result["values"]:
                index = int(round((float(stamp) - config.start_seconds) / config.step_seconds))
                if 0 <= index < len(times):
                    series.values[index] = float(value)
    return list(found.values())


def _container_key(series: Series, what: str) -> tuple[str, str, str]:
    missing = [label for label in SERIES_LABELS if not series.labels.get(label)]
    if missing:
        raise ExportError(f"{what}: a series lacks the label(s) {', '.join(missing)} "
                          f"(group the query by namespace, pod, container): {series.labels}")
    return series.labels["namespace"], series.labels["pod"], series.labels["container"]


def bitbrains_csv(times: np.ndarray, cpu_cores: np.ndarray, memory_bytes: np.ndarray) -> str:
    """One container's series as a Bitbrains GWA-T-12 file (see the module docstring)."""
    cores = max(1, math.ceil(np.nanmax(cpu_cores))) if np.any(np.isfinite(cpu_cores)) else 1
    memory_kb = (np.nanmax(memory_bytes) / 1024.0) if np.any(np.isfinite(memory_bytes)) else 0.0
    out = io.StringIO()
    out.write("Timestamp [ms];\tCPU cores;\tCPU capacity provisioned [MHZ];\tCPU usage [MHZ];\tCPU usage [%];\t"
              "Memory capacity provisioned [KB];\tMemory usage [KB]\n")
    capacity_mhz = cores * NOMINAL_MHZ_PER_CORE
    for stamp, cpu, memory in zip(times, cpu_cores, memory_bytes, strict=True):
        if not (np.isfinite(cpu) and np.isfinite(memory)):
            continue  # the loader's grid turns a missing row into a missing bin
        usage_mhz = min(cpu, cores) * NOMINAL_MHZ_PER_CORE
        out.write(f"{int(stamp)};\t{cores};\t{capacity_mhz:.3f};\t{usage_mhz:.3f};\t"
                  f"{100.0 * usage_mhz / capacity_mhz:.3f};\t{memory_kb:.1f};\t{memory / 1024.0:.1f}\n")
    return out.getvalue()


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-." else "_" for c in name)


def _write_tar(path: Path, files: Mapping[str, str]) -> None:
    with tarfile.open(path, "w:gz") as archive:
        for name, text in sorted(files.items()):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            archive.addfile(info, io.BytesIO(data))


def _qps_csv(times: np.ndarray, series: Sequence[Series]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["timestamp_anon", "value", "container_ip", "request_type"])
    for s in series:
        key = hashlib.md5(json.dumps(s.labels, sort_keys=True).encode(), usedforsecurity=False).hexdigest()
        for stamp, value in zip(times, s.values, strict=True):
            # The GenAI reporter writes only non-zero rates; a zero is a missing row there too.
            if np.isfinite(value) and value > 0:
                writer.writerow([int(stamp), f"{value:.6g}", key, "exported"])
    return gzip.compress(out.getvalue().encode(), mtime=0)


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote."""

    usage_path: Path
    requests_path: Path | None
    containers: int
    rate_series: int
    steps: int


def export(config: ExportConfig, out_dir: Path, command: str) -> ExportResult:
    """Query Prometheus and write the trace files into ``out_dir`` (created if missing)."""
    times = grid(config)
    by_key: dict[tuple[str, str, str], dict[str, np.ndarray]] = {}
    for what, query, resource in (("--cpu-query", config.cpu_query, "cpu"),
                                  ("--memory-query", config.memory_query, "memory")):
        for series in query_range(config, query, what):
            key = _container_key(series, what)
            if config.namespaces and key[0] not in config.namespaces:
                continue
            by_key.setdefault(key, {})[resource] = series.values
    complete = {k: v for k, v in by_key.items() if "cpu" in v and "memory" in v}
    if not complete:
        span = f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(config.start_seconds))} to " \
               f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(config.end_seconds))}"
        raise ExportError(f"no container has both CPU and memory series from {span} "
                          f"(namespaces: {', '.join(config.namespaces) or 'all'}): check the queries and the range")
    out_dir.mkdir(parents=True, exist_ok=True)
    usage_path = out_dir / "usage.tar.gz"
    _write_tar(usage_path, {f"{_safe(ns)}_{_safe(pod)}_{_safe(container)}.csv":
                            bitbrains_csv(times, values["cpu"], values["memory"])
                            for (ns, pod, container), values in complete.items()})
    requests_path, rates = None, []
    if config.request_rate_query:
        rates = query_range(config, config.request_rate_query, "--request-rate-query")
        if not rates:
            raise ExportError("--request-rate-query: no series in the range")
        requests_path = out_dir / "requests.csv.gz"
        requests_path.write_bytes(_qps_csv(times, rates))
    (out_dir / "PROVENANCE.md").write_text(
        "# Exported from a Prometheus by `thrifty trace export`\n\n"
        f"- command: `{command}`\n- Prometheus: {config.prometheus_url}\n"
        f"- range: {config.start_seconds:.0f} to {config.end_seconds:.0f} (Unix s), step {config.step_seconds:g} s\n"
        f"- CPU query: `{config.cpu_query}`\n- memory query: `{config.memory_query}`\n"
        f"- request-rate query: `{config.request_rate_query or 'none'}`\n"
        f"- containers: {len(complete)}; request-rate series: {len(rates)}\n")
    return ExportResult(usage_path, requests_path, len(complete), len(rates), len(times))
