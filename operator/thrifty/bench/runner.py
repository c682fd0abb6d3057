"""One benchmark run: a policy on a scenario, through the same harness as training.

Every policy runs behind the decision core and the safety pipeline (:class:`thrifty.harness.
Harness`). Two things differ for the baselines, as they do in a cluster that runs them
(:class:`KubernetesHarness`):

* which pods go on scale-in: Thrifty's sizing picks them so that nodes can empty; a baseline
  autoscaler only sets a Deployment's replica count, and the ReplicaSet controller picks
  (:func:`replicaset_victims`);
* the Cluster Autoscaler (or Karpenter's consolidation) drains under-used nodes before each
  step (:class:`thrifty.baselines.cluster_autoscaler.ClusterAutoscaler`), and a descheduler, if
  the baseline runs one, evicts pods from under-used nodes
  (:mod:`thrifty.baselines.consolidation`); evicted pods go through the simulator's migration
  action (:meth:`thrifty.sim.Simulator.migrate`: PDB, start-up, warm-up, churn, counted as
  evictions as Thrifty's drains are), are recreated Pending by their ReplicaSet and placed by the
  baseline scheduler in the same step.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from thrifty.baselines.cluster_autoscaler import ClusterAutoscaler
from thrifty.baselines.consolidation import HighNodeUtilization
from thrifty.bench.loaded import requested_cpu_fraction
from thrifty.bench.lower_bound import StrictEnergyBound
from thrifty.bench.metrics import RunMetrics
from thrifty.bench.policies import PolicySpec
from thrifty.bench.scenarios import ScenarioSpec
from thrifty.config import SimulatorConfig
from thrifty.core import WorkloadDecision
from thrifty.energy import PowerModel
from thrifty.harness import Harness, HarnessStep
from thrifty.policy.base import PolicyError
from thrifty.sim import Scenario, Simulator
from thrifty.snapshot import ClusterSnapshot


def replicaset_victims(snapshot: ClusterSnapshot, workload: int, count: int) -> tuple[str, ...]:
    """The ``count`` pods of ``workload`` a ReplicaSet deletes on scale-in, in deletion order.

    ``ActivePodsWithRanks`` in ``kubernetes/kubernetes`` ``pkg/controller/controller_utils.go``:
    unscheduled before scheduled, not running (no usage yet) before running, pods whose node
    holds more pods of the same ReplicaSet before others, then the youngest. It does not aim
    to empty nodes.
    """
    if count <= 0:
        return ()
    pods = snapshot.pods
    rows = np.flatnonzero(pods.workload_index == workload)
    node = pods.node_index[rows]
    scheduled = node >= 0
    running = np.isfinite(pods.cpu_usage_millicores[rows])
    colocated = np.where(scheduled, np.bincount(node[scheduled], minlength=len(snapshot.nodes))[np.maximum(node, 0)], 0)
    order = np.lexsort((pods.age_seconds[rows], -colocated, running, scheduled))
    return tuple(pods.names[r] for r in rows[order[:count]])


@dataclass
class KubernetesHarness(Harness):
    """A :class:`~thrifty.harness.Harness` with ReplicaSet scale-in, a Cluster Autoscaler and
    optionally a descheduler."""

    autoscaler: ClusterAutoscaler | None = None
    descheduler: HighNodeUtilization | None = None

    def step(self, *, place: bool = True) -> HarnessStep:
        if self.autoscaler is None:
            return super().step(place=place)
        before = self.simulator.snapshot()
        evicted = self.autoscaler.plan(before)
        if self.descheduler is not None:
            evicted = tuple(sorted(set(evicted) | set(self.descheduler.plan(before))))
        for p in evicted:
            self.simulator.migrate(before.pods.names[p])
        standby = set(np.asarray(before.nodes.names)[before.nodes.standby].tolist())
        step = super().step(place=place)
        if any(d.node in standby for d in step.placements):
            self.autoscaler.record_scale_up(before.time_seconds)
        return step

    def apply_sizing(self, decisions: list[WorkloadDecision]) -> None:
        if not any(d.replicas_to < d.replicas_from for d in decisions):
            super().apply_sizing(decisions)
            return
        snapshot = self.simulator.snapshot()
        index = {name: w for w, name in enumerate(snapshot.workloads.names)}
        replaced = [
            dataclasses.replace(
                d, remove_pods=replicaset_victims(snapshot, index[d.workload], d.replicas_from - d.replicas_to))
            if d.replicas_to < d.replicas_from else d
            for d in decisions
        ]
        super().apply_sizing(replaced)


@dataclass(frozen=True)
class RunResult:
    """The outcome of one run."""

    policy: str
    scenario: ScenarioSpec
    steps: int
    """Steps measured (after the warm-up)."""
    step_seconds: float
    metrics: dict[str, float]
    watts: np.ndarray
    """(steps,) cluster power of each step, nodes plus network."""
    lower_bound_watts: np.ndarray
    """(steps,) the energy lower bound's power (the same for every policy on a scenario)."""
    lower_bound_nodes: np.ndarray
    """(steps,) fewest nodes that could hold the unavoidable usage."""
    strict_bound_watts: np.ndarray
    """(steps,) the strict (whole-node) bound's power, with the all-on start."""
    strict_bound_nodes: np.ndarray
    """(steps,) powered nodes of the strict bound's cover."""
    requested_cpu_fraction_peak: float
    """Largest requested CPU / capacity over the measured steps, before any policy acts
    (:func:`thrifty.bench.loaded.requested_cpu_fraction`)."""
    wall_seconds: float


