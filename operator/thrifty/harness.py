"""Runs the decision core against the simulator, as the operator runs it against a cluster.

Each step: snapshot -> consolidation plan, if a consolidator runs (drains: pods migrated to
their planned nodes, :mod:`thrifty.policy.consolidation`) -> sizing plan (policy, then safety)
-> scale and resize -> snapshot -> placement plan for every Pending pod -> bind -> advance the
simulator. Sizing comes first so that pods created by a scale-out are placed in the same step,
as the operator's pod watch does.

The benchmark harness, the gym environments' evaluation and the training evaluation all use this
one loop, so a policy is always judged with the same safety pipeline it runs behind in production.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from thrifty.core import PlacementDecision, WorkloadDecision, plan_placements, plan_sizing
from thrifty.policy.base import Policy
from thrifty.policy.consolidation import ConsolidationPlan, Consolidator
from thrifty.policy.heuristic import HeuristicPolicy
from thrifty.safety import ChurnLedger, SafetyConfig
from thrifty.sim import Simulator, StepResult


@dataclass(frozen=True)
class HarnessStep:
    """One step of the harness: the decisions taken and what the simulator reported."""

    result: StepResult
    placements: tuple[PlacementDecision, ...]
    sizing: tuple[WorkloadDecision, ...]
    placement_seconds: float
    """Wall-clock time spent deciding placements in the step (policy + safety)."""
    sizing_seconds: float
    """Wall-clock time spent deciding sizes in the step (policy + safety)."""
    fallbacks: int
    """Decisions in the step taken by the fallback policy."""
    consolidation: ConsolidationPlan | None = None
    """The step's drains and their explanations (None without a consolidator)."""


@dataclass
class Harness:
    """Drives ``simulator`` with one placement policy and one sizing policy."""

    simulator: Simulator
    placement_policy: Policy
    sizing_policy: Policy
    fallback: Policy = field(default_factory=HeuristicPolicy)
    safety: SafetyConfig = field(default_factory=SafetyConfig)
    ledger: ChurnLedger = field(default_factory=ChurnLedger)
    consolidator: Consolidator | None = None
    """Drains under-used nodes before sizing (None: no consolidation)."""

    def consolidate(self) -> ConsolidationPlan | None:
        """Plan this step's drains and migrate their pods to the planned nodes."""
        if self.consolidator is None:
            return None
        snapshot = self.simulator.snapshot()
        plan = self.consolidator.plan(snapshot)
        for drain in plan.drains:
            for move in drain.moves:
                self.simulator.migrate(snapshot.pods.names[move.pod], move.target)
        return plan

    def apply_sizing(self, decisions: list[WorkloadDecision]) -> None:
        """Scale and resize in the simulator as the decisions say."""
        sim = self.simulator
        for decision in decisions:
            if decision.replicas_to != decision.replicas_from:
                remove = decision.remove_pods if decision.replicas_to < decision.replicas_from else None
                sim.scale(decision.workload, decision.replicas_to, remove=remove)
            for container in decision.containers:
                if not container.changed:
                    continue
                target = container.target
                for pod in sim.workload_pods(decision.workload):
                    sim.resize(
                        pod,
                        cpu_request_millicores=target.cpu_request_millicores,
                        cpu_limit_millicores=target.cpu_limit_millicores,
                        memory_request_bytes=target.memory_request_bytes,
                        memory_limit_bytes=target.memory_limit_bytes,
                    )

    def place_pending(self) -> list[PlacementDecision]:
        """Place every Pending pod; returns the decisions."""
        decisions, _ = plan_placements(self.simulator.snapshot(), self.placement_policy, self.fallback)
        for decision in decisions:
            if decision.node is not None:
                self.simulator.bind(decision.pod, decision.node)
        return decisions

    def step(self, *, place: bool = True) -> HarnessStep:
        """Decide, act and advance the simulator by one step.

        ``place=False`` leaves Pending pods to the caller (the placement environment's agent).
        """
        started = time.perf_counter()
        consolidation = self.consolidate()
        sizing, self.ledger = plan_sizing(
            self.simulator.snapshot(), self.sizing_policy, self.fallback, self.ledger, self.safety
        )
        self.apply_sizing(sizing)
        sized = time.perf_counter()
        placements = self.place_pending() if place else []
        placed = time.perf_counter()
        result = self.simulator.step()
        fallbacks = sum(d.fallback is not None for d in sizing) + sum(d.fallback is not None for d in placements)
        return HarnessStep(result, tuple(placements), tuple(sizing), placed - sized, sized - started, fallbacks,
                           consolidation)

    def run(self, steps: int) -> list[HarnessStep]:
        """``steps`` steps; the placements of the initial pods happen in the first."""
        return [self.step() for _ in range(steps)]


def total_energy_kwh(steps: list[HarnessStep]) -> float:
    """Energy over a run, nodes plus network, in kWh."""
    return float(np.sum([s.result.energy_joules for s in steps]) / 3.6e6)
