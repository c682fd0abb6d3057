"""Build a :class:`~thrifty.sim.spec.Scenario` from real traces (data only, no dynamics).

What comes from where (every scale is a :class:`thrifty.config.ScenarioConfig` field):

=====================  ==================================================================
scenario part          source
=====================  ==================================================================
nodes                  a seeded sample of ``n_nodes`` from the node inventory (openb);
                       power class from :func:`thrifty.energy.power_class_for_cpu`
applications           ``n_applications`` call graphs (Alibaba 2021 microservices) of at
                       most ``max_workloads_per_application`` services, each one application
                       in namespace ``app-<i>``; every graph node except the external
                       ``USER`` caller is a workload
dependencies           the graph's edges: calls per request of the caller, from the edge
                       weights (calls per request of the whole graph, see below)
request rate           entry rate of an application: the sum of
                       ``REQUEST_SERIES_PER_APPLICATION`` windows of request-rate series
                       (GenAI QPS, Azure arrivals), normalised to mean 1 and scaled to a mean
                       drawn from ``entry_request_rate_range_per_second``; a workload's rate
                       is the entry rate times its calls per graph request
per-pod baseline CPU   shape of a container CPU series (Bitbrains, vasim), normalised to
                       mean 1, times ``baseline_cpu_millicores``
memory per pod         shape of a container memory series (GenAI, Bitbrains), normalised to
                       mean 1 and capped at ``MEMORY_SHAPE_MAX``, times a mean drawn from
                       ``memory_per_pod_range_bytes``
CPU per request        drawn per workload from the range of its kind (service, cache,
                       database, told by the rpc type of the calls it receives): the traces
                       have no per-request CPU
background pods        optional, a consecutive run of the pod stream (openb) with real
                       requests and arrival/departure times
=====================  ==================================================================

Call-graph arithmetic: an edge weight is the number of calls along the edge in one request of
the graph. A microservice ``b`` is invoked ``inv_b = Σ weights into b`` times per graph request
(1 for a root without callers), so its rate is ``λ_entry · inv_b`` and an edge ``a -> b`` makes
``weight / inv_a`` calls per request of ``a``.

Series are resampled to the step by averaging (exact for piecewise-constant samples, both up and
down), gaps are filled by linear interpolation, and a window of the horizon's length is cut at a
seeded offset, wrapping around when the trace is shorter than the horizon.

Shapes are normalised over the whole horizon, or over its first ``history_seconds`` when the
horizon starts with history before the run. Initial sizing is what a careful team would deploy,
over-provisioned but not absurdly:
replicas keep the p95 request-driven CPU at ``initial_cpu_utilisation_target`` of their
request-driven CPU, the request adds the p95 baseline, the memory request covers the series'
peak with ``initial_memory_headroom``. The SLO is ``slo_service_time_multiple`` times the service
time at the requested CPU. Everything is deterministic for a given seed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import TypedDict

import numpy as np

from thrifty.config import ScenarioConfig
from thrifty.energy import power_class_for_cpu
from thrifty.sim.spec import BackgroundPods, Dependencies, Scenario, ScenarioNodes, WorkloadSpec
from thrifty.traces.model import CallGraph, ContainerUsage, NodeInventory, PodStream, Trace

EXTERNAL_CALLER = "USER"
"""The call-graph node that stands for the application's clients (not a workload)."""

REQUEST_SERIES_PER_APPLICATION = 8
"""Request-rate windows summed into one application's entry rate. A single GenAI container is
idle 80 % of the minutes; a service's traffic is the sum over many such sources, so summing
several windows (possibly of the same series at different offsets) gives service-level load."""

MEMORY_SHAPE_MAX = 3.0
"""Cap on a memory shape (relative to its mean). Bitbrains reports VM memory, whose page-cache
surges reach 10x the mean; a pod's footprint is bounded by its runtime's heap settings, and an
uncapped surge would size the initial memory request at ten times the typical use."""

_CPU_GRANULE_MILLICORES = 10.0
_MEMORY_GRANULE_BYTES = 2**20
_CACHE_RPC, _DATABASE_RPC = "mc", "db"