def strict_bound_of(scenario: Scenario) -> StrictEnergyBound:
    """The strict bound of ``scenario`` under the simulator :func:`run_policy` builds (default
    configuration and power model), to share among the runs of several policies."""
    return StrictEnergyBound(scenario, PowerModel(), SimulatorConfig().standby_after_idle_seconds)


def run_policy(scenario: Scenario, spec: ScenarioSpec, policy: PolicySpec, steps: int,
               on_step: Callable[[int], None] | None = None,
               strict_bound: StrictEnergyBound | None = None) -> RunResult:
    """Run ``policy`` for ``steps`` steps on ``scenario``; ``on_step(done)`` reports progress.

    The first ``spec.warmup_steps`` steps run but count in no metric and no bound.

    ``strict_bound``: the scenario's strict bound, shared by the runs of every policy on it so
    that each step's program is solved once (a fresh one without it)."""
    started = time.perf_counter()
    simulator = Simulator(scenario, seed=spec.seed)
    built = policy.build(spec.seed)
    if built.replicaset_scale_in or built.autoscaler is not None:
        harness: Harness = KubernetesHarness(simulator, placement_policy=built.placement, sizing_policy=built.sizing,
                                             autoscaler=built.autoscaler, descheduler=built.descheduler)
    else:
        harness = Harness(simulator, placement_policy=built.placement, sizing_policy=built.sizing,
                          consolidator=built.consolidator)
    strict = strict_bound or strict_bound_of(scenario)
    bound = strict.loose
    metrics = RunMetrics(dependency_source=np.asarray(scenario.dependencies.source, dtype=np.int64),
                         calls_per_request=np.asarray(scenario.dependencies.calls_per_request, dtype=float))
    slo = np.array([w.slo_latency_p95_seconds for w in scenario.workloads])
    measured = steps - spec.warmup_steps
    if measured <= 0:
        raise ValueError(f"run_policy: {steps} steps leave none after {spec.warmup_steps} warm-up steps")
    bound_watts, bound_nodes = np.zeros(measured), np.zeros(measured)
    strict_watts, strict_nodes = np.zeros(measured), np.zeros(measured)
    for k in range(steps):
        step = harness.step()
        m = k - spec.warmup_steps
        if m >= 0:
            metrics.add(step, slo, simulator.snapshot())
            rates = step.result.workload_request_rate_per_second
            at = bound.at(step.result.step_index, rates)
            bound_watts[m], bound_nodes[m] = at.watts, at.nodes
            tight = strict.at(step.result.step_index, rates)
            strict_watts[m], strict_nodes[m] = tight.watts, tight.nodes
        if on_step is not None:
            on_step(k + 1)
    return RunResult(policy.name, spec, measured, scenario.step_seconds, metrics.summary(), np.asarray(metrics.watts),
                     bound_watts, bound_nodes, strict_watts, strict_nodes,
                     float(requested_cpu_fraction(scenario, steps)[spec.warmup_steps:].max()),
                     time.perf_counter() - started)


def run_named_policy(scenario: Scenario, spec: ScenarioSpec, policy: PolicySpec, steps: int,
                     on_step: Callable[[int], None] | None = None,
                     strict_bound: StrictEnergyBound | None = None) -> RunResult:
    """:func:`run_policy`, with a policy that cannot load named by its ``--policies`` entry."""
    try:
        return run_policy(scenario, spec, policy, steps, on_step=on_step, strict_bound=strict_bound)
    except PolicyError as error:
        raise PolicyError(f"--policies {policy.name}: {error}") from error
