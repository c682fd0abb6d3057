"""Which PPO iterate to keep: validation runs in the simulator on the training slices.

PPO's return is a noisy guide on this problem: episodes differ in cluster and applications, and
an iterate can score well on its last batch while drifting from what the benchmark measures
(energy and SLO violations over six hours). So training scores the cloned start and every few
iterations on a fixed set of validation scenarios, through the same harness as ``thrifty bench``,
and keeps the best iterate (early stopping on a validation set):

* the least energy among the iterates that violate SLOs no more often than the heuristic does on
  the same scenarios;
* if none does, the fewest violations.

The scenarios are built from the training split with the calibration seeds, never from the
held-out slices: those stay unseen until ``thrifty bench`` evaluates the exported policy.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from thrifty.bench.policies import BuiltPolicy
from thrifty.bench.runner import run_policy, strict_bound_of
from thrifty.bench.scenarios import ScenarioSpec
from thrifty.datasets import load_split
from thrifty.features import SCHEMA_VERSION, RunningNormaliser
from thrifty.policy.artefact import Artefact
from thrifty.policy.base import Policy
from thrifty.policy.numpy_policy import NumpyPolicy

VALIDATION_SEEDS: tuple[int, ...] = (100, 101, 102, 103)
"""Scenario seeds of validation: those of ``thrifty bench --calibrate``, not the benchmark's."""


@dataclass(frozen=True)
class ValidationScore:
    """Means over the validation scenarios."""

    energy_kwh: float
    slo_violation_rate: float


@dataclass(frozen=True)
class _Pair:
    """A placement and a sizing policy, as ``run_policy`` builds them."""

    name: str
    placement: Policy
    sizing: Policy

    def build(self, seed: int) -> BuiltPolicy:
        return BuiltPolicy(self.placement, self.sizing, replicaset_scale_in=False)


class Validator:
    """Scores policies on ``len(seeds)`` scenarios of ``n_nodes`` nodes and ``steps`` steps."""

    def __init__(self, *, n_nodes: int, steps: int, seeds: tuple[int, ...] = VALIDATION_SEEDS) -> None:
        traces = load_split("train")
        self.steps = steps
        self.seeds = seeds
        self.cases = [(spec, spec.build(traces, steps)) for spec in (ScenarioSpec(n_nodes, s) for s in seeds)]
        self.strict_bounds = [strict_bound_of(scenario) for _, scenario in self.cases]
        """Each case's strict bound, solved once for all the policies scored."""

    def score(self, placement: Policy, sizing: Policy) -> ValidationScore:
        pair = _Pair("validation", placement, sizing)
        # run_policy only reads .name and .build(seed), which _Pair has; its annotation names the
        # concrete PolicySpec (thrifty.bench), which cannot hold policy objects.
        runs = [run_policy(scenario, spec, pair, self.steps, strict_bound=strict).metrics  # type: ignore[arg-type]
                for (spec, scenario), strict in zip(self.cases, self.strict_bounds, strict=True)]
        return ValidationScore(energy_kwh=float(np.mean([r["energy_kwh"] for r in runs])),
                               slo_violation_rate=float(np.mean([r["slo_violation_rate"] for r in runs])))


def better(candidate: ValidationScore, best: ValidationScore, reference: ValidationScore) -> bool:
    """Whether ``candidate`` beats ``best`` under the rule of the module docstring, with
    ``reference`` the heuristic's score."""
    fits, best_fits = (s.slo_violation_rate <= reference.slo_violation_rate for s in (candidate, best))
    if fits != best_fits:
        return fits
    if fits:
        return candidate.energy_kwh < best.energy_kwh
    return candidate.slo_violation_rate < best.slo_violation_rate


def numpy_policy(task: str, state: dict[str, np.ndarray], normaliser: RunningNormaliser, layers: int) -> NumpyPolicy:
    """The numpy policy of one task's module state, as the exported artefact would serve it."""
    weights = {k: v for k, v in state.items() if k.startswith(f"{task}.")}
    metadata = {"name": "validation", "version": "training", "feature_schema_version": SCHEMA_VERSION}
    return NumpyPolicy(Artefact(directory=Path("."), metadata=metadata, weights=weights,
                                normalisers={task: normaliser}, hidden_layers=layers))