def build_scenario(traces: Sequence[Trace], *, config: ScenarioConfig = ScenarioConfig(), seed: int = 0) -> Scenario:
    """A scenario from loaded traces (see the module docstring for what comes from where).

    ``traces`` must hold, together, a node inventory, call graphs and at least one request-rate
    series; CPU and memory series are optional (flat shapes are used without them), a pod
    stream is needed only for ``config.n_background_pods > 0``. Raises ValueError naming what is
    missing.
    """
    inventory = next((t.nodes for t in traces if t.nodes is not None), None)
    graphs = [g for t in traces for g in t.call_graphs if _microservices(g)]
    containers = [c for t in traces for c in t.containers]
    rate_series = [c for c in containers if _usable(c.request_rate_per_second)]
    cpu_series = [c for c in containers if _usable(c.cpu_usage_millicores)]
    memory_series = [c for c in containers if _usable(np.where(c.memory_usage_bytes > 0, c.memory_usage_bytes, np.nan))]
    stream = next((t.pods for t in traces if t.pods is not None), None)
    missing = [
        what
        for what, present in (
            ("a node inventory (openb nodes)", inventory is not None and len(inventory.names) > 0),
            ("call graphs with at least one microservice", bool(graphs)),
            ("a request-rate series (GenAI QPS or Azure arrivals)", bool(rate_series)),
            ("a pod stream (openb pods) for n_background_pods > 0",
             config.n_background_pods == 0 or stream is not None),
        )
        if not present
    ]
    if missing:
        raise ValueError("build_scenario: the traces lack " + "; ".join(missing))

    rng = np.random.default_rng(seed)
    steps = max(1, round(config.horizon_seconds / config.step_seconds))
    history = round(config.history_seconds / config.step_seconds)
    assert inventory is not None  # a missing inventory is in ``missing`` above
    nodes = _sample_nodes(inventory, config.n_nodes, rng)
    small = [
        i for i, graph in enumerate(graphs) if len(_microservices(graph)) <= config.max_workloads_per_application
    ]
    if not small:
        raise ValueError(
            "build_scenario: no call graph has at most ScenarioConfig.max_workloads_per_application="
            f"{config.max_workloads_per_application} microservices"
        )
    picked = rng.choice(len(small), size=config.n_applications, replace=config.n_applications > len(small))
    chosen = np.asarray(small)[picked]

    workloads: list[WorkloadSpec] = []
    sources: list[int] = []
    targets: list[int] = []
    calls_per_request: list[float] = []
    for app, graph_index in enumerate(chosen.tolist()):
        graph = graphs[graph_index]
        windows = [
            _shape(rate_series[i], "request_rate_per_second", config.step_seconds, steps, rng)
            for i in rng.integers(len(rate_series), size=REQUEST_SERIES_PER_APPLICATION).tolist()
        ]
        entry = _normalised(sum(windows[1:], windows[0]), history) * _log_uniform(
            rng, config.entry_request_rate_range_per_second)
        energy_weight = float(rng.uniform(*config.energy_weight_range))
        first = len(workloads)
        invocations, edges, kinds = _graph_arithmetic(graph)
        names = _workload_names(f"app-{app}", graph)
        for node_index, name in names.items():
            workloads.append(
                _workload(
                    name=name,
                    rate=entry * invocations[node_index],
                    kind=kinds[node_index],
                    energy_weight=energy_weight,
                    cpu_shape=_random_shape(cpu_series, "cpu_usage_millicores", config, steps, rng),
                    memory_shape=_random_shape(memory_series, "memory_usage_bytes", config, steps, rng),
                    config=config,
                    rng=rng,
                )
            )
        position = {node_index: first + i for i, node_index in enumerate(names)}
        for source, target, per_request in edges:
            sources.append(position[source])
            targets.append(position[target])
            calls_per_request.append(per_request)

    dependencies = _dependencies(workloads, sources, targets, calls_per_request, config)
    background = (
        _background(stream, config, rng) if config.n_background_pods > 0 and stream is not None else None
    )
    return Scenario(
        nodes=nodes,
        workloads=tuple(workloads),
        dependencies=dependencies,
        background=background,
        step_seconds=config.step_seconds,
    )


