"""Calibration of the baselines (and of Thrifty's consolidation rule) on the training slices:
small grids, one selection rule.

Each grid runs one baseline with every combination of its parameter values on the training
scenarios and keeps the setting with the least mean energy among those whose mean SLO violation
rate is at most the grid's best plus ``VIOLATION_TOLERANCE``: the objective the RL policy is
judged on (energy, at no more SLO violations than the best), with a tolerance for the noise of
a few seeds. Grids run in order and later ones inherit earlier choices: the placement baselines
run on the stack's sizing as calibrated just before.

The chosen values go, by hand, into :mod:`thrifty.baselines.calibrated`, so that a benchmark
never depends on a calibration run being present.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from thrifty.bench.policies import parse_policy
from thrifty.bench.runner import run_policy, strict_bound_of
from thrifty.bench.scenarios import ScenarioSpec
from thrifty.sim import Scenario

VIOLATION_TOLERANCE = 0.005
"""Absolute slack on the SLO violation rate (half a percentage point of workload-steps)."""


@dataclass(frozen=True)
class Grid:
    """One baseline's parameter grid."""

    name: str
    policy: str
    """Policy name (see :mod:`thrifty.bench.policies`) the grid runs."""
    values: Mapping[str, tuple[float, ...]]
    """Parameter name -> values; every combination is tried."""
    upstream: Mapping[str, float]
    """The upstream default of each parameter: the choice among settings that tie exactly."""

    def settings(self) -> list[dict[str, float]]:
        names = list(self.values)
        return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*(self.values[n] for n in names))]


GRIDS: tuple[Grid, ...] = (
    Grid("HPA", "kube-default+hpa", {"hpa_target": (0.5, 0.6, 0.7, 0.8, 0.9)}, {"hpa_target": 0.8}),
    Grid("VPA", "kube-default+vpa", {"vpa_margin": (0.05, 0.15, 0.3, 0.5), "vpa_cpu_percentile": (0.9, 0.95)},
         {"vpa_margin": 0.15, "vpa_cpu_percentile": 0.9}),
    Grid("HPA+VPA stack", "kube-default+stack",
         {"stack_hpa_target": (0.5, 0.6, 0.7, 0.8, 0.9), "stack_vpa_margin": (0.15, 0.5)},
         {"stack_hpa_target": 0.8, "stack_vpa_margin": 0.15}),
    Grid("Trimaran", "trimaran+stack", {"trimaran_target": (30, 40, 50, 60, 70, 80)}, {"trimaran_target": 40}),
    Grid("network-aware", "network-aware+stack", {"network_weight": (1, 5, 20)}, {"network_weight": 5}),
    Grid("descheduler-hnu", "most-allocated+stack+descheduler-hnu", {"descheduler_threshold": (0.2, 0.3, 0.4, 0.5)},
         {"descheduler_threshold": 0.2}),
    Grid("karpenter", "kube-default+stack+karpenter-underutilized",
         {"karpenter_consolidate_after": (0.0, 300.0, 900.0)}, {"karpenter_consolidate_after": 0.0}),
    Grid("thrifty-consolidation", "thrifty-consolidation",
         {"consolidation_under_used": (0.3, 0.5, 0.7), "consolidation_disruption_kj": (5.0, 20.0, 80.0)},
         {"consolidation_under_used": 0.5, "consolidation_disruption_kj": 20.0}),
)


@dataclass(frozen=True)
class Trial:
    """One setting of one grid, averaged over the scenarios."""

    grid: str
    setting: dict[str, float]
    energy_kwh: float
    slo_violation_rate: float
    chosen: bool = False


def choose(trials: Sequence[Trial], tolerance: float = VIOLATION_TOLERANCE,
           upstream: Mapping[str, float] | None = None) -> int:
    """Index of the least-energy trial among those within ``tolerance`` of the fewest violations;
    among exact ties, the ``upstream`` default setting if it is one of them, else the first."""
    violations = np.array([t.slo_violation_rate for t in trials])
    energy = np.array([t.energy_kwh for t in trials])
    eligible = np.flatnonzero(violations <= violations.min() + tolerance)
    best = eligible[energy[eligible] == energy[eligible].min()]
    defaults = [i for i in best.tolist() if upstream is not None and trials[i].setting == dict(upstream)]
    return defaults[0] if defaults else int(best[0])


def calibrate(scenarios: Sequence[tuple[ScenarioSpec, Scenario]], steps: int,
              grids: Sequence[Grid] = GRIDS,
              on_run: Callable[[str, dict[str, float], ScenarioSpec], None] | None = None) -> list[Trial]:
    """Run every grid in order (see the module docstring); returns all trials, chosen marked."""
    chosen: dict[str, float] = {}
    trials: list[Trial] = []
    strict = {spec: strict_bound_of(scenario) for spec, scenario in scenarios}
    for grid in grids:
        mine = []
        for setting in grid.settings():
            policy = parse_policy(grid.policy, {**chosen, **setting})
            energy, violations = [], []
            for spec, scenario in scenarios:
                if on_run is not None:
                    on_run(grid.name, setting, spec)
                result = run_policy(scenario, spec, policy, steps, strict_bound=strict[spec])
                energy.append(result.metrics["energy_kwh"])
                violations.append(result.metrics["slo_violation_rate"])
            mine.append(Trial(grid.name, setting, float(np.mean(energy)), float(np.mean(violations))))
        best = choose(mine, upstream=grid.upstream)
        mine[best] = Trial(grid.name, mine[best].setting, mine[best].energy_kwh, mine[best].slo_violation_rate, True)
        chosen.update(mine[best].setting)
        trials.extend(mine)
    return trials


def markdown(trials: Sequence[Trial]) -> str:
    """The calibration table: every setting with its mean energy and violations; chosen in bold."""
    lines = ["| grid | setting | energy kWh | SLO viol. % | chosen |", "|---|---|---:|---:|:---:|"]
    for t in trials:
        setting = ", ".join(f"{k}={v:g}" for k, v in t.setting.items())
        mark = "**yes**" if t.chosen else ""
        lines.append(f"| {t.grid} | {setting} | {t.energy_kwh:.3f} | {t.slo_violation_rate:.2%} | {mark} |")
    return "\n".join(lines)
