"""What a simulation runs: nodes, workloads with their load series, dependencies, background pods.

A :class:`Scenario` is data only; :class:`thrifty.sim.Simulator` gives it dynamics. Build one by
hand (tests, experiments) or from traces with :func:`thrifty.sim.build_scenario`.

Every series has one sample per simulation step (``Scenario.step_seconds``); all workloads'
series have the same length, the horizon, after which the simulator wraps around.

Load model of a workload (per step ``k``, with ``c`` running replicas)::

    CPU demand of replica i   = cpu_baseline_millicores[k + phase_i]
                                + (request_rate_per_second[k] · cpu_per_request_millicore_seconds
                                   + cpu_shared_demand_millicores[k]) · w_i / Σ_j w_j
    memory of replica i       = memory_per_pod_bytes[k + phase_i]

with the sum over the ``c`` running replicas. By default every replica reads the same sample
(``phase_i = 0``) and gets an equal share (``w_i = 1``, so ``1 / c``); a scenario can give each
replica its own phase, for memory (``Scenario.replica_memory_phases``) and for the baseline CPU
(``Scenario.replica_cpu_phases``), and its own weight (``Scenario.replica_cpu_spread``). So
scaling out spreads the request-driven (and shared) CPU and adds one more baseline and one
more memory footprint, which is the energy cost of an extra replica. The shared term lets a
container usage trace drive a workload directly, without a request rate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


def _fail(owner: object, name: str, problem: str) -> None:
    label = getattr(owner, "name", None)
    where = f"{type(owner).__name__}({label!r})" if isinstance(label, str) else type(owner).__name__
    raise ValueError(f"{where}.{name}: {problem}")


def _column(owner: object, name: str, n: int, *, dtype: type = float) -> np.ndarray:
    values: np.ndarray = np.asarray(getattr(owner, name), dtype=dtype)
    if values.shape != (n,):
        _fail(owner, name, f"expected shape ({n},), got {values.shape}")
    return values


@dataclass(frozen=True, kw_only=True)
class ScenarioNodes:
    """The cluster's nodes (fixed for a run)."""

    names: tuple[str, ...]
    """Node names, unique."""
    cpu_capacity_millicores: np.ndarray
    """(N,) allocatable CPU; a node with 0 never receives a pod."""
    memory_capacity_bytes: np.ndarray
    """(N,) allocatable memory; a node with 0 never receives a pod."""
    power_class: tuple[str, ...]
    """(N,) power profile names (see :mod:`thrifty.energy`)."""

    def __post_init__(self) -> None:
        n = len(self.names)
        if len(set(self.names)) != n:
            _fail(self, "names", "must be unique")
        for name in ("cpu_capacity_millicores", "memory_capacity_bytes"):
            values = _column(self, name, n)
            if not np.all(np.isfinite(values) & (values >= 0)):
                _fail(self, name, "must be finite and >= 0")
        if len(self.power_class) != n:
            _fail(self, "power_class", f"expected {n} entries, got {len(self.power_class)}")

    def __len__(self) -> int:
        return len(self.names)