# ------------------------------------------------------------------------- series


def _usable(values: np.ndarray) -> bool:
    return bool(np.any(np.isfinite(values)))


def _resample(values: np.ndarray, from_step: float, to_step: float) -> np.ndarray:
    """Mean over each target step of a piecewise-constant series, gaps interpolated first."""
    values = np.asarray(values, dtype=float)
    index = np.arange(len(values))
    valid = np.isfinite(values)
    filled = np.interp(index, index[valid], values[valid])
    if from_step == to_step:
        return filled
    duration = len(values) * from_step
    # Integral of the step function at the source boundaries, interpolated at target boundaries.
    integral = np.concatenate([[0.0], np.cumsum(filled) * from_step])
    count = max(1, int(duration // to_step))
    boundaries = np.arange(count + 1) * to_step
    return np.diff(np.interp(boundaries, np.arange(len(values) + 1) * from_step, integral)) / to_step


def _shape(usage: ContainerUsage, attribute: str, step: float, steps: int, rng: np.random.Generator) -> np.ndarray:
    """A window of ``steps`` samples of one series at ``step``, from a seeded offset (wrapping)."""
    values = np.asarray(getattr(usage, attribute), dtype=float)
    if attribute == "memory_usage_bytes":
        # A running container always uses memory: a zero is a missing sample (Bitbrains has many).
        values = np.where(values > 0, values, np.nan)
    series = _resample(values, usage.step_seconds, step)
    offset = int(rng.integers(len(series)))
    return series[(offset + np.arange(steps)) % len(series)]


def _normalised(series: np.ndarray, over_steps: int) -> np.ndarray:
    """Scaled to mean 1 over its first ``over_steps`` samples (all if 0; a flat 1 when that
    mean is 0)."""
    mean = float(np.mean(series[:over_steps] if over_steps > 0 else series))
    return series / mean if mean > 0 else np.ones_like(series)


def _random_shape(
    candidates: list[ContainerUsage], attribute: str, config: ScenarioConfig, steps: int, rng: np.random.Generator
) -> np.ndarray:
    if not candidates:
        return np.ones(steps)
    usage = candidates[int(rng.integers(len(candidates)))]
    history = round(config.history_seconds / config.step_seconds)
    shape = _normalised(_shape(usage, attribute, config.step_seconds, steps, rng), history)
    return np.minimum(shape, MEMORY_SHAPE_MAX) if attribute == "memory_usage_bytes" else shape


def _log_uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(math.exp(rng.uniform(math.log(bounds[0]), math.log(bounds[1]))))


# -------------------------------------------------------------------------- nodes


def _sample_nodes(inventory: NodeInventory, count: int, rng: np.random.Generator) -> ScenarioNodes:
    """``count`` nodes: a sample without replacement, or every node and then repeats."""
    available = len(inventory.names)
    if count <= available:
        picked = np.sort(rng.choice(available, size=count, replace=False))
    else:
        picked = np.concatenate([np.arange(available), np.sort(rng.choice(available, size=count - available))])
    seen: dict[str, int] = {}
    names = []
    for index in picked.tolist():
        base = inventory.names[index]
        copies = seen.get(base, 0)
        seen[base] = copies + 1
        names.append(base if copies == 0 else f"{base}-copy{copies}")
    cpu = np.asarray(inventory.cpu_capacity_millicores, dtype=float)[picked]
    return ScenarioNodes(
        names=tuple(names),
        cpu_capacity_millicores=cpu,
        memory_capacity_bytes=np.asarray(inventory.memory_capacity_bytes, dtype=float)[picked],
        power_class=tuple(power_class_for_cpu(c) for c in cpu.tolist()),
    )


# ------------------------------------------------------------------- applications


def _microservices(graph: CallGraph) -> list[int]:
    return [i for i, name in enumerate(graph.nodes) if name != EXTERNAL_CALLER]


def _graph_arithmetic(graph: CallGraph) -> tuple[dict[int, float], list[tuple[int, int, float]], dict[int, str]]:
    """Invocations per graph request, (source, target, calls per source request) edges between
    microservices, and each microservice's kind (``service``, ``cache`` or ``database``)."""
    source = np.asarray(graph.source, dtype=np.int64)
    target = np.asarray(graph.target, dtype=np.int64)
    weight = np.asarray(graph.weight, dtype=float)
    incoming = np.bincount(target, weights=weight, minlength=len(graph.nodes))
    called = np.bincount(target, minlength=len(graph.nodes)) > 0
    invocations = {i: float(incoming[i]) if called[i] else 1.0 for i in _microservices(graph)}
    kinds = {}
    for i in invocations:
        calls_by_type: dict[str, float] = {}
        for e in np.flatnonzero(target == i).tolist():
            calls_by_type[graph.rpc_type[e]] = calls_by_type.get(graph.rpc_type[e], 0.0) + weight[e]
        main = max(calls_by_type, key=lambda rpc: calls_by_type[rpc]) if calls_by_type else "rpc"
        kinds[i] = {_CACHE_RPC: "cache", _DATABASE_RPC: "database"}.get(main, "service")
    edges = [
        (s, t, w / invocations[s])
        for s, t, w in zip(source.tolist(), target.tolist(), weight.tolist(), strict=True)
        if s in invocations and t in invocations and s != t and invocations[s] > 0
    ]
    return invocations, edges, kinds


def _workload_names(namespace: str, graph: CallGraph) -> dict[int, str]:
    """``namespace/name`` per microservice: the graph's node id made a valid Kubernetes name."""
    names: dict[int, str] = {}
    taken: set[str] = set()
    for i in _microservices(graph):
        base = re.sub(r"[^a-z0-9-]+", "-", graph.nodes[i].lower()).strip("-")[:50] or "ms"
        name, copy = base, 1
        while name in taken:
            name, copy = f"{base}-{copy}", copy + 1
        taken.add(name)
        names[i] = f"{namespace}/{name}"
    return names


def _cpu_per_request_range(kind: str, config: ScenarioConfig) -> tuple[float, float]:
    return {
        "cache": config.cache_cpu_per_request_millicore_seconds,
        "database": config.database_cpu_per_request_millicore_seconds,
    }.get(kind, config.service_cpu_per_request_millicore_seconds)


def _round_up(value: float, granule: float) -> float:
    return max(granule, math.ceil(value / granule) * granule)


def _workload(
    *,
    name: str,
    rate: np.ndarray,
    kind: str,
    energy_weight: float,
    cpu_shape: np.ndarray,
    memory_shape: np.ndarray,
    config: ScenarioConfig,
    rng: np.random.Generator,
) -> WorkloadSpec:
    """One microservice with its load series, initial size and SLO (see the module docstring)."""
    work = _log_uniform(rng, _cpu_per_request_range(kind, config))
    baseline = config.baseline_cpu_millicores * cpu_shape
    memory = _log_uniform(rng, config.memory_per_pod_range_bytes) * memory_shape
    return WorkloadSpec(
        name=name,
        request_rate_per_second=rate,
        cpu_per_request_millicore_seconds=work,
        cpu_baseline_millicores=baseline,
        memory_per_pod_bytes=memory,
        replicas_min=1,
        replicas_max=config.replicas_max,
        cpu_min_millicores=_CPU_GRANULE_MILLICORES,
        energy_weight=energy_weight,
        **deployed_size(rate, work, baseline, memory, config),
    )


class DeployedSize(TypedDict):
    """The :class:`WorkloadSpec` fields :func:`deployed_size` sets."""

    replicas: int
    cpu_request_millicores: float
    cpu_limit_millicores: float
    memory_request_bytes: float
    memory_limit_bytes: float
    cpu_max_millicores: float
    memory_min_bytes: float
    memory_max_bytes: float
    slo_latency_p95_seconds: float


def deployed_size(rate: np.ndarray, work: float, baseline: np.ndarray, memory: np.ndarray,
                  config: ScenarioConfig) -> DeployedSize:
    """The initial sizing rule of the module docstring, from the series it is given (rate in
    requests/s, ``work`` in millicore-seconds per request, baseline CPU in millicores, memory in
    bytes per pod): the :class:`WorkloadSpec` fields ``replicas``, requests, limits, their
    maxima and the SLO."""
    driven_p95 = float(np.percentile(rate * work, 95))
    per_pod_target = config.initial_cpu_utilisation_target * config.pod_cpu_target_millicores
    replicas = int(min(max(math.ceil(driven_p95 / per_pod_target), 1), config.replicas_max))
    driven_per_pod = driven_p95 / (replicas * config.initial_cpu_utilisation_target)
    cpu_request = _round_up(driven_per_pod + float(np.percentile(baseline, 95)), _CPU_GRANULE_MILLICORES)
    memory_request = _round_up(float(memory.max()) * (1.0 + config.initial_memory_headroom), _MEMORY_GRANULE_BYTES)
    service_seconds = work / max(cpu_request - float(baseline.mean()), _CPU_GRANULE_MILLICORES)
    return {
        "replicas": replicas,
        "cpu_request_millicores": cpu_request,
        "cpu_limit_millicores": cpu_request * config.initial_cpu_limit_ratio,
        "memory_request_bytes": memory_request,
        "memory_limit_bytes": memory_request,
        "cpu_max_millicores": max(8_000.0, 4 * cpu_request),
        "memory_min_bytes": 64.0 * _MEMORY_GRANULE_BYTES,
        "memory_max_bytes": max(16.0 * 2**30, 4 * memory_request),
        "slo_latency_p95_seconds": max(config.slo_min_seconds, config.slo_service_time_multiple * service_seconds),
    }


def _dependencies(
    workloads: list[WorkloadSpec],
    sources: list[int],
    targets: list[int],
    calls_per_request: list[float],
    config: ScenarioConfig,
) -> Dependencies:
    """Edges with their calls per request; the snapshot weight is mean traffic over the largest."""
    source = np.asarray(sources, dtype=np.int64)
    target = np.asarray(targets, dtype=np.int64)
    per_request = np.asarray(calls_per_request, dtype=float)
    mean_rate = np.array([float(np.mean(w.request_rate_per_second)) for w in workloads])
    traffic = mean_rate[source] * per_request if len(source) else np.zeros(0)
    peak = float(traffic.max()) if len(traffic) else 0.0
    return Dependencies(
        source=source,
        target=target,
        calls_per_request=per_request,
        bytes_per_call=np.full(len(source), config.bytes_per_call),
        weight=traffic / peak if peak > 0 else np.zeros(len(source)),
    )


def _background(stream: PodStream, config: ScenarioConfig, rng: np.random.Generator) -> BackgroundPods:
    """A consecutive run (by creation time) of the pod stream, times relative to its first pod."""
    order = np.argsort(np.asarray(stream.creation_seconds, dtype=float), kind="stable")
    count = min(config.n_background_pods, len(order))
    start = int(rng.integers(len(order) - count + 1))
    picked = order[start : start + count]
    creation = np.asarray(stream.creation_seconds, dtype=float)[picked]
    deletion = np.asarray(stream.deletion_seconds, dtype=float)[picked]
    origin = float(creation.min()) if count else 0.0
    cpu = np.asarray(stream.cpu_request_millicores, dtype=float)[picked]
    memory = np.asarray(stream.memory_request_bytes, dtype=float)[picked]
    arrival = (creation - origin) * config.background_time_scale
    departure = np.maximum((deletion - origin) * config.background_time_scale, arrival)
    return BackgroundPods(
        names=tuple(f"background/{stream.names[i]}" for i in picked.tolist()),
        arrival_seconds=arrival,
        departure_seconds=np.where(np.isnan(deletion), np.inf, departure),
        cpu_request_millicores=cpu,
        memory_request_bytes=memory,
        cpu_usage_millicores=cpu * config.background_cpu_utilisation,
        memory_usage_bytes=memory * config.background_memory_utilisation,
    )
