"""Typed configuration of the models: latency, network, reward, simulator and scenario builder.

Every class is a frozen, keyword-only dataclass: build one with ``LatencyModelConfig(
saturated_latency_seconds=5.0)`` and derive variants with :func:`dataclasses.replace`. Each
field carries its unit in its name and is checked in ``__post_init__``; an invalid value raises
``ValueError`` naming the class and the field.

Where a default is a modelling assumption rather than a measured constant, its docstring says so;
``docs/models.md`` gives the sources and the reasoning.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

MEBIBYTE = 2**20
GIBIBYTE = 2**30


def _fail(owner: object, name: str, problem: str) -> None:
    raise ValueError(f"{type(owner).__name__}.{name}: {problem}")


def _check_finite_positive(owner: object, *names: str) -> None:
    for name in names:
        value = getattr(owner, name)
        if not (math.isfinite(value) and value > 0):
            _fail(owner, name, f"must be finite and > 0, got {value!r}")


def _check_finite_non_negative(owner: object, *names: str) -> None:
    for name in names:
        value = getattr(owner, name)
        if not (math.isfinite(value) and value >= 0):
            _fail(owner, name, f"must be finite and >= 0, got {value!r}")


def _check_range(owner: object, *names: str, low: float = 0.0, high: float = math.inf) -> None:
    """Each named field is a ``(low, high)`` pair with ``low <= min <= max <= high``."""
    for name in names:
        pair = getattr(owner, name)
        if len(pair) != 2 or not all(math.isfinite(v) for v in pair):
            _fail(owner, name, f"must be a pair of finite numbers, got {pair!r}")
        if not low <= pair[0] <= pair[1] <= high:
            _fail(owner, name, f"must satisfy {low} <= low <= high <= {high}, got {pair!r}")


@dataclass(frozen=True, kw_only=True)
class LatencyModelConfig:
    """The M/M/c response-time model (:mod:`thrifty.latency`)."""

    latency_percentile: float = 0.95
    """Response-time percentile reported, as a fraction in (0, 1); the SLO is on p95."""
    saturated_latency_seconds: float = 10.0
    """Latency reported for a saturated workload (arrivals at or above its service capacity,
    or no running replica) and the cap on every estimate. An assumption: large against any
    SLO, finite so that rewards and features stay finite; about where clients time out."""

    def __post_init__(self) -> None:
        if not 0.0 < self.latency_percentile < 1.0:
            _fail(self, "latency_percentile", f"must lie in (0, 1), got {self.latency_percentile!r}")
        _check_finite_positive(self, "saturated_latency_seconds")


@dataclass(frozen=True, kw_only=True)
class NetworkModelConfig:
    """What a call between pods on different nodes costs (:mod:`thrifty.network`)."""

    cross_node_call_latency_seconds: float = 0.0005
    """Latency a call adds when caller and callee run on different nodes: one intra-datacentre
    round trip. 0.5 ms is "round trip within same datacenter" from Dean's latency numbers
    (LADIS 2009 keynote); modern leaf-spine fabrics are often faster, so this is the upper end."""
    network_energy_joules_per_byte: float = 6e-9
    """Energy to carry one byte between two nodes: two NICs and up to three switch hops of a
    leaf-spine fabric at their nameplate power over line rate (about 1.6 nJ/B per 100 GbE NIC at
    20 W, about 1 nJ/B per hop of a 3.2 Tb/s switch at 400 W). An assumption and an upper
    bound: network gear draws nearly constant power, so the marginal cost of a byte is lower."""

    def __post_init__(self) -> None:
        _check_finite_non_negative(self, "cross_node_call_latency_seconds", "network_energy_joules_per_byte")


@dataclass(frozen=True, kw_only=True)
class RewardConfig:
    """Weights of the reward terms (:mod:`thrifty.reward`).

    The reward is ``-(w * energy + (1 - w) * slo + disruption)`` with ``w`` the workload's
    ``energyWeight``; see :mod:`thrifty.reward` for each term.
    """

    energy_reference_watts: float = 50.0
    """Default divisor of a workload's attributed watts: the energy term is 1 at this power. An
    assumption (a workload of a few pods on a medium node draws tens of watts); environments
    should pass a per-workload reference, such as its watts under a baseline, instead."""
    energy_term_cap: float = 10.0
    """Largest energy term, so one runaway workload cannot swamp the reward."""
    slo_violation_penalty: float = 1.0
    """Added to the SLO term whenever p95 exceeds the SLO: a violation costs a step, not only
    its size, so the policy cannot hover just above the target for free."""
    slo_excess_cap: float = 4.0
    """Largest value of the relative excess ``p95 / SLO - 1`` counted (a saturated workload
    hits it)."""
    oom_kill_penalty: float = 1.0
    """Cost of one OOM kill (the pod restarts and its requests fail)."""
    throttling_penalty: float = 1.0
    """Cost per unit of throttled fraction (CPU demand denied by the limit, 0 to 1)."""
    eviction_penalty: float = 1.0
    """Cost of one eviction (the pod is deleted and replaced elsewhere)."""
    churn_penalty: float = 0.05
    """Cost of one pod created, deleted or resized by a decision: small, so that needed changes
    happen but flapping does not pay."""

    def __post_init__(self) -> None:
        _check_finite_positive(self, "energy_reference_watts", "energy_term_cap")
        _check_finite_non_negative(
            self,
            "slo_violation_penalty",
            "slo_excess_cap",
            "oom_kill_penalty",
            "throttling_penalty",
            "eviction_penalty",
            "churn_penalty",
        )


@dataclass(frozen=True, kw_only=True)
class MigrationConfig:
    """What moving a pod costs in the simulator (:mod:`thrifty.sim.migration`).

    None of the traces records how long a pod takes to start or to warm up, so both are
    assumptions (docs/models.md, section 5).
    """

    startup_seconds: float = 30.0
    """Time from binding a replacement pod until it serves: image already on the node, container
    start and a readiness probe. The pod does not run while it lasts, rounded up to whole steps
    (a pod runs in a step only when its start-up is over at the step's start)."""
    warmup_seconds: float = 300.0
    """After the start-up, time for which the replacement serves slower (cold caches, JIT,
    connection pools): its lost warm state."""
    warmup_service_rate_fraction: float = 0.7
    """Fraction of its normal service rate a warming replacement serves at (1 = no penalty)."""

    def __post_init__(self) -> None:
        _check_finite_non_negative(self, "startup_seconds", "warmup_seconds")
        if not 0.0 < self.warmup_service_rate_fraction <= 1.0:
            _fail(self, "warmup_service_rate_fraction", f"must be in (0, 1], got {self.warmup_service_rate_fraction!r}")


@dataclass(frozen=True, kw_only=True)
class SimulatorConfig:
    """Dynamics of the trace-driven cluster simulator (:mod:`thrifty.sim`)."""

    step_seconds: float = 60.0
    """Length of one simulation step; the scenario's series must use the same step."""
    history_window_samples: int = 60
    """Usage samples per container kept for snapshots (the feature module's window)."""
    standby_after_idle_seconds: float = 600.0
    """An empty node enters standby once it has been empty this long (``inf`` never). An
    assumption: long enough that a brief gap between pods does not power-cycle a node."""
    wake_delay_seconds: float = 120.0
    """Time from binding a pod to a standby node until the node runs pods. An assumption
    between resume from suspend (seconds) and a cold server boot plus kubelet start (minutes)."""
    restart_backoff_initial_seconds: float = 10.0
    """Delay before an OOM-killed container restarts; doubles with each consecutive kill
    (kubelet's CrashLoopBackOff starts at 10 s)."""
    restart_backoff_max_seconds: float = 300.0
    """Cap on the restart delay (kubelet's CrashLoopBackOff caps at 5 minutes)."""
    cfs_period_seconds: float = 0.1
    """CFS quota period, for counting throttled periods (Linux and kubelet default 100 ms)."""
    poisson_arrivals: bool = True
    """Draw each step's request count from a Poisson law around the trace's rate (the only
    randomness of the dynamics); False uses the trace's rate exactly."""
    latency: LatencyModelConfig = field(default_factory=LatencyModelConfig)
    """The response-time model."""
    network: NetworkModelConfig = field(default_factory=NetworkModelConfig)
    """The cross-node call model."""
    migration: MigrationConfig = field(default_factory=MigrationConfig)
    """What evicting and re-placing a pod costs (:meth:`thrifty.sim.Simulator.migrate`)."""

    def __post_init__(self) -> None:
        _check_finite_positive(self, "step_seconds", "restart_backoff_initial_seconds", "cfs_period_seconds")
        if self.history_window_samples < 1:
            _fail(self, "history_window_samples", f"must be >= 1, got {self.history_window_samples!r}")
        if math.isnan(self.standby_after_idle_seconds) or self.standby_after_idle_seconds < 0:
            _fail(self, "standby_after_idle_seconds", f"must be >= 0 or inf, got {self.standby_after_idle_seconds!r}")
        _check_finite_non_negative(self, "wake_delay_seconds")
        if not (math.isfinite(self.restart_backoff_max_seconds)
                and self.restart_backoff_max_seconds >= self.restart_backoff_initial_seconds):
            _fail(
                self,
                "restart_backoff_max_seconds",
                f"must be finite and >= restart_backoff_initial_seconds, got {self.restart_backoff_max_seconds!r}",
            )
        if not isinstance(self.latency, LatencyModelConfig):
            _fail(self, "latency", f"must be a LatencyModelConfig, got {type(self.latency).__name__}")
        if not isinstance(self.network, NetworkModelConfig):
            _fail(self, "network", f"must be a NetworkModelConfig, got {type(self.network).__name__}")
        if not isinstance(self.migration, MigrationConfig):
            _fail(self, "migration", f"must be a MigrationConfig, got {type(self.migration).__name__}")


@dataclass(frozen=True, kw_only=True)
class ScenarioConfig:
    """How :func:`thrifty.sim.build_scenario` turns traces into a scenario.

    The traces give the shapes (nodes, dependencies, load over time); these fields give the
    scales that the traces lack. Every one of them is an assumption, stated here so that a
    scenario can be reproduced and varied; ``docs/models.md`` discusses them.
    """

    n_nodes: int = 16
    """Nodes sampled from the node inventory (with replacement when it has fewer)."""
    n_applications: int = 4
    """Call graphs (one per entry service) turned into applications of workloads."""
    max_workloads_per_application: int = 16
    """Only call graphs with at most this many microservices become applications. The traces
    hold graphs of up to ~50 services; capping keeps a scenario's workload count within what a
    policy's observation is padded to, and within what a small cluster can hold."""
    step_seconds: float = 60.0
    """Step of every series; must equal the simulator's ``step_seconds``."""
    horizon_seconds: float = 86_400.0
    """Length of the series; the simulator wraps around after it."""
    history_seconds: float = 0.0
    """Seconds at the start of the horizon that lie before the run: the series' shapes are
    normalised to mean 1 over them, so the run's part never scales what comes before it (0:
    over the whole horizon)."""
    entry_request_rate_range_per_second: tuple[float, float] = (5.0, 50.0)
    """Mean request rate into an application, drawn log-uniformly per application; the
    request-rate trace is normalised to mean 1 and scaled to it."""
    service_cpu_per_request_millicore_seconds: tuple[float, float] = (2.0, 20.0)
    """CPU per request of an RPC/HTTP microservice (2 to 20 ms of one core), log-uniform."""
    cache_cpu_per_request_millicore_seconds: tuple[float, float] = (0.02, 0.2)
    """CPU per request of a memcached microservice (20 to 200 us of one core), log-uniform."""
    database_cpu_per_request_millicore_seconds: tuple[float, float] = (1.0, 10.0)
    """CPU per request of a database microservice, log-uniform."""
    baseline_cpu_millicores: float = 50.0
    """Mean per-pod CPU used whatever the load (runtime, GC, sidecars); the container CPU trace
    gives its shape over time."""
    memory_per_pod_range_bytes: tuple[float, float] = (128 * MEBIBYTE, 2 * GIBIBYTE)
    """Mean memory of a pod, log-uniform per workload; the memory trace gives the shape."""
    pod_cpu_target_millicores: float = 500.0
    """Request-driven CPU one initial replica is sized for; sets the initial replica count."""
    initial_cpu_utilisation_target: float = 0.5
    """Initial replicas keep the p95 request-driven demand at this fraction of their CPU."""
    initial_cpu_limit_ratio: float = 2.0
    """Initial CPU limit as a multiple of the CPU request (``inf``: no limit)."""
    initial_memory_headroom: float = 0.2
    """Initial memory request is the series' peak times ``1 + headroom``; the limit equals it."""
    replicas_max: int = 20
    """Upper replica bound of a workload (raised to its initial replicas if those are more)."""
    slo_service_time_multiple: float = 10.0
    """SLO as a multiple of the service time at the initial per-pod CPU."""
    slo_min_seconds: float = 0.005
    """Floor on an SLO."""
    energy_weight_range: tuple[float, float] = (0.2, 0.8)
    """``energyWeight`` of an application's workloads, uniform per application."""
    bytes_per_call: float = 4096.0
    """Request plus response bytes of one call. The call-graph trace has no payload sizes:
    an assumption for small RPC and cache payloads."""
    n_background_pods: int = 0
    """Pods taken from the pod stream (a consecutive run, from a seeded offset); 0 for none."""
    background_time_scale: float = 1.0
    """Simulated seconds per trace second for background arrivals and departures."""
    background_cpu_utilisation: float = 0.5
    """Background pod CPU usage as a fraction of its request (the pod stream has no usage)."""
    background_memory_utilisation: float = 0.6
    """Background pod memory usage as a fraction of its request."""

    def __post_init__(self) -> None:
        for name in ("n_nodes", "n_applications", "replicas_max", "max_workloads_per_application"):
            if getattr(self, name) < 1:
                _fail(self, name, f"must be >= 1, got {getattr(self, name)!r}")
        if self.n_background_pods < 0:
            _fail(self, "n_background_pods", f"must be >= 0, got {self.n_background_pods!r}")
        _check_finite_positive(
            self,
            "step_seconds",
            "horizon_seconds",
            "pod_cpu_target_millicores",
            "slo_service_time_multiple",
            "slo_min_seconds",
            "background_time_scale",
        )
        if self.horizon_seconds < self.step_seconds:
            _fail(self, "horizon_seconds", f"must be >= step_seconds, got {self.horizon_seconds!r}")
        if not 0.0 <= self.history_seconds < self.horizon_seconds:
            _fail(self, "history_seconds", f"must be >= 0 and < horizon_seconds, got {self.history_seconds!r}")
        _check_finite_non_negative(
            self, "baseline_cpu_millicores", "initial_memory_headroom", "bytes_per_call"
        )
        _check_range(
            self,
            "entry_request_rate_range_per_second",
            "service_cpu_per_request_millicore_seconds",
            "cache_cpu_per_request_millicore_seconds",
            "database_cpu_per_request_millicore_seconds",
            "memory_per_pod_range_bytes",
        )
        for name in (
            "entry_request_rate_range_per_second",
            "service_cpu_per_request_millicore_seconds",
            "cache_cpu_per_request_millicore_seconds",
            "database_cpu_per_request_millicore_seconds",
            "memory_per_pod_range_bytes",
        ):
            if getattr(self, name)[0] <= 0:
                _fail(self, name, f"must be > 0 (drawn log-uniformly), got {getattr(self, name)!r}")
        _check_range(self, "energy_weight_range", high=1.0)
        for name in ("initial_cpu_utilisation_target", "background_cpu_utilisation", "background_memory_utilisation"):
            value = getattr(self, name)
            if not 0.0 < value <= 1.0:
                _fail(self, name, f"must lie in (0, 1], got {value!r}")
        if math.isnan(self.initial_cpu_limit_ratio) or self.initial_cpu_limit_ratio < 1.0:
            _fail(self, "initial_cpu_limit_ratio", f"must be >= 1 or inf, got {self.initial_cpu_limit_ratio!r}")

