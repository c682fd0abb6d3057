"""Choosing the PPO iterate to keep: the rule, and the validation runs behind it."""

from __future__ import annotations

import numpy as np
import pytest

from thrifty.baselines import RandomPlacement
from thrifty.policy.heuristic import HeuristicPolicy
from thrifty.training.validation import ValidationScore, Validator, better

REFERENCE = ValidationScore(energy_kwh=2.5, slo_violation_rate=0.03)


@pytest.mark.parametrize(
    ("candidate", "best", "expected"),
    [
        pytest.param((2.4, 0.03), (2.5, 0.02), True, id="less-energy-both-within-reference"),
        pytest.param((2.6, 0.01), (2.5, 0.02), False, id="more-energy-both-within-reference"),
        pytest.param((2.9, 0.03), (2.0, 0.04), True, id="within-reference-beats-outside-whatever-energy"),
        pytest.param((2.0, 0.04), (2.9, 0.03), False, id="outside-reference-never-beats-within"),
        pytest.param((3.0, 0.05), (2.0, 0.06), True, id="both-outside-fewer-violations-wins"),
        pytest.param((2.5, 0.02), (2.5, 0.02), False, id="a-tie-keeps-the-earlier"),
    ],
)
def test_better(candidate, best, expected):
    assert better(ValidationScore(*candidate), ValidationScore(*best), REFERENCE) is expected


def test_validator_scores_are_deterministic_and_tell_policies_apart():
    validator = Validator(n_nodes=6, steps=20, seeds=(100, 101))
    heuristic = HeuristicPolicy()
    first, again = validator.score(heuristic, heuristic), validator.score(heuristic, heuristic)
    assert first == again
    assert first.energy_kwh > 0 and 0 <= first.slo_violation_rate <= 1
    spread = RandomPlacement(np.random.default_rng(0))
    assert validator.score(spread, heuristic).energy_kwh > first.energy_kwh
