"""Replay real traces onto simulated pods: what each pod of an RLWorkload uses, and how slow it is.

kwok's pods run nothing, so a cluster of them has no CPU usage and no latency to observe. The
replayer (``thrifty replay``, I/O in :mod:`thrifty.commands.replay`) gives each RLWorkload the
demand of a real trace series, chosen by annotations on the RLWorkload:

==============================================  ==========================================
annotation                                      meaning
==============================================  ==========================================
``thrifty.dev/replay-trace: PATH#SERIES``       required: the usage series (CPU millicores,
                                                memory bytes) of a trace in any format that
                                                :func:`thrifty.traces.load` reads
``thrifty.dev/replay-rate: PATH#SERIES``        optional: a request-rate series (req/s)
``thrifty.dev/replay-rate-scale: X``            optional: multiplies the rate (default 1);
                                                for anonymised rates, or calls per entry
                                                request of a service deep in a call graph
``thrifty.dev/replay-cpu-seconds-per-request``  optional: CPU time one request takes, in
                                                core-seconds (default 0.025)
``thrifty.dev/replay-container: NAME``          optional: the container that does the work
                                                (default: the pod's first container)
==============================================  ==========================================

``PATH`` is relative to the replayer's ``--traces-root`` (the repository root by default);
``SERIES`` is a series name inside the trace (a Bitbrains VM id, a GenAI container, the Azure
trace's file stem) and may be left out when the trace has exactly one series.

Demand at trace time ``t`` (``t`` = speedup x wall seconds since the RLWorkload was created; a
series replays in a loop, linearly interpolated between samples, gaps bridged):

* with a rate: ``λ(t) = rate(t) · scale``, CPU demand ``D(t) = 1000 · λ(t) · s`` millicores
  (``s`` = CPU seconds per request), so that usage and latency tell the same story;
* without: ``D(t)`` is the trace's CPU series and ``λ(t) = D(t) / (1000 · s)``.

``D`` is split evenly over the running replicas (a Service balances round robin) and each share
is capped at that container's CPU limit, as the kernel's CFS quota would; memory per replica is
the trace's memory series (every replica holds its own working set).

The **latency is modelled, not measured**: the M/M/c queue of :mod:`thrifty.latency` with ``λ``,
``c`` = running replicas and ``μ`` = (mean CPU a replica may use: its limit, else its request) /
CPU per request. It is the same model the simulator trains on.

Everything here is pure: no Kubernetes client, no clock, no file access except through the
``load`` callable given to :func:`resolve_signals`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from thrifty.config import LatencyModelConfig
from thrifty.latency import response_time_percentile, service_rate_per_second
from thrifty.observe import WORKLOAD_LABEL
from thrifty.traces import ContainerUsage, Trace

ANNOTATION_PREFIX = "thrifty.dev/replay-"
TRACE_ANNOTATION = ANNOTATION_PREFIX + "trace"
RATE_ANNOTATION = ANNOTATION_PREFIX + "rate"
RATE_SCALE_ANNOTATION = ANNOTATION_PREFIX + "rate-scale"
CPU_PER_REQUEST_ANNOTATION = ANNOTATION_PREFIX + "cpu-seconds-per-request"
CONTAINER_ANNOTATION = ANNOTATION_PREFIX + "container"
KNOWN_ANNOTATIONS = (
    TRACE_ANNOTATION,
    RATE_ANNOTATION,
    RATE_SCALE_ANNOTATION,
    CPU_PER_REQUEST_ANNOTATION,
    CONTAINER_ANNOTATION,
)

DEFAULT_CPU_SECONDS_PER_REQUEST = 0.025
"""CPU time of one request when the annotation is absent: 25 ms, a typical RPC handler."""

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "thrifty-replay"
"""Value of MANAGED_BY_LABEL on the ResourceUsages the replayer writes, so it can find them."""

IDLE_CONTAINER_CPU_MILLICORES = 1.0
IDLE_CONTAINER_MEMORY_BYTES = float(2**20)
"""Usage of the pod's other containers (sidecars): kwok's own default for an unannotated pod."""


class ReplayAnnotationError(ValueError):
    """A replay annotation is missing, malformed or points at nothing; names both."""

    def __init__(self, workload: str, annotation: str, problem: str) -> None:
        self.workload = workload
        self.annotation = annotation
        super().__init__(f"RLWorkload {workload}: annotation {annotation}: {problem}")


@dataclass(frozen=True)
class SeriesRef:
    """One series of a trace file: ``PATH#SERIES``."""

    path: str
    """Trace file, archive or directory, relative to the traces root (or absolute)."""
    series: str | None
    """Series name in the trace; None: the trace's only series."""

    def __str__(self) -> str:
        return self.path if self.series is None else f"{self.path}#{self.series}"