@dataclass(frozen=True, kw_only=True)
class WorkloadSpec:
    """One RLWorkload: its load over time, initial pod size, bounds and objectives."""

    name: str
    """``namespace/name``, unique."""
    request_rate_per_second: np.ndarray
    """(T,) arrival rate of requests (>= 0)."""
    cpu_per_request_millicore_seconds: float
    """CPU work of one request (millicore-seconds = milliseconds of one core)."""
    cpu_baseline_millicores: np.ndarray
    """(T,) CPU each running replica uses whatever the load (runtime, GC, sidecars)."""
    memory_per_pod_bytes: np.ndarray
    """(T,) memory each running replica uses."""
    cpu_shared_demand_millicores: np.ndarray | None = None
    """(T,) CPU the workload as a whole needs besides serving requests (for example a container
    usage trace taken as is), split equally over the running replicas; None for none."""
    cpu_request_millicores: float
    """Initial CPU request of each pod."""
    cpu_limit_millicores: float = math.inf
    """Initial CPU limit (inf: none)."""
    memory_request_bytes: float
    """Initial memory request of each pod."""
    memory_limit_bytes: float = math.inf
    """Initial memory limit (inf: none)."""
    replicas: int
    """Pods created (Pending) when the simulation starts."""
    replicas_min: int = 1
    replicas_max: int
    cpu_min_millicores: float = 10.0
    """Lower bound on the CPU request (for the policy and safety layer; not enforced here)."""
    cpu_max_millicores: float = 8_000.0
    memory_min_bytes: float = 64 * 2**20
    memory_max_bytes: float = 16 * 2**30
    slo_latency_p95_seconds: float
    """p95 response-time target."""
    energy_weight: float = 0.5
    """0 = performance only, 1 = energy only."""
    pdb_max_unavailable: int | None = None
    """The workload's PodDisruptionBudget as ``maxUnavailable`` pods (None: no PDB). An eviction
    is refused while this many of its pods are not ready (:mod:`thrifty.sim.migration`)."""

    def __post_init__(self) -> None:
        n = len(np.asarray(self.request_rate_per_second))
        if n < 1:
            _fail(self, "request_rate_per_second", "needs at least one sample")
        series: tuple[str, ...] = ("request_rate_per_second", "cpu_baseline_millicores", "memory_per_pod_bytes")
        if self.cpu_shared_demand_millicores is not None:
            series += ("cpu_shared_demand_millicores",)
        for name in series:
            values = _column(self, name, n)
            if not np.all(np.isfinite(values) & (values >= 0)):
                _fail(self, name, "must be finite and >= 0 (fill gaps in the trace first)")
        work = self.cpu_per_request_millicore_seconds
        if not (math.isfinite(work) and work >= 0):
            _fail(self, "cpu_per_request_millicore_seconds", f"must be finite and >= 0, got {work!r}")
        for request, limit in (
            ("cpu_request_millicores", "cpu_limit_millicores"),
            ("memory_request_bytes", "memory_limit_bytes"),
        ):
            if not (math.isfinite(getattr(self, request)) and getattr(self, request) >= 0):
                _fail(self, request, f"must be finite and >= 0, got {getattr(self, request)!r}")
            if not getattr(self, limit) >= getattr(self, request):
                _fail(self, limit, f"must be >= {request}, got {getattr(self, limit)!r}")
        if not 0 <= self.replicas_min <= self.replicas_max:
            _fail(
                self,
                "replicas_max",
                f"need 0 <= replicas_min <= replicas_max, got {self.replicas_min}, {self.replicas_max}",
            )
        if self.replicas < 0:
            _fail(self, "replicas", f"must be >= 0, got {self.replicas}")
        if self.pdb_max_unavailable is not None and self.pdb_max_unavailable < 0:
            _fail(self, "pdb_max_unavailable", f"must be >= 0 or None, got {self.pdb_max_unavailable}")
        if not (math.isfinite(self.slo_latency_p95_seconds) and self.slo_latency_p95_seconds > 0):
            _fail(self, "slo_latency_p95_seconds", f"must be finite and > 0, got {self.slo_latency_p95_seconds!r}")
        if not 0.0 <= self.energy_weight <= 1.0:
            _fail(self, "energy_weight", f"must lie in [0, 1], got {self.energy_weight!r}")

    @property
    def horizon_steps(self) -> int:
        """Samples in each series."""
        return len(self.request_rate_per_second)


@dataclass(frozen=True, kw_only=True)
class Dependencies:
    """Directed calls between workloads: ``source`` calls ``target``."""

    source: np.ndarray
    """(E,) int64 index of the calling workload."""
    target: np.ndarray
    """(E,) int64 index of the called workload."""
    calls_per_request: np.ndarray
    """(E,) calls to the target per request of the source."""
    bytes_per_call: np.ndarray
    """(E,) request plus response bytes of one call."""
    weight: np.ndarray
    """(E,) relative weight in [0, 1], as an RLWorkload's ``dependencies`` would state it; goes
    into the snapshot's :class:`thrifty.snapshot.DependencyTable`."""

    def __post_init__(self) -> None:
        n = len(np.asarray(self.source))
        _column(self, "source", n, dtype=np.int64)
        _column(self, "target", n, dtype=np.int64)
        for name in ("calls_per_request", "bytes_per_call"):
            values = _column(self, name, n)
            if not np.all(np.isfinite(values) & (values >= 0)):
                _fail(self, name, "must be finite and >= 0")
        weight = _column(self, "weight", n)
        if not np.all((weight >= 0) & (weight <= 1)):
            _fail(self, "weight", "must lie in [0, 1]")

    def __len__(self) -> int:
        return len(np.asarray(self.source))


