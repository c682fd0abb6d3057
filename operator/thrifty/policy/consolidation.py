"""Consolidation: which under-used nodes to drain, when, and where their pods go.

Two stages, as for sizing (a policy proposes, the safety pipeline disposes):

1. **The policy proposes** :class:`DrainProposal` s: a node and where each of its pods should go.
   :func:`propose_drains` is the heuristic's rule: every awake node whose requested CPU and
   memory are both below ``under_used_fraction`` of its capacity is proposed, fewest pods first
   (then least used), its pods (largest CPU request first) best-fit onto the fullest staying
   node that keeps them within ``target_max_cpu_fraction`` of its CPU
   (:func:`pack_by_requests`). A learned policy may propose anything.
2. **The budget stage admits** (:func:`admit_drains`): it takes *any* proposals, garbage
   included, and admits a drain only when every rule holds, in this order (the first that
   fails is the reason recorded):

   * the node exists, is awake, schedulable, not already draining and proposed once
     (``invalid``); it receives no pods in this round (``receiving``);
   * fewer than ``max_draining_nodes`` nodes are draining (``budget-draining``);
   * the node holds pods and the moves name exactly them (``invalid``), each with a controller
     (``no-controller``), each to another awake node that is not draining, not being drained in
     this round, with room for its requests after the moves admitted before it (``no-room``);
   * the evictions of the last 60 s plus these stay within ``max_evictions_per_minute``
     (``budget-evictions``);
   * per workload: its PDB allows the evictions (``pdb``: ready pods minus those moved stay at
     least ``replicas - maxUnavailable``), at least one ready replica is left (``last-replica``),
     and its p95 latency is at most ``max_latency_slo_ratio`` of its SLO, since a replica out for
     its start-up raises it (``slo``);
   * the saving exceeds the cost (``not-worth``), both in joules over ``horizon_seconds``: the
     saving is the node's idle minus standby power for the horizon minus the idle period before
     standby; the cost is, per pod moved, ``disruption_joules_per_move`` plus the energy of its
     start-up (its CPU request for ``startup_seconds``) and of its warm-up (the extra CPU of
     serving at ``warmup_service_rate_fraction`` for ``warmup_seconds``), at the target node's
     marginal watts per millicore;
   * hysteresis: the staying awake nodes still hold the next horizon's forecast demand with
     ``forecast_headroom_fraction`` to spare (``forecast``). The forecast (:func:`forecast_demand`)
     uses only the cluster's requested CPU and memory observed up to the decision: the peak of
     the last horizon plus its rising trend over the next (infinite, so no drain, until the
     history spans ``min_history_seconds``).

   A drain is all or nothing: a node sleeps only when empty, so moving some of its pods would
   pay the cost for no saving.

Every proposal, and every under-used node the policy did not propose, gets a
:class:`DrainExplanation` with the numbers (watts saved, pods moved, what blocked it), which the
operator can turn into Events and status lines.

:class:`Consolidator` is the stateful driver (nodes draining, eviction times, the demand
history); everything else is pure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from thrifty.actions import SizingProposal
from thrifty.energy import PowerModel, PowerProfile
from thrifty.policy.base import Policy, PolicyInfo
from thrifty.snapshot import UNBOUND, ClusterSnapshot

EVICTION_WINDOW_SECONDS = 60.0
"""The window of ``max_evictions_per_minute``."""

CORDONED_PENALTY = 2e6
"""Taken off a cordoned node's placement score: more than any policy's score range, so a
cordoned node is chosen only when no other node fits (a last resort, as for the baselines'
tainted nodes in :mod:`thrifty.baselines.cluster_autoscaler`)."""


@dataclass(frozen=True, kw_only=True)
class DisruptionBudget:
    """How much disruption consolidation may cause."""

    max_draining_nodes: int = 1
    """Nodes cordoned for a drain at once (a drained node counts until it is in standby)."""
    max_evictions_per_minute: int = 10
    """Evictions in any 60 s window."""

    def __post_init__(self) -> None:
        if self.max_draining_nodes < 0 or self.max_evictions_per_minute < 0:
            raise ValueError(f"DisruptionBudget: limits must be >= 0, got {self}")


@dataclass(frozen=True, kw_only=True)
class ConsolidationConfig:
    """The consolidation rule's thresholds and prices (see the module docstring)."""

    budget: DisruptionBudget = field(default_factory=DisruptionBudget)
    """The disruption budget."""
    under_used_fraction: float = 0.5
    """A node whose requested CPU and memory are both below this fraction of its capacity is
    under-used (the Cluster Autoscaler's default scale-down threshold)."""
    target_max_cpu_fraction: float = 0.85
    """The proposer moves pods only onto nodes whose load (the larger of requested and used CPU)
    stays within this fraction of their CPU after the move."""
    horizon_seconds: float = 3600.0
    """Horizon of the saving and of the forecast (the next hour)."""
    standby_after_idle_seconds: float = 600.0
    """Idle time before an emptied node goes to standby (the simulator's
    ``standby_after_idle_seconds``): it still draws idle power that long."""
    disruption_joules_per_move: float = 20_000.0
    """The price of one pod's disruption (a restart of one replica), in joules, so that it
    compares with the saving: 20 kJ is a 110 W node's idle power for 3 minutes."""
    startup_seconds: float = 30.0
    """A moved pod's start-up, for its energy cost (the simulator's ``MigrationConfig``)."""
    warmup_seconds: float = 300.0
    """A moved pod's warm-up, for its energy cost."""
    warmup_service_rate_fraction: float = 0.7
    """Service rate of a warming pod: it spends ``1 / fraction - 1`` more CPU per request."""
    max_latency_slo_ratio: float = 0.8
    """Pods of a workload whose p95 latency is above this fraction of its SLO are not moved."""
    forecast_headroom_fraction: float = 0.1
    """Capacity kept above the forecast demand."""
    min_history_seconds: float = 600.0
    """No drain until the observed demand history spans this long: a shorter one says nothing
    about the next hour (the forecast is then infinite)."""

    def __post_init__(self) -> None:
        for name in ("under_used_fraction", "target_max_cpu_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"ConsolidationConfig.{name}: must be in [0, 1], got {getattr(self, name)!r}")
        for name in ("horizon_seconds", "standby_after_idle_seconds", "disruption_joules_per_move",
                     "startup_seconds", "warmup_seconds", "max_latency_slo_ratio", "forecast_headroom_fraction",
                     "min_history_seconds"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value >= 0):
                raise ValueError(f"ConsolidationConfig.{name}: must be finite and >= 0, got {value!r}")
        if not 0.0 < self.warmup_service_rate_fraction <= 1.0:
            raise ValueError("ConsolidationConfig.warmup_service_rate_fraction: must be in (0, 1], "
                             f"got {self.warmup_service_rate_fraction!r}")


@dataclass(frozen=True)
class Move:
    """One pod to evict and where its replacement should go."""

    pod: int
    """Pod row in the snapshot."""
    target: int
    """Node row, or ``UNBOUND`` when the proposer found no room."""


@dataclass(frozen=True)
class DrainProposal:
    """A node to drain and where its pods go (from a policy; not yet checked)."""

    node: int
    """Node row in the snapshot."""
    moves: tuple[Move, ...]
    """Every pod on the node and its target (the budget stage refuses a partial set)."""


@dataclass(frozen=True)
class Demand:
    """Cluster-wide requested CPU and memory."""

    cpu_millicores: float
    """Sum of the CPU requests."""
    memory_bytes: float
    """Sum of the memory requests."""


@dataclass(frozen=True)
class DrainExplanation:
    """Why a node was, or was not, drained: the numbers behind the decision."""

    node: str
    """Node name (``#row`` for a proposal naming no node)."""
    drained: bool
    """True when the drain was admitted."""
    reason: str
    """``drained``, or what blocked it: ``invalid``, ``budget-draining``, ``no-controller``,
    ``no-room``, ``receiving``, ``budget-evictions``, ``pdb``, ``last-replica``, ``slo``,
    ``not-worth``, ``forecast``, ``not-proposed``."""
    message: str
    """One line with the numbers, for an Event or a status line."""
    pods_moved: int
    """Pods the drain moves (or would have moved)."""
    watts_saved: float
    """Idle minus standby power of the node once it sleeps."""
    saving_joules: float
    """Energy saved over the horizon (0 where not computed)."""
    cost_joules: float
    """Cost of the moves (0 where not computed)."""
    blocked_by: str | None = None
    """The budget, workload (PDB, last replica, SLO) or node that blocked it, if any."""


@dataclass(frozen=True)
class ConsolidationPlan:
    """What :func:`admit_drains` decided."""

    drains: tuple[DrainProposal, ...]
    """Admitted drains, moves validated (every target a node row)."""
    explanations: tuple[DrainExplanation, ...]
    """One per proposal, then one per under-used node no proposal named."""

    @property
    def evictions(self) -> int:
        return sum(len(d.moves) for d in self.drains)


# ------------------------------------------------------------------------------- helpers


def requested_fractions(snapshot: ClusterSnapshot) -> tuple[np.ndarray, np.ndarray]:
    """(nodes,) requested CPU and memory over capacity (1 where a node has no capacity)."""
    nodes = snapshot.nodes
    with np.errstate(divide="ignore", invalid="ignore"):
        cpu = np.where(nodes.cpu_capacity_millicores > 0,
                       nodes.cpu_requested_millicores / nodes.cpu_capacity_millicores, 1.0)
        memory = np.where(nodes.memory_capacity_bytes > 0,
                          nodes.memory_requested_bytes / nodes.memory_capacity_bytes, 1.0)
    return cpu, memory


def awake_nodes(snapshot: ClusterSnapshot) -> np.ndarray:
    """bool (nodes,): schedulable, with capacity and not in standby."""
    nodes = snapshot.nodes
    return nodes.schedulable & ~nodes.standby & (nodes.cpu_capacity_millicores > 0)


def pack_by_requests(cpu_millicores: np.ndarray, memory_bytes: np.ndarray, free_cpu_millicores: np.ndarray,
                     free_memory_bytes: np.ndarray, capacity_cpu_millicores: np.ndarray) -> np.ndarray:
    """Target node of each pod, in the order given (``UNBOUND`` where none has room).

    A pod fits a node whose free CPU and memory hold its requests; it goes to the fitting node of
    least free CPU over capacity (best fit: pack the fullest, lowest index among equals), and uses
    up that room for the next pods. Nodes with ``-inf`` free capacity never fit. The free arrays
    are not modified.
    """
    free_cpu = np.array(free_cpu_millicores, dtype=float)
    free_memory = np.array(free_memory_bytes, dtype=float)
    targets = np.full(len(cpu_millicores), UNBOUND, dtype=np.int64)
    for i, (cpu, memory) in enumerate(zip(np.asarray(cpu_millicores).tolist(), np.asarray(memory_bytes).tolist(),
                                          strict=True)):
        fits = np.flatnonzero((free_cpu >= cpu) & (free_memory >= memory))
        if len(fits) == 0:
            continue
        chosen = int(fits[np.argmin(free_cpu[fits] / np.maximum(capacity_cpu_millicores[fits], 1.0))])
        targets[i] = chosen
        free_cpu[chosen] -= cpu
        free_memory[chosen] -= memory
    return targets


def _profiles(power_model: PowerModel, snapshot: ClusterSnapshot) -> list[PowerProfile]:
    return [power_model.profiles.get(c) or power_model.profiles[power_model.default_class]
            for c in snapshot.nodes.power_class]


def sleep_watts(power_model: PowerModel, snapshot: ClusterSnapshot) -> np.ndarray:
    """(nodes,) idle minus standby power: what a node saves while asleep rather than idle."""
    return np.array([p.idle_watts - p.standby_watts for p in _profiles(power_model, snapshot)])


def marginal_watts_per_millicore(power_model: PowerModel, snapshot: ClusterSnapshot) -> np.ndarray:
    """(nodes,) (peak - idle) / CPU capacity: the power of one more millicore, linearised."""
    capacity = np.maximum(snapshot.nodes.cpu_capacity_millicores, 1.0)
    return np.array([p.peak_watts - p.idle_watts for p in _profiles(power_model, snapshot)]) / capacity


def forecast_demand(times_seconds: Sequence[float], cpu_millicores: Sequence[float], memory_bytes: Sequence[float],
                    now_seconds: float, horizon_seconds: float) -> Demand:
    """Demand to plan for over the next ``horizon_seconds``, from samples taken up to now.

    Per resource: the peak of the samples within the last horizon, plus the least-squares slope
    of those samples times the horizon when it is rising (a rising load is expected to go on
    rising). Samples after ``now_seconds`` are ignored: only the past is known at decision time.
    No samples: zero demand.
    """
    t = np.asarray(times_seconds, dtype=float)
    keep = (t <= now_seconds) & (t > now_seconds - horizon_seconds)

    def one(values: Sequence[float]) -> float:
        v = np.asarray(values, dtype=float)[keep]
        if len(v) == 0:
            return 0.0
        peak = float(v.max())
        if len(v) < 2 or np.ptp(t[keep]) <= 0:
            return peak
        slope = float(np.polyfit(t[keep], v, 1)[0])
        return peak + max(slope, 0.0) * horizon_seconds

    return Demand(one(cpu_millicores), one(memory_bytes))


def pod_ready(snapshot: ClusterSnapshot) -> np.ndarray:
    """bool (pods,): bound and ran in the last step (a pod starting or restarting has no usage)."""
    pods = snapshot.pods
    return (pods.node_index != UNBOUND) & np.isfinite(pods.cpu_usage_millicores)


# ------------------------------------------------------------------------------- stage 1


def propose_drains(snapshot: ClusterSnapshot, config: ConsolidationConfig,
                   draining: frozenset[str] = frozenset()) -> tuple[DrainProposal, ...]:
    """The heuristic's proposals: every under-used awake node not draining, its pods packed
    best-fit on the other staying nodes (see the module docstring)."""
    nodes, pods = snapshot.nodes, snapshot.pods
    cpu, memory = requested_fractions(snapshot)
    counts = snapshot.pods_per_node()
    is_draining = np.array([n in draining for n in nodes.names], dtype=bool)
    awake = awake_nodes(snapshot)
    under = awake & ~is_draining & (counts > 0) & (cpu < config.under_used_fraction) & \
        (memory < config.under_used_fraction)
    stays = awake & ~is_draining
    load = np.where(np.isnan(nodes.cpu_usage_millicores), nodes.cpu_requested_millicores,
                    np.maximum(nodes.cpu_usage_millicores, nodes.cpu_requested_millicores))
    capacity = nodes.cpu_capacity_millicores
    room_cpu = np.minimum(nodes.cpu_free_millicores, config.target_max_cpu_fraction * capacity - load)
    order = sorted(np.flatnonzero(under).tolist(), key=lambda n: (int(counts[n]), max(cpu[n], memory[n]), n))
    proposals = []
    for node in order:
        rows = np.flatnonzero(pods.node_index == node)
        rows = rows[np.argsort(-pods.cpu_request_millicores[rows], kind="stable")]
        others = stays.copy()
        others[node] = False
        targets = pack_by_requests(pods.cpu_request_millicores[rows], pods.memory_request_bytes[rows],
                                   np.where(others, room_cpu, -np.inf),
                                   np.where(others, nodes.memory_free_bytes, -np.inf), capacity)
        proposals.append(DrainProposal(node, tuple(Move(int(p), int(t)) for p, t in zip(rows, targets, strict=True))))
    return tuple(proposals)


# ------------------------------------------------------------------------------- stage 2


@dataclass(frozen=True)
class BudgetState:
    """What the budget stage needs to know about earlier decisions."""

    draining: frozenset[str] = frozenset()
    """Nodes drained or being drained, not yet in standby."""
    eviction_times_seconds: tuple[float, ...] = ()
    """Times of earlier evictions (those older than 60 s no longer count)."""


def admit_drains(snapshot: ClusterSnapshot, proposals: Sequence[DrainProposal], config: ConsolidationConfig,
                 state: BudgetState, forecast: Demand, power_model: PowerModel,
                 pdb_max_unavailable: Mapping[str, int] | None = None) -> ConsolidationPlan:
    """Admit the proposals that every rule allows, in the order given; explain every one.

    ``pdb_max_unavailable``: workload name -> its PDB's ``maxUnavailable`` (absent: no PDB).
    Pure: nothing is modified; the caller applies the plan and updates ``state``.
    """
    nodes, pods, workloads = snapshot.nodes, snapshot.pods, snapshot.workloads
    n_nodes = len(nodes)
    pdbs = pdb_max_unavailable or {}
    now = snapshot.time_seconds
    awake = awake_nodes(snapshot)
    draining = np.array([n in state.draining for n in nodes.names], dtype=bool)
    recent = sum(1 for t in state.eviction_times_seconds if now - t < EVICTION_WINDOW_SECONDS)
    sleep = sleep_watts(power_model, snapshot)
    marginal = marginal_watts_per_millicore(power_model, snapshot)
    ready = pod_ready(snapshot)
    n_workloads = len(workloads)
    ready_count = np.bincount(pods.workload_index[ready & (pods.workload_index >= 0)], minlength=n_workloads)
    latency_ratio = workloads.latency_p95_seconds / workloads.slo_latency_p95_seconds
    free_cpu = np.array(nodes.cpu_free_millicores, dtype=float)
    free_memory = np.array(nodes.memory_free_bytes, dtype=float)
    capacity_cpu = np.where(awake & ~draining, nodes.cpu_capacity_millicores, 0.0)
    capacity_memory = np.where(awake & ~draining, nodes.memory_capacity_bytes, 0.0)
    needed_cpu = forecast.cpu_millicores * (1.0 + config.forecast_headroom_fraction)
    needed_memory = forecast.memory_bytes * (1.0 + config.forecast_headroom_fraction)
    keep_seconds = max(config.horizon_seconds - config.standby_after_idle_seconds, 0.0)
    moved_of = np.zeros(n_workloads, dtype=np.int64)
    moved_ready_of = np.zeros(n_workloads, dtype=np.int64)
    admitted: list[DrainProposal] = []
    explanations: list[DrainExplanation] = []
    drained_now = np.zeros(n_nodes, dtype=bool)
    receiving = np.zeros(n_nodes, dtype=bool)
    evicted_now = 0
    proposed: set[int] = set()

    for proposal in proposals:
        node = int(proposal.node)
        if not 0 <= node < n_nodes:
            explanations.append(DrainExplanation(f"#{node}", False, "invalid", f"no node row {node}", 0, 0.0, 0.0, 0.0))
            continue
        name = nodes.names[node]
        watts = float(sleep[node])
        moves = proposal.moves

        def blocked(reason: str, message: str, by: str | None = None, saving: float = 0.0, cost: float = 0.0,
                    name: str = name, watts: float = watts, count: int = len(moves)) -> None:
            explanations.append(DrainExplanation(name, False, reason, f"not draining {name}: {message}", count, watts,
                                                 saving, cost, by))

        if node in proposed or not awake[node] or draining[node] or drained_now[node]:
            blocked("invalid", "not awake, already draining or proposed twice")
            continue
        proposed.add(node)
        if receiving[node]:
            blocked("receiving", "it receives pods of a drain admitted in this round", by=name)
            continue
        limit = config.budget.max_draining_nodes
        if int(np.count_nonzero(draining)) + len(admitted) >= limit:
            blocked("budget-draining", f"{int(np.count_nonzero(draining)) + len(admitted)} of at most {limit} "
                    "nodes already draining", by="maxDrainingNodes")
            continue
        on_node = np.flatnonzero(pods.node_index == node)
        if len(on_node) == 0:
            blocked("invalid", "it holds no pod (an empty node goes to standby by itself)")
            continue
        rows = np.array([m.pod for m in moves], dtype=np.int64)
        targets = np.array([m.target for m in moves], dtype=np.int64)
        if len(set(rows.tolist())) != len(rows) or set(rows.tolist()) != set(on_node.tolist()):
            blocked("invalid", f"the moves name {len(rows)} pods, the node holds {len(on_node)}")
            continue
        bare = rows[pods.workload_index[rows] < 0] if len(rows) else rows
        if len(bare):
            blocked("no-controller", f"pod {pods.names[int(bare[0])]} has no controller to re-create it",
                    by=pods.names[int(bare[0])])
            continue
        trial_cpu, trial_memory = free_cpu.copy(), free_memory.copy()
        room = True
        for p, t in zip(rows.tolist(), targets.tolist(), strict=True):
            valid = 0 <= t < n_nodes and t != node and awake[t] and not draining[t] and not drained_now[t]
            if not valid or trial_cpu[t] < pods.cpu_request_millicores[p] or \
                    trial_memory[t] < pods.memory_request_bytes[p]:
                blocked("no-room", f"pod {pods.names[p]} has no staying node with room "
                        f"({pods.cpu_request_millicores[p]:.0f}m CPU)", by=pods.names[p])
                room = False
                break
            trial_cpu[t] -= pods.cpu_request_millicores[p]
            trial_memory[t] -= pods.memory_request_bytes[p]
        if not room:
            continue
        rate_limit = config.budget.max_evictions_per_minute
        if recent + evicted_now + len(rows) > rate_limit:
            blocked("budget-evictions", f"{recent + evicted_now} evictions in the last minute, {len(rows)} more "
                    f"would pass {rate_limit}", by="maxEvictionsPerMinute")
            continue
        workload = pods.workload_index[rows]
        moved = np.bincount(workload, minlength=n_workloads)
        moved_ready = np.bincount(workload[ready[rows]], minlength=n_workloads)
        stop = None
        for w in np.flatnonzero(moved).tolist():
            wname = workloads.names[w]
            total_moved = int(moved_of[w] + moved[w])
            total_ready_moved = int(moved_ready_of[w] + moved_ready[w])
            if wname in pdbs:
                allowed = int(ready_count[w]) - max(int(workloads.replicas[w]) - int(pdbs[wname]), 0)
                if total_moved > allowed:
                    stop = ("pdb", f"PDB of {wname} (maxUnavailable {pdbs[wname]}) allows {max(allowed, 0)} "
                            f"evictions, the drain needs {total_moved}", wname)
                    break
            if int(ready_count[w]) - total_ready_moved < 1:
                stop = ("last-replica", f"it would take the last ready replica of {wname} "
                        f"({int(ready_count[w])} ready)", wname)
                break
            if np.isfinite(latency_ratio[w]) and latency_ratio[w] > config.max_latency_slo_ratio:
                stop = ("slo", f"{wname} is at p95/SLO {latency_ratio[w]:.2f} > {config.max_latency_slo_ratio:.2f}",
                        wname)
                break
        if stop is not None:
            blocked(stop[0], stop[1], by=stop[2])
            continue
        saving = watts * keep_seconds
        extra_cpu = np.nan_to_num(pods.cpu_usage_millicores[rows], nan=0.0) * \
            (1.0 / config.warmup_service_rate_fraction - 1.0)
        cost = float(np.sum(config.disruption_joules_per_move
                            + marginal[targets] * (pods.cpu_request_millicores[rows] * config.startup_seconds
                                                   + extra_cpu * config.warmup_seconds)))
        if not saving > cost:
            blocked("not-worth", f"saves {saving / 1000:.0f} kJ over {config.horizon_seconds:.0f} s "
                    f"({watts:.0f} W), moving {len(rows)} pods costs {cost / 1000:.0f} kJ", saving=saving, cost=cost)
            continue
        left_cpu = float(capacity_cpu.sum()) - nodes.cpu_capacity_millicores[node]
        left_memory = float(capacity_memory.sum()) - nodes.memory_capacity_bytes[node]
        if left_cpu < needed_cpu or left_memory < needed_memory:
            blocked("forecast", f"the next {config.horizon_seconds:.0f} s need {needed_cpu / 1000:.0f} cores and "
                    f"{needed_memory / 2**30:.0f} GiB, the nodes left would have {left_cpu / 1000:.0f} and "
                    f"{left_memory / 2**30:.0f}", saving=saving, cost=cost, by="forecast")
            continue
        free_cpu, free_memory = trial_cpu, trial_memory
        capacity_cpu[node] = 0.0
        capacity_memory[node] = 0.0
        moved_of += moved
        moved_ready_of += moved_ready
        evicted_now += len(rows)
        drained_now[node] = True
        receiving[targets] = True
        admitted.append(DrainProposal(node, tuple(Move(p, t) for p, t in zip(rows.tolist(), targets.tolist(),
                                                                             strict=True))))
        explanations.append(DrainExplanation(
            name, True, "drained", f"draining {name}: {len(rows)} pods move, saves {watts:.0f} W, "
            f"{saving / 1000:.0f} kJ over {config.horizon_seconds:.0f} s against {cost / 1000:.0f} kJ for the moves",
            len(rows), watts, saving, cost))

    cpu, memory = requested_fractions(snapshot)
    under = awake & ~draining & (snapshot.pods_per_node() > 0) & (cpu < config.under_used_fraction) & \
        (memory < config.under_used_fraction)
    for node in np.flatnonzero(under).tolist():
        if node not in proposed:
            explanations.append(DrainExplanation(
                nodes.names[node], False, "not-proposed",
                f"not draining {nodes.names[node]}: under-used (CPU {cpu[node]:.0%}, memory {memory[node]:.0%} "
                "requested) but the policy proposed no drain", int(snapshot.pods_per_node()[node]),
                float(sleep[node]), 0.0, 0.0))
    return ConsolidationPlan(tuple(admitted), tuple(explanations))


# ------------------------------------------------------------------------------- driver


class DrainPolicy(Protocol):
    """What proposes drains (the heuristic; later a learned policy)."""

    def propose_drains(self, snapshot: ClusterSnapshot, config: ConsolidationConfig,
                       draining: frozenset[str]) -> tuple[DrainProposal, ...]:
        """Proposals for the budget stage; anything goes, the stage checks it."""


@dataclass
class Consolidator:
    """Runs the two stages each step and keeps their state.

    A drained node stays cordoned (:meth:`cordoned_mask`) until it is in standby, or until the
    forecast needs it back: then the nodes cordoned last are un-cordoned first.
    """

    policy: DrainPolicy
    """What proposes the drains (the heuristic)."""
    config: ConsolidationConfig = field(default_factory=ConsolidationConfig)
    """The rule's thresholds and prices."""
    power_model: PowerModel = field(default_factory=PowerModel)
    """Idle, standby and peak watts of each node, for the saving and the cost."""
    pdb_max_unavailable: Mapping[str, int] = field(default_factory=dict)
    """Workload name -> its PDB's ``maxUnavailable``."""
    state: BudgetState = field(default_factory=BudgetState)
    """Nodes draining and recent evictions, as of the last call."""
    history: list[tuple[float, float, float]] = field(default_factory=list)
    """(time in seconds, requested CPU in millicores, requested memory in bytes) of the cluster
    at each call, over the last horizon."""
    cordon_order: list[str] = field(default_factory=list)
    """Cordoned nodes, oldest first."""
    last_plan: ConsolidationPlan | None = None
    """The plan of the last call (None before the first)."""

    def cordoned_mask(self, snapshot: ClusterSnapshot) -> np.ndarray:
        """bool (nodes,): nodes cordoned by a drain."""
        return np.array([n in self.state.draining for n in snapshot.nodes.names], dtype=bool)

    def plan(self, snapshot: ClusterSnapshot) -> ConsolidationPlan:
        """Decide this step's drains; the caller evicts their pods to their targets."""
        now, nodes = snapshot.time_seconds, snapshot.nodes
        self.history = [h for h in self.history if h[0] > now - self.config.horizon_seconds]
        self.history.append((now, float(nodes.cpu_requested_millicores.sum()),
                             float(nodes.memory_requested_bytes.sum())))
        times, cpu, memory = zip(*self.history, strict=True)
        forecast = forecast_demand(times, cpu, memory, now, self.config.horizon_seconds)
        if now - min(times) < self.config.min_history_seconds:
            forecast = Demand(np.inf, np.inf)
        standby = {n for n, off in zip(nodes.names, nodes.standby, strict=True) if off}
        self.cordon_order = [n for n in self.cordon_order if n in self.state.draining and n not in standby]
        # Un-cordon, newest first, while the nodes not cordoned cannot hold the forecast.
        awake = awake_nodes(snapshot)
        position = {n: i for i, n in enumerate(nodes.names)}
        cordoned = set(self.cordon_order)
        def open_capacity() -> tuple[float, float]:
            mask = awake & np.array([n not in cordoned for n in nodes.names], dtype=bool)
            return float(nodes.cpu_capacity_millicores[mask].sum()), float(nodes.memory_capacity_bytes[mask].sum())
        headroom = 1.0 + self.config.forecast_headroom_fraction
        while cordoned:
            open_cpu, open_memory = open_capacity()
            if open_cpu >= forecast.cpu_millicores * headroom and open_memory >= forecast.memory_bytes * headroom:
                break
            cordoned.discard(next(n for n in reversed(self.cordon_order) if n in cordoned and n in position))
        self.cordon_order = [n for n in self.cordon_order if n in cordoned]
        self.state = BudgetState(frozenset(self.cordon_order), tuple(
            t for t in self.state.eviction_times_seconds if now - t < EVICTION_WINDOW_SECONDS))
        proposals = self.policy.propose_drains(snapshot, self.config, self.state.draining)
        plan = admit_drains(snapshot, proposals, self.config, self.state, forecast, self.power_model,
                            self.pdb_max_unavailable)
        drained = [nodes.names[d.node] for d in plan.drains]
        self.cordon_order += drained
        self.state = BudgetState(self.state.draining | frozenset(drained),
                                 self.state.eviction_times_seconds + (now,) * plan.evictions)
        self.last_plan = plan
        return plan


class CordonedNodes:
    """``placement``, with the consolidator's cordoned nodes as a last resort."""

    def __init__(self, placement: Policy, consolidator: Consolidator) -> None:
        self.placement = placement
        self.consolidator = consolidator
        self.info: PolicyInfo = placement.info

    def score_nodes(self, snapshot: ClusterSnapshot, pod: int) -> np.ndarray:
        scores = np.asarray(self.placement.score_nodes(snapshot, pod), dtype=float)
        return scores - CORDONED_PENALTY * self.consolidator.cordoned_mask(snapshot)

    def size(self, snapshot: ClusterSnapshot) -> SizingProposal:
        return self.placement.size(snapshot)
