"""Lower bounds on the energy any policy can spend on a scenario: a loose one and a strict one.

Both rest on the same unavoidable demand. At each step the cluster must run at least the CPU and
memory that the load makes unavoidable:

* CPU: the step's requests times each workload's CPU per request (however it is split over the
  replicas, their shares add up to it), plus the per-pod baseline CPU of ``replicas.min`` pods of
  every workload (the series' least sample when each replica reads it at its own phase), plus
  the usage of the background pods present (those that fit on some node);
* memory: ``replicas.min`` pods' memory of every workload (the series' least sample when each
  replica reads the series at its own phase) plus the background pods' memory.

No policy that serves the load runs less (fewer replicas violate ``replicas.min``; a policy can
use less CPU only by not serving requests, throttled or killed, which the SLO counts), so none
draws less than the cheapest powered set of nodes that could hold it.

**Loose bound** (:class:`EnergyLowerBound`, the ``lower-bound`` row) relaxes that set
fractionally (a linear-programming relaxation of the bin-packing cover, valid for heterogeneous
nodes):

    watts >= sum(standby of all nodes)
             + cheapest fractional cover of the CPU, or of the memory, by nodes costing
               (idle - standby) each, whichever is dearer
             + CPU x the lowest c x (peak - idle) / capacity of any node

The last term holds because a node's load curve ``f`` (the fraction of ``peak - idle`` drawn at
utilisation ``u``) lies above the line ``c u`` with ``c = min f(u) / u`` over the curve's points
(0.9875 for the default SPECpower shape, whose 90 % point dips just under the chord), so a
node's dynamic power is at least ``load x c x (peak - idle) / capacity``. Network energy is
bounded by 0 (everything could be co-located).

The node count reported with it is the fewest nodes, largest first, whose capacities cover
both the CPU and the memory: ``ceil``-style, the L1 bound of bin packing generalised to
nodes of different sizes. The step's request rates are the simulator's realised (Poisson)
rates, which are the same for every policy on one seed.

**Strict bound** (:class:`StrictEnergyBound`, the ``strict-bound`` row) takes whole nodes: per
step, a small mixed-integer program (``scipy.optimize.milp``, HiGHS) over node types (nodes of
equal capacities and power profile), with ``n_t`` powered nodes of type ``t`` (an integer up to
the type's count) and CPU load ``y_t`` on them::

    minimise    sum_t n_t (idle_t - standby_t) + y_t c_t (peak_t - idle_t) / cpu_t
    subject to  sum_t y_t >= CPU,   sum_t n_t memory_t >= memory,   0 <= y_t <= n_t cpu_t

plus the standby power of every node. Each node's dynamic power is at least ``c_t`` times its
load's share of ``peak - idle`` (the chord argument above, per type), so this is a lower bound
that is never below the loose one. And every run starts with all nodes on: a node enters standby
only after ``standby_after_idle_seconds`` empty, so in the steps that start before then the
bound is every node's idle power plus the cheapest placement of the CPU on all of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp

from thrifty.energy import PowerModel
from thrifty.sim import Scenario


@dataclass(frozen=True)
class StepBound:
    """The bound for one step."""

    watts: float
    nodes: int
    cpu_millicores: float
    memory_bytes: float


def curve_floor_slope(curve: tuple[float, ...]) -> float:
    """Largest ``c`` with ``f(u) >= c u`` on [0, 1] for the piecewise-linear load curve ``f``
    given at 0 %, 10 %, ..., 100 % (on each segment ``f(u) / u`` is monotone, so the points suffice)."""
    points = np.linspace(0.0, 1.0, len(curve))[1:]
    return float(np.min(np.asarray(curve[1:], dtype=float) / points))


def fractional_cover_cost(costs: np.ndarray, capacities: np.ndarray, demand: float) -> float:
    """Least total cost of nodes (taken fractionally) whose capacities add up to ``demand``.

    Greedy by cost per unit of capacity, which is optimal for the fractional problem. A demand
    beyond the total capacity costs every node.
    """
    usable = capacities > 0
    costs, capacities = costs[usable], capacities[usable]
    if demand <= 0 or len(costs) == 0:
        return 0.0
    order = np.argsort(costs / capacities, kind="stable")
    costs, capacities = costs[order], capacities[order]
    cumulative = np.cumsum(capacities)
    k = int(np.searchsorted(cumulative, demand, side="left"))
    if k >= len(costs):
        return float(costs.sum())
    before = cumulative[k - 1] if k > 0 else 0.0
    return float(costs[:k].sum() + costs[k] * (demand - before) / capacities[k])


def fewest_nodes(capacities: np.ndarray, demand: float) -> int:
    """Fewest nodes, largest first, whose capacities add up to ``demand`` (all if none do)."""
    if demand <= 0:
        return 0
    cumulative = np.cumsum(np.sort(capacities)[::-1])
    return min(int(np.searchsorted(cumulative, demand, side="left")) + 1, len(capacities))


class EnergyLowerBound:
    """The bound of the module docstring for one scenario and power model."""

    def __init__(self, scenario: Scenario, power_model: PowerModel) -> None:
        nodes = scenario.nodes
        self.cpu_capacity = np.asarray(nodes.cpu_capacity_millicores, dtype=float)
        self.memory_capacity = np.asarray(nodes.memory_capacity_bytes, dtype=float)
        profiles = [power_model.profiles.get(c) or power_model.profiles[power_model.default_class]
                    for c in nodes.power_class]
        self.idle = np.array([p.idle_watts for p in profiles])
        self.standby = np.array([p.standby_watts for p in profiles])
        peak = np.array([p.peak_watts for p in profiles])
        chord = np.array([curve_floor_slope(p.curve) for p in profiles])
        usable = self.cpu_capacity > 0
        self.wake_cost = self.idle - self.standby
        """(nodes,) idle minus standby watts."""
        self.dynamic_slope = np.where(
            usable, chord * (peak - self.idle) / np.where(usable, self.cpu_capacity, 1.0), 0.0)
        """(nodes,) least dynamic watts per millicore of load on each node."""
        self.dynamic_watts_per_millicore = float(np.min(self.dynamic_slope[usable]))
        workloads = scenario.workloads
        self.work = np.array([w.cpu_per_request_millicore_seconds for w in workloads])
        self.min_replicas = np.array([w.replicas_min for w in workloads], dtype=float)
        self.baseline = np.vstack([w.cpu_baseline_millicores for w in workloads])
        self.memory = np.vstack([w.memory_per_pod_bytes for w in workloads])
        self.replica_phases = scenario.replica_memory_phases
        self.replica_cpu_phases = scenario.replica_cpu_phases
        # With a phase per replica, the one replica left may read any sample of the series.
        self.memory_floor = self.memory.min(axis=1)
        self.baseline_floor = self.baseline.min(axis=1)
        self.step_seconds = scenario.step_seconds
        self.background = scenario.background
        if self.background is not None:
            background = self.background
            self.background_fits = np.array([
                bool(np.any((self.cpu_capacity >= c) & (self.memory_capacity >= m)))
                for c, m in zip(background.cpu_request_millicores, background.memory_request_bytes, strict=True)])

    def demand(self, step_index: int, request_rate_per_second: np.ndarray) -> tuple[float, float]:
        """Unavoidable CPU (millicores) and memory (bytes) in step ``step_index``."""
        k = step_index % self.baseline.shape[1]
        baseline = self.baseline_floor if self.replica_cpu_phases else self.baseline[:, k]
        cpu = float(np.sum(request_rate_per_second * self.work) + self.min_replicas @ baseline)
        memory = float(self.min_replicas @ (self.memory_floor if self.replica_phases else self.memory[:, k]))
        if self.background is not None:
            start = step_index * self.step_seconds
            present = ((self.background.arrival_seconds <= start) & (self.background.departure_seconds > start)
                       & self.background_fits)
            cpu += float(self.background.cpu_usage_millicores[present].sum())
            memory += float(self.background.memory_usage_bytes[present].sum())
        return cpu, memory

    def at(self, step_index: int, request_rate_per_second: np.ndarray) -> StepBound:
        """The bound for step ``step_index`` given its realised request rates (per workload)."""
        cpu, memory = self.demand(step_index, request_rate_per_second)
        cover = max(fractional_cover_cost(self.wake_cost, self.cpu_capacity, cpu),
                    fractional_cover_cost(self.wake_cost, self.memory_capacity, memory))
        dynamic = min(cpu, float(self.cpu_capacity.sum())) * self.dynamic_watts_per_millicore
        nodes = max(fewest_nodes(self.cpu_capacity, cpu), fewest_nodes(self.memory_capacity, memory))
        return StepBound(float(self.standby.sum()) + cover + dynamic, nodes, cpu, memory)


@dataclass(frozen=True)
class NodeTypes:
    """Nodes grouped by equal capacities and power profile (a scenario has few distinct ones)."""

    count: np.ndarray
    """(types,) nodes of each type."""
    cpu_capacity_millicores: np.ndarray
    memory_capacity_bytes: np.ndarray
    wake_watts: np.ndarray
    """(types,) idle minus standby power of one node: what powering it on costs."""
    dynamic_watts_per_millicore: np.ndarray
    """(types,) least dynamic power per millicore of load, ``c (peak - idle) / capacity``."""

    @classmethod
    def of(cls, bound: EnergyLowerBound) -> NodeTypes:
        keys = np.column_stack([bound.cpu_capacity, bound.memory_capacity, bound.wake_cost, bound.dynamic_slope])
        unique, count = np.unique(keys, axis=0, return_counts=True)
        return cls(count=count.astype(float), cpu_capacity_millicores=unique[:, 0], memory_capacity_bytes=unique[:, 1],
                   wake_watts=unique[:, 2], dynamic_watts_per_millicore=unique[:, 3])


def whole_node_cover(types: NodeTypes, cpu_millicores: float, memory_bytes: float, *,
                     all_on: bool = False) -> tuple[float, int]:
    """Least watts above standby of whole nodes holding ``cpu_millicores`` of load and
    ``memory_bytes``, and how many nodes that takes (the program of the module docstring).

    Demand beyond the cluster is capped at its capacity (every node on, fully loaded).
    ``all_on`` forces every node on (the start of a run): only the placement of the load is free.
    """
    k = len(types.count)
    cpu = min(cpu_millicores, float(types.count @ types.cpu_capacity_millicores))
    memory = min(memory_bytes, float(types.count @ types.memory_capacity_bytes))
    if cpu <= 0 and memory <= 0 and not all_on:
        return 0.0, 0
    cost = np.concatenate([types.wake_watts, types.dynamic_watts_per_millicore])
    identity = np.eye(k)
    constraints = [
        LinearConstraint(np.concatenate([np.zeros(k), np.ones(k)])[None, :], lb=cpu),
        LinearConstraint(np.concatenate([types.memory_capacity_bytes, np.zeros(k)])[None, :], lb=memory),
        LinearConstraint(np.hstack([-np.diag(types.cpu_capacity_millicores), identity]), ub=0.0),
    ]
    lower = np.concatenate([types.count if all_on else np.zeros(k), np.zeros(k)])
    upper = np.concatenate([types.count, np.full(k, np.inf)])
    result = milp(cost, constraints=constraints, integrality=np.concatenate([np.ones(k), np.zeros(k)]),
                  bounds=Bounds(lower, upper))
    if not result.success:
        raise RuntimeError(f"whole_node_cover: HiGHS found no cover for {cpu} m CPU, {memory} B: {result.message}")
    # HiGHS proves optimality to a relative gap (1e-4 by default); the dual bound is what is
    # proven, so the bound uses it rather than the incumbent.
    proven = float(result.mip_dual_bound) if np.isfinite(result.mip_dual_bound) else float(result.fun)
    return min(proven, float(result.fun)), round(float(np.sum(result.x[:k])))


class StrictEnergyBound:
    """The strict bound of the module docstring for one scenario and power model."""

    def __init__(self, scenario: Scenario, power_model: PowerModel, standby_after_idle_seconds: float) -> None:
        self.loose = EnergyLowerBound(scenario, power_model)
        self.types = NodeTypes.of(self.loose)
        self.step_seconds = scenario.step_seconds
        self.standby_after_idle_seconds = standby_after_idle_seconds
        # Every policy on one scenario and seed sees the same realised rates, so runs of several
        # policies share one object and each step's program is solved once.
        self._memo: dict[tuple[int, bytes], StepBound] = {}

    def starts_all_on(self, step_index: int) -> bool:
        """Whether step ``step_index`` begins before any node could be in standby."""
        return step_index * self.step_seconds < self.standby_after_idle_seconds

    def at(self, step_index: int, request_rate_per_second: np.ndarray) -> StepBound:
        """The strict bound for step ``step_index`` given its realised request rates."""
        key = (step_index, np.asarray(request_rate_per_second, dtype=float).tobytes())
        if key not in self._memo:
            cpu, memory = self.loose.demand(step_index, request_rate_per_second)
            watts, nodes = whole_node_cover(self.types, cpu, memory, all_on=self.starts_all_on(step_index))
            self._memo[key] = StepBound(float(self.loose.standby.sum()) + watts, nodes, cpu, memory)
        return self._memo[key]