def no_dependencies() -> Dependencies:
    """A scenario without calls between workloads."""
    empty = np.zeros(0)
    return Dependencies(
        source=np.zeros(0, dtype=np.int64),
        target=np.zeros(0, dtype=np.int64),
        calls_per_request=empty,
        bytes_per_call=empty,
        weight=empty,
    )


@dataclass(frozen=True, kw_only=True)
class BackgroundPods:
    """Pods that belong to no RLWorkload and come and go on their own (the placement stream).

    Each appears Pending at its arrival time (for the harness to bind, as Thrifty places any pod
    with ``schedulerName: thrifty``) and is deleted at its departure time. Usage is constant.
    """

    names: tuple[str, ...]
    """``namespace/name``, unique."""
    arrival_seconds: np.ndarray
    """(B,) simulation time at which each pod is created."""
    departure_seconds: np.ndarray
    """(B,) time at which it is deleted (inf: never)."""
    cpu_request_millicores: np.ndarray
    memory_request_bytes: np.ndarray
    cpu_usage_millicores: np.ndarray
    """(B,) CPU used while running."""
    memory_usage_bytes: np.ndarray
    """(B,) memory used while running."""

    def __post_init__(self) -> None:
        n = len(self.names)
        if len(set(self.names)) != n:
            _fail(self, "names", "must be unique")
        arrival = _column(self, "arrival_seconds", n)
        departure = _column(self, "departure_seconds", n)
        if not np.all(np.isfinite(arrival)):
            _fail(self, "arrival_seconds", "must be finite")
        if not np.all(departure >= arrival):
            _fail(self, "departure_seconds", "must be >= arrival_seconds (inf for never)")
        for name in ("cpu_request_millicores", "memory_request_bytes", "cpu_usage_millicores", "memory_usage_bytes"):
            values = _column(self, name, n)
            if not np.all(np.isfinite(values) & (values >= 0)):
                _fail(self, name, "must be finite and >= 0")

    def __len__(self) -> int:
        return len(self.names)


@dataclass(frozen=True, kw_only=True)
class Scenario:
    """Everything a simulation needs; no dynamics."""

    nodes: ScenarioNodes
    workloads: tuple[WorkloadSpec, ...]
    dependencies: Dependencies = field(default_factory=no_dependencies)
    background: BackgroundPods | None = None
    step_seconds: float = 60.0
    """Time between two series samples; must equal the simulator's step."""
    replica_memory_phases: bool = False
    """Each replica reads its workload's memory series from its own phase (a fixed offset in
    steps per pod, see :class:`thrifty.sim.Simulator`), so replicas peak at different times and
    one burst does not kill them all; False: every replica reads the same sample."""
    replica_cpu_phases: bool = False
    """Each replica reads its workload's per-pod baseline CPU series at its own phase (the same
    offset as its memory phase); False: every replica reads the same baseline sample."""
    replica_cpu_spread: float = 0.0
    """Each replica's share of its workload's request-driven and shared CPU is proportional to a
    fixed weight in ``[1 - spread, 1 + spread)`` (uneven load balancing), drawn for the replica
    by a hash of ``replica_seed``, the workload's index and the pod's number, so the weights do
    not depend on the policy that created the pod. The shares of the running replicas add up to
    the workload's demand. 0: every replica gets an equal share."""
    replica_seed: int = 0
    """Seed of the per-replica CPU weights (the scenario's seed in the loaded regime)."""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.replica_cpu_spread) and 0.0 <= self.replica_cpu_spread < 1.0):
            _fail(self, "replica_cpu_spread", f"must lie in [0, 1), got {self.replica_cpu_spread!r}")
        if not (math.isfinite(self.step_seconds) and self.step_seconds > 0):
            _fail(self, "step_seconds", f"must be finite and > 0, got {self.step_seconds!r}")
        names = [w.name for w in self.workloads]
        if len(set(names)) != len(names):
            _fail(self, "workloads", "names must be unique")
        lengths = {w.horizon_steps for w in self.workloads}
        if len(lengths) > 1:
            _fail(self, "workloads", f"all series must have the same length, got {sorted(lengths)}")
        n = len(self.workloads)
        for name in ("source", "target"):
            values = np.asarray(getattr(self.dependencies, name))
            if np.any((values < 0) | (values >= n)):
                _fail(self, f"dependencies.{name}", f"indices must lie in [0, {n})")

    @property
    def horizon_steps(self) -> int:
        """Samples in every workload series (1 when there are no workloads)."""
        return self.workloads[0].horizon_steps if self.workloads else 1