@dataclass(frozen=True)
class ReplaySpec:
    """What to replay for one RLWorkload, parsed from its annotations."""

    usage: SeriesRef
    rate: SeriesRef | None
    rate_scale: float
    """Multiplier of the rate series (dimensionless)."""
    cpu_seconds_per_request: float
    """CPU time one request takes, in core-seconds."""
    container: str | None
    """Container whose usage is replayed; None: the pod's first container."""


def _series_ref(workload: str, annotation: str, text: str) -> SeriesRef:
    path, sep, series = text.strip().partition("#")
    path, series = path.strip(), series.strip()
    if not path:
        raise ReplayAnnotationError(workload, annotation, f"no trace path in {text!r} (want PATH#SERIES)")
    if sep and not series:
        raise ReplayAnnotationError(workload, annotation, f"empty series after '#' in {text!r}")
    return SeriesRef(path=path, series=series or None)


def _positive_number(workload: str, annotations: Mapping[str, str], annotation: str, default: float) -> float:
    text = annotations.get(annotation)
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        raise ReplayAnnotationError(workload, annotation, f"not a number: {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise ReplayAnnotationError(workload, annotation, f"must be a positive finite number, got {text!r}")
    return value


def parse_replay_spec(workload: str, annotations: Mapping[str, str]) -> ReplaySpec | None:
    """The replay spec of ``workload`` (``namespace/name``, for messages); None if it has none.

    A workload without any ``thrifty.dev/replay-*`` annotation is not replayed. Any other
    annotation with that prefix, and every malformed value, raises
    :class:`ReplayAnnotationError` naming the annotation.
    """
    ours = {key: value for key, value in annotations.items() if key.startswith(ANNOTATION_PREFIX)}
    if not ours:
        return None
    for key in ours:
        if key not in KNOWN_ANNOTATIONS:
            raise ReplayAnnotationError(
                workload, key, f"unknown replay annotation; known: {', '.join(KNOWN_ANNOTATIONS)}"
            )
    if TRACE_ANNOTATION not in ours:
        raise ReplayAnnotationError(
            workload,
            TRACE_ANNOTATION,
            "missing: every replayed workload needs a usage series (memory, and CPU without a rate)",
        )
    rate_text = ours.get(RATE_ANNOTATION)
    if rate_text is None and RATE_SCALE_ANNOTATION in ours:
        raise ReplayAnnotationError(workload, RATE_SCALE_ANNOTATION, f"has no effect without {RATE_ANNOTATION}")
    container = ours.get(CONTAINER_ANNOTATION)
    if container is not None and not container.strip():
        raise ReplayAnnotationError(workload, CONTAINER_ANNOTATION, "is empty; name a container or leave it out")
    return ReplaySpec(
        usage=_series_ref(workload, TRACE_ANNOTATION, ours[TRACE_ANNOTATION]),
        rate=None if rate_text is None else _series_ref(workload, RATE_ANNOTATION, rate_text),
        rate_scale=_positive_number(workload, ours, RATE_SCALE_ANNOTATION, 1.0),
        cpu_seconds_per_request=_positive_number(
            workload, ours, CPU_PER_REQUEST_ANNOTATION, DEFAULT_CPU_SECONDS_PER_REQUEST
        ),
        container=None if container is None else container.strip(),
    )


@dataclass(frozen=True)
class Signal:
    """A regularly sampled series, replayed in a loop."""

    step_seconds: float
    """Trace seconds between two samples."""
    values: np.ndarray
    """(T,) samples without gaps."""

    @classmethod
    def from_samples(cls, values: np.ndarray, step_seconds: float) -> Signal | None:
        """A signal from samples with NaN gaps, bridged linearly (ends held); None if all NaN."""
        values = np.asarray(values, dtype=float)
        known = np.flatnonzero(~np.isnan(values))
        if known.size == 0:
            return None
        filled = np.interp(np.arange(values.size), known, values[known])
        return cls(step_seconds=float(step_seconds), values=filled)

    @property
    def period_seconds(self) -> float:
        """Trace seconds after which the replay starts over."""
        return self.step_seconds * self.values.size

    def at(self, trace_seconds: float) -> float:
        """The value at ``trace_seconds`` from the series start, interpolated, wrapped around."""
        position = (trace_seconds % self.period_seconds) / self.step_seconds
        low = int(position)
        high = (low + 1) % self.values.size  # the last sample blends into the first: no jump
        weight = position - low
        return float(self.values[low] * (1.0 - weight) + self.values[high] * weight)


@dataclass(frozen=True)
class WorkloadSignals:
    """The series one workload's demand is made of."""

    memory_bytes: Signal
    """Memory working set of one replica."""
    cpu_millicores: Signal | None
    """Total CPU demand of the workload; None when it comes from the rate."""
    request_rate_per_second: Signal | None
    """Arrivals, already multiplied by the rate scale; None: derived from the CPU."""


def _find_series(trace: Trace, ref: SeriesRef, workload: str, annotation: str) -> ContainerUsage:
    if ref.series is None:
        if len(trace.containers) != 1:
            raise ReplayAnnotationError(
                workload, annotation, f"{ref.path} has {len(trace.containers)} series: name one as {ref.path}#SERIES"
            )
        return trace.containers[0]
    for usage in trace.containers:
        if usage.name == ref.series:
            return usage
    names = ", ".join(usage.name for usage in trace.containers[:5])
    more = "..." if len(trace.containers) > 5 else ""
    raise ReplayAnnotationError(workload, annotation, f"no series {ref.series!r} in {ref.path} (it has {names}{more})")


def _load(load: Callable[[str], Trace], ref: SeriesRef, workload: str, annotation: str) -> Trace:
    try:
        return load(ref.path)
    except (OSError, ValueError) as err:  # missing file, TraceFormatError, unknown format
        raise ReplayAnnotationError(workload, annotation, f"cannot load {ref.path}: {err}") from None


def resolve_signals(spec: ReplaySpec, workload: str, load: Callable[[str], Trace]) -> WorkloadSignals:
    """Load the series ``spec`` names through ``load(path)`` and check they have the data needed."""
    usage = _find_series(_load(load, spec.usage, workload, TRACE_ANNOTATION), spec.usage, workload, TRACE_ANNOTATION)
    memory = Signal.from_samples(usage.memory_usage_bytes, usage.step_seconds)
    if memory is None:
        raise ReplayAnnotationError(
            workload,
            TRACE_ANNOTATION,
            f"series {spec.usage} has no memory samples; pick a trace with memory (Bitbrains, GenAI)",
        )
    if spec.rate is None:
        cpu = Signal.from_samples(usage.cpu_usage_millicores, usage.step_seconds)
        if cpu is None:
            raise ReplayAnnotationError(
                workload,
                TRACE_ANNOTATION,
                f"series {spec.usage} has no CPU samples; add {RATE_ANNOTATION} or pick a trace with CPU",
            )
        return WorkloadSignals(memory_bytes=memory, cpu_millicores=cpu, request_rate_per_second=None)
    rate_usage = _find_series(_load(load, spec.rate, workload, RATE_ANNOTATION), spec.rate, workload, RATE_ANNOTATION)
    rate = Signal.from_samples(rate_usage.request_rate_per_second * spec.rate_scale, rate_usage.step_seconds)
    if rate is None:
        raise ReplayAnnotationError(workload, RATE_ANNOTATION, f"series {spec.rate} has no request-rate samples")
    return WorkloadSignals(memory_bytes=memory, cpu_millicores=None, request_rate_per_second=rate)


@dataclass(frozen=True)
class Demand:
    """A workload's demand at one moment of its trace."""

    cpu_millicores: float
    """Total CPU the workload's requests need, over all replicas."""
    memory_bytes_per_replica: float
    request_rate_per_second: float


def demand_at(signals: WorkloadSignals, cpu_seconds_per_request: float, trace_seconds: float) -> Demand:
    """The demand at ``trace_seconds``; CPU and rate are tied by the CPU per request."""
    memory = max(signals.memory_bytes.at(trace_seconds), 0.0)
    if signals.request_rate_per_second is not None:
        rate = max(signals.request_rate_per_second.at(trace_seconds), 0.0)
        return Demand(
            cpu_millicores=1000.0 * rate * cpu_seconds_per_request,
            memory_bytes_per_replica=memory,
            request_rate_per_second=rate,
        )
    assert signals.cpu_millicores is not None  # resolve_signals sets one of the two
    cpu = max(signals.cpu_millicores.at(trace_seconds), 0.0)
    return Demand(
        cpu_millicores=cpu,
        memory_bytes_per_replica=memory,
        request_rate_per_second=cpu / (1000.0 * cpu_seconds_per_request),
    )


@dataclass(frozen=True)
class ReplicaCpu:
    """The CPU settings of the replayed container in one running replica."""

    request_millicores: float
    """NaN when the container has no CPU request."""
    limit_millicores: float
    """inf when the container has no CPU limit."""

    @property
    def available_millicores(self) -> float:
        """CPU the container can count on: its limit, else its request (NaN if neither)."""
        return self.limit_millicores if math.isfinite(self.limit_millicores) else self.request_millicores


def split_cpu(total_millicores: float, replicas: Sequence[ReplicaCpu]) -> np.ndarray:
    """(R,) CPU usage per replica: an even share of the total, capped at each replica's limit.

    A capped replica does not hand its excess to the others: round-robin balancing keeps sending
    it its share, which then waits (the latency model accounts for that).
    """
    if not replicas:
        return np.zeros(0)
    limits = np.array([replica.limit_millicores for replica in replicas], dtype=float)
    return np.minimum(max(total_millicores, 0.0) / len(replicas), limits)


_DEFAULT_LATENCY = LatencyModelConfig()


def modelled_latency_p95_seconds(
    demand: Demand,
    replicas: Sequence[ReplicaCpu],
    cpu_seconds_per_request: float,
    config: LatencyModelConfig = _DEFAULT_LATENCY,
) -> tuple[float, float]:
    """The modelled p95 response time (seconds) and utilisation (0..1, inf) of one workload.

    An M/M/c queue (:func:`thrifty.latency.response_time_percentile`) with c = running replicas,
    each serving at (mean available CPU / CPU per request). No replica with load: saturated.
    """
    cpu = np.array([replica.available_millicores for replica in replicas], dtype=float)
    mean_cpu = float(np.mean(cpu)) if cpu.size else 0.0
    mu = service_rate_per_second(mean_cpu, 1000.0 * cpu_seconds_per_request)
    estimate = response_time_percentile(demand.request_rate_per_second, mu, len(replicas), config=config)
    return float(estimate.p95_seconds[0]), float(estimate.utilisation[0])


def resource_usage_manifest(
    *,
    namespace: str,
    pod_name: str,
    pod_uid: str,
    workload: str,
    container: str,
    cpu_millicores: float,
    memory_bytes: float,
) -> dict:
    """The kwok ``ResourceUsage`` that makes kwok report this usage for one pod.

    kwok looks a pod's ResourceUsage up by name and namespace, so it is named after the pod; the
    ownerReference lets the garbage collector delete it with the pod. The pod's other containers
    get kwok's idle default, since a ResourceUsage without an entry for a container makes kwok
    report nothing for it.
    """
    return {
        "apiVersion": "kwok.x-k8s.io/v1alpha1",
        "kind": "ResourceUsage",
        "metadata": {
            "name": pod_name,
            "namespace": namespace,
            "labels": {MANAGED_BY_LABEL: MANAGED_BY, WORKLOAD_LABEL: workload},
            "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": pod_name, "uid": pod_uid}],
        },
        "spec": {
            "usages": [
                {
                    "containers": [container],
                    "usage": {
                        "cpu": {"value": f"{round(cpu_millicores)}m"},
                        "memory": {"value": str(round(memory_bytes))},
                    },
                },
                {
                    "usage": {
                        "cpu": {"value": f"{round(IDLE_CONTAINER_CPU_MILLICORES)}m"},
                        "memory": {"value": str(round(IDLE_CONTAINER_MEMORY_BYTES))},
                    }
                },
            ]
        },
    }
