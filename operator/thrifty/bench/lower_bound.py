"""A lower bound on the energy any policy can spend on a scenario.

At each step the cluster must run at least the CPU and memory that the load makes unavoidable:

* CPU: the step's requests times each workload's CPU per request, plus the per-pod baseline CPU
  of ``replicas.min`` pods of every workload, plus the usage of the background pods present
  (those that fit on some node);
* memory: ``replicas.min`` pods' memory of every workload plus the background pods' memory.

No policy runs less (fewer replicas violate ``replicas.min``), so no policy draws less than the
cheapest powered set of nodes that could hold it. The bound relaxes that set fractionally
(a linear-programming relaxation of the bin-packing cover, valid for heterogeneous nodes):

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
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

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
    return int(min(np.searchsorted(cumulative, demand, side="left") + 1, len(capacities)))


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
        self.dynamic_watts_per_millicore = float(
            np.min((chord * (peak - self.idle))[usable] / self.cpu_capacity[usable]))
        workloads = scenario.workloads
        self.work = np.array([w.cpu_per_request_millicore_seconds for w in workloads])
        self.min_replicas = np.array([w.replicas_min for w in workloads], dtype=float)
        self.baseline = np.vstack([w.cpu_baseline_millicores for w in workloads])
        self.memory = np.vstack([w.memory_per_pod_bytes for w in workloads])
        self.step_seconds = scenario.step_seconds
        self.background = scenario.background
        if self.background is not None:
            self.background_fits = np.array([
                bool(np.any((self.cpu_capacity >= c) & (self.memory_capacity >= m)))
                for c, m in zip(self.background.cpu_request_millicores, self.background.memory_request_bytes)])

    def demand(self, step_index: int, request_rate_per_second: np.ndarray) -> tuple[float, float]:
        """Unavoidable CPU (millicores) and memory (bytes) in step ``step_index``."""
        k = step_index % self.baseline.shape[1]
        cpu = float(np.sum(request_rate_per_second * self.work) + self.min_replicas @ self.baseline[:, k])
        memory = float(self.min_replicas @ self.memory[:, k])
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
        wake_cost = self.idle - self.standby
        cover = max(fractional_cover_cost(wake_cost, self.cpu_capacity, cpu),
                    fractional_cover_cost(wake_cost, self.memory_capacity, memory))
        dynamic = min(cpu, float(self.cpu_capacity.sum())) * self.dynamic_watts_per_millicore
        nodes = max(fewest_nodes(self.cpu_capacity, cpu), fewest_nodes(self.memory_capacity, memory))
        return StepBound(float(self.standby.sum()) + cover + dynamic, nodes, cpu, memory)
