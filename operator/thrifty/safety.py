"""The safety pipeline: every policy output passes through here before anything is applied.

It runs after the policy and does not trust it. In order:

1. **Validate**: a non-finite score, a wrong shape or an out-of-range action index is a broken
   output. The caller then falls back to the heuristic for that decision.
2. **Bound**: replicas within ``[min, max]``; requests within the container's bounds and above
   absolute floors; limits never below requests.
3. **Limit the step**: at most ``max_replica_step`` replicas and a factor
   ``max_resource_step_ratio`` of change per step; changes under ``min_resource_change_fraction``
   are dropped (hysteresis, so noise does not resize pods).
4. **Rate-limit churn**: cooldowns per workload and kind, with the HPA's 300 s scale-down
   stabilisation window by default.
5. **Check capacity**: never bind to a node without room; never grow a pod beyond what its node
   has free; never add more pods than the cluster can hold.

Everything here is pure: the churn ledger comes in and a new one goes out.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from thrifty.actions import ContainerResources
from thrifty.snapshot import ClusterSnapshot

MEBIBYTE = 2**20


@dataclass(frozen=True, kw_only=True)
class SafetyConfig:
    """Bounds on how far and how often decisions may move."""

    max_replica_step: int = 2
    """Most replicas added or removed in one step."""
    max_resource_step_ratio: float = 2.0
    """A request may at most double or halve in one step."""
    min_resource_change_fraction: float = 0.1
    """Relative request changes smaller than this are not applied."""
    scale_out_cooldown_seconds: float = 30.0
    """Least time between two scale-outs of one workload."""
    scale_in_cooldown_seconds: float = 300.0
    """Least time after any scaling before a scale-in (the HPA's scale-down window)."""
    resize_cooldown_seconds: float = 60.0
    """Least time between two resizes of one workload."""
    min_cpu_millicores: float = 10.0
    """Floor on a CPU request, whatever the bounds say."""
    min_memory_bytes: float = 16 * MEBIBYTE
    """Floor on a memory request, whatever the bounds say."""

    def __post_init__(self) -> None:
        if self.max_replica_step < 1:
            raise ValueError(f"SafetyConfig.max_replica_step: must be >= 1, got {self.max_replica_step}")
        if self.max_resource_step_ratio <= 1.0:
            raise ValueError(
                f"SafetyConfig.max_resource_step_ratio: must be > 1, got {self.max_resource_step_ratio}"
            )
        for name in ("min_resource_change_fraction", "scale_out_cooldown_seconds",
                     "scale_in_cooldown_seconds", "resize_cooldown_seconds",
                     "min_cpu_millicores", "min_memory_bytes"):
            if getattr(self, name) < 0:
                raise ValueError(f"SafetyConfig.{name}: must be >= 0, got {getattr(self, name)}")


@dataclass(frozen=True)
class ChurnLedger:
    """When each workload was last scaled or resized (seconds, snapshot clock)."""

    last_scale_out: dict[str, float] = field(default_factory=dict)
    last_scale_in: dict[str, float] = field(default_factory=dict)
    last_resize: dict[str, float] = field(default_factory=dict)

    def record(self, *, workload: str, time_seconds: float, scaled_by: int, resized: bool) -> ChurnLedger:
        """A new ledger with this step's changes to ``workload`` recorded."""
        out, into, resize = dict(self.last_scale_out), dict(self.last_scale_in), dict(self.last_resize)
        if scaled_by > 0:
            out[workload] = time_seconds
        elif scaled_by < 0:
            into[workload] = time_seconds
        if resized:
            resize[workload] = time_seconds
        return ChurnLedger(out, into, resize)


class InvalidPolicyOutput(ValueError):
    """The policy returned something unusable; the caller falls back to the heuristic."""


def feasible_nodes(snapshot: ClusterSnapshot, cpu_millicores: float, memory_bytes: float) -> np.ndarray:
    """bool (nodes,): schedulable nodes with room for these requests."""
    nodes = snapshot.nodes
    return (
        nodes.schedulable
        & (nodes.cpu_capacity_millicores > 0)
        & (nodes.cpu_free_millicores >= cpu_millicores)
        & (nodes.memory_free_bytes >= memory_bytes)
    )


def choose_node(snapshot: ClusterSnapshot, pod: int, scores: np.ndarray) -> int:
    """The best feasible node for Pending pod row ``pod``, or -1 when none has room.

    Raises :class:`InvalidPolicyOutput` when ``scores`` has the wrong shape or a feasible node
    has a non-finite score.
    """
    scores = np.asarray(scores, dtype=float)
    if scores.shape != (len(snapshot.nodes),):
        raise InvalidPolicyOutput(
            f"node scores: expected shape ({len(snapshot.nodes)},), got {scores.shape}"
        )
    fits = feasible_nodes(
        snapshot, snapshot.pods.cpu_request_millicores[pod], snapshot.pods.memory_request_bytes[pod]
    )
    if not fits.any():
        return -1
    if not np.all(np.isfinite(scores[fits])):
        raise InvalidPolicyOutput("node scores: NaN or infinite score for a feasible node")
    return int(np.flatnonzero(fits)[np.argmax(scores[fits])])


@dataclass(frozen=True)
class ReplicaVerdict:
    """The replica count after the safety pipeline, with the reason it differs from the ask."""

    target: int
    limited_by: str | None
    """None when the ask stands; else a short phrase for the explanation."""


def bound_replicas(
    *,
    workload: str,
    current: int,
    asked: int,
    minimum: int,
    maximum: int,
    room_for_new_pods: int,
    now_seconds: float,
    ledger: ChurnLedger,
    config: SafetyConfig,
) -> ReplicaVerdict:
    """Apply bounds, the step limit, cooldowns and the capacity check to a replica ask."""
    # Bounds first: a workload below min or above max is brought back even during a cooldown.
    if current < minimum:
        return ReplicaVerdict(min(minimum, current + room_for_new_pods), "replicas.min")
    if current > maximum:
        return ReplicaVerdict(maximum, "replicas.max")
    target, limited_by = asked, None
    if target > maximum or target < minimum:
        target, limited_by = int(np.clip(target, minimum, maximum)), "replicas bounds"
    if abs(target - current) > config.max_replica_step:
        target = current + config.max_replica_step * int(np.sign(target - current))
        limited_by = "step limit"
    if target > current:
        if now_seconds - ledger.last_scale_out.get(workload, -np.inf) < config.scale_out_cooldown_seconds:
            return ReplicaVerdict(current, "scale-out cooldown")
        if target - current > room_for_new_pods:
            target, limited_by = current + room_for_new_pods, "cluster capacity"
    elif target < current:
        last_change = max(ledger.last_scale_out.get(workload, -np.inf), ledger.last_scale_in.get(workload, -np.inf))
        if now_seconds - last_change < config.scale_in_cooldown_seconds:
            return ReplicaVerdict(current, "scale-in stabilisation window")
    return ReplicaVerdict(int(target), limited_by)


@dataclass(frozen=True)
class ResourceBounds:
    """Vertical bounds of one container (NaN: unbounded on that side)."""

    cpu_min_millicores: float
    cpu_max_millicores: float
    memory_min_bytes: float
    memory_max_bytes: float


def _bound_one(current: float, asked: float, lower: float, upper: float,
               config: SafetyConfig) -> tuple[float, str | None]:
    """One request through step limit, bounds and hysteresis. Bounds win over the step limit.

    A request of 0 stays 0: setting one would change the pod's QoS class, which an in-place
    resize may not do (the API server refuses it).
    """
    if current <= 0:
        return current, None
    limited_by = None
    value = asked
    if current > 0:
        low, high = current / config.max_resource_step_ratio, current * config.max_resource_step_ratio
        if not low <= value <= high:
            value, limited_by = float(np.clip(value, low, high)), "step limit"
    if np.isfinite(lower) and value < lower:
        value, limited_by = lower, "spec minimum"
    if np.isfinite(upper) and value > upper:
        value, limited_by = upper, "spec maximum"
    inside_bounds = (not np.isfinite(lower) or current >= lower) and (not np.isfinite(upper) or current <= upper)
    if current > 0 and inside_bounds and abs(value - current) / current < config.min_resource_change_fraction:
        return current, None
    return value, limited_by


def bound_resources(
    *,
    current: ContainerResources,
    asked: ContainerResources,
    bounds: ResourceBounds,
    node_cpu_free_millicores: float,
    node_memory_free_bytes: float,
    config: SafetyConfig,
) -> tuple[ContainerResources, str | None]:
    """Bound a container resize. ``node_*_free`` is the least free room among the nodes of the
    pods being resized (all pods of a workload share one size); growth beyond it is cut."""
    cpu_lower = np.fmax(bounds.cpu_min_millicores, config.min_cpu_millicores)
    memory_lower = np.fmax(bounds.memory_min_bytes, config.min_memory_bytes)
    cpu, cpu_why = _bound_one(current.cpu_request_millicores, asked.cpu_request_millicores,
                              cpu_lower, bounds.cpu_max_millicores, config)
    memory, memory_why = _bound_one(current.memory_request_bytes, asked.memory_request_bytes,
                                    memory_lower, bounds.memory_max_bytes, config)
    limited_by = cpu_why or memory_why
    if cpu - current.cpu_request_millicores > node_cpu_free_millicores:
        # Rounded down: the request is rounded to whole units below, and must still fit.
        cpu = np.floor(current.cpu_request_millicores + max(node_cpu_free_millicores, 0.0))
        limited_by = "node capacity"
    if memory - current.memory_request_bytes > node_memory_free_bytes:
        memory = np.floor(current.memory_request_bytes + max(node_memory_free_bytes, 0.0))
        limited_by = "node capacity"
    cpu_limit = asked.cpu_limit_millicores if cpu != current.cpu_request_millicores else current.cpu_limit_millicores
    memory_limit = asked.memory_limit_bytes if memory != current.memory_request_bytes else current.memory_limit_bytes
    # Limits scale with requests (proportional), but a clamp may have moved the request under
    # them: a limit is never below its request. An asked request under one unit (millicore, byte)
    # rounds to nothing and carries no ratio: dividing by it would overflow to an infinite limit.
    if np.isfinite(cpu_limit) and asked.cpu_request_millicores >= 1.0 and cpu != current.cpu_request_millicores:
        cpu_limit = cpu * asked.cpu_limit_millicores / asked.cpu_request_millicores
    if np.isfinite(memory_limit) and asked.memory_request_bytes >= 1.0 and memory != current.memory_request_bytes:
        memory_limit = memory * asked.memory_limit_bytes / asked.memory_request_bytes
    result = ContainerResources(
        cpu_request_millicores=float(round(cpu)),
        cpu_limit_millicores=float(max(round(cpu_limit), round(cpu))) if np.isfinite(cpu_limit) else np.inf,
        memory_request_bytes=float(round(memory)),
        memory_limit_bytes=float(max(round(memory_limit), round(memory))) if np.isfinite(memory_limit) else np.inf,
    )
    if result.cpu_request_millicores == round(current.cpu_request_millicores) and \
            result.memory_request_bytes == round(current.memory_request_bytes):
        return replace(result, cpu_limit_millicores=current.cpu_limit_millicores,
                       memory_limit_bytes=current.memory_limit_bytes,
                       cpu_request_millicores=current.cpu_request_millicores,
                       memory_request_bytes=current.memory_request_bytes), limited_by
    return result, limited_by


def resize_allowed(*, workload: str, now_seconds: float, ledger: ChurnLedger, config: SafetyConfig) -> bool:
    """Whether the resize cooldown of ``workload`` has passed."""
    return now_seconds - ledger.last_resize.get(workload, -np.inf) >= config.resize_cooldown_seconds


def room_for_pods(snapshot: ClusterSnapshot, cpu_millicores: float, memory_bytes: float) -> int:
    """How many more pods of this size the schedulable nodes can hold, by requests."""
    nodes = snapshot.nodes
    usable = nodes.schedulable & (nodes.cpu_capacity_millicores > 0)
    cpu_free = np.maximum(nodes.cpu_free_millicores[usable], 0.0)
    memory_free = np.maximum(nodes.memory_free_bytes[usable], 0.0)
    by_cpu = np.floor(cpu_free / cpu_millicores) if cpu_millicores > 0 else np.full(cpu_free.shape, np.inf)
    by_memory = np.floor(memory_free / memory_bytes) if memory_bytes > 0 else np.full(memory_free.shape, np.inf)
    per_node = np.minimum(by_cpu, by_memory)
    total = per_node.sum()
    return int(min(total, 10**6))
