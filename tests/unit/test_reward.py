"""The reward with hand-worked numbers (default RewardConfig unless stated)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from thrifty.config import RewardConfig
from thrifty.reward import cluster_reward, disruption_term, energy_term, slo_term, workload_rewards


@pytest.mark.parametrize(
    ("watts", "reference", "expected"),
    [
        (25.0, 50.0, 0.5),
        (50.0, 50.0, 1.0),
        (0.0, 50.0, 0.0),
        (5000.0, 50.0, 10.0),  # capped at energy_term_cap
        (math.nan, 50.0, 0.0),  # unknown power costs nothing
        (25.0, 0.0, 0.0),  # no usable reference
        (-3.0, 50.0, 0.0),
    ],
)
def test_energy_term(watts, reference, expected):
    assert energy_term(watts, reference)[0] == pytest.approx(expected)


@pytest.mark.parametrize(
    ("p95", "slo", "expected"),
    [
        (0.1, 0.2, 0.0),  # met
        (0.2, 0.2, 0.0),  # exactly at the target: met
        (0.3, 0.2, 1.5),  # step 1 + excess 0.5
        (0.4, 0.2, 2.0),  # step 1 + excess 1
        (10.0, 0.2, 5.0),  # step 1 + excess capped at 4
        (math.nan, 0.2, 0.0),  # unknown latency is no violation
        (0.3, math.nan, 0.0),  # no SLO
    ],
)
def test_slo_term(p95, slo, expected):
    assert slo_term(p95, slo)[0] == pytest.approx(expected)


@pytest.mark.parametrize(
    ("ooms", "throttled", "evictions", "churn", "expected"),
    [
        (0, 0.0, 0, 0, 0.0),
        (1, 0.5, 0, 2, 1.0 + 0.5 + 0.1),
        (0, 0.0, 2, 0, 2.0),
        (0, 3.0, 0, 0, 1.0),  # a fraction is at most 1
        (math.nan, math.nan, 1, math.nan, 1.0),  # unknown counts as nothing
    ],
)
def test_disruption_term(ooms, throttled, evictions, churn, expected):
    assert disruption_term(ooms, throttled, evictions, churn)[0] == pytest.approx(expected)


def test_workload_rewards_hand_worked():
    terms = workload_rewards(
        watts=np.array([100.0, 100.0, 100.0, 10.0]),
        latency_p95_seconds=np.array([0.3, 0.3, 0.3, 0.05]),
        slo_latency_p95_seconds=np.array([0.2, 0.2, 0.2, 0.1]),
        energy_weight=np.array([0.25, 0.0, 1.0, math.nan]),
        oom_kills=np.array([1, 0, 0, 0]),
        throttled_fraction=np.array([0.5, 0.0, 0.0, 0.0]),
        evictions=np.array([0, 0, 0, 0]),
        churn=np.array([2, 0, 0, 0]),
    )
    # Workload 0: E = 100/50 = 2, S = 1 + 0.5 = 1.5, D = 1 + 0.5 + 0.1 = 1.6,
    # r = -(0.25 * 2 + 0.75 * 1.5 + 1.6) = -3.225.
    np.testing.assert_allclose(terms.energy, [2.0, 2.0, 2.0, 0.2])
    np.testing.assert_allclose(terms.slo, [1.5, 1.5, 1.5, 0.0])
    np.testing.assert_allclose(terms.disruption, [1.6, 0.0, 0.0, 0.0])
    np.testing.assert_allclose(terms.energy_weight, [0.25, 0.0, 1.0, 0.5])
    # Weight 0 ignores energy, weight 1 ignores the SLO, an unknown weight counts as 0.5.
    np.testing.assert_allclose(terms.reward, [-3.225, -1.5, -2.0, -0.1])


def test_per_workload_reference_and_custom_weights():
    config = RewardConfig(slo_violation_penalty=0.0, churn_penalty=1.0)
    terms = workload_rewards(
        watts=np.array([30.0, 30.0]),
        latency_p95_seconds=np.array([0.3, 0.1]),
        slo_latency_p95_seconds=np.array([0.2, 0.2]),
        energy_weight=np.array([0.5, 0.5]),
        oom_kills=np.zeros(2),
        throttled_fraction=np.zeros(2),
        evictions=np.zeros(2),
        churn=np.array([0, 3]),
        reference_watts=np.array([60.0, 30.0]),
        config=config,
    )
    # E = [0.5, 1], S = [0.5, 0], D = [0, 3].
    np.testing.assert_allclose(terms.reward, [-(0.25 + 0.25), -(0.5 + 3.0)])


def test_cluster_reward_hand_worked():
    terms = workload_rewards(
        watts=np.array([10.0, 10.0]),
        latency_p95_seconds=np.array([0.3, 0.1]),
        slo_latency_p95_seconds=np.array([0.2, 0.2]),
        energy_weight=np.array([0.2, 0.6]),
        oom_kills=np.array([0, 1]),
        throttled_fraction=np.zeros(2),
        evictions=np.zeros(2),
        churn=np.zeros(2),
    )
    # w = 0.4, E = 1500 / 1000 = 1.5, mean S = (1.5 + 0) / 2, mean D = (0 + 1) / 2.
    expected = -(0.4 * 1.5 + 0.6 * 0.75 + 0.5)
    assert cluster_reward(terms, cluster_watts=1500.0, cluster_reference_watts=1000.0) == pytest.approx(expected)


def test_cluster_reward_without_workloads_is_energy_only():
    empty = np.zeros(0)
    terms = workload_rewards(
        watts=empty, latency_p95_seconds=empty, slo_latency_p95_seconds=empty, energy_weight=empty,
        oom_kills=empty, throttled_fraction=empty, evictions=empty, churn=empty,
    )
    assert cluster_reward(terms, cluster_watts=500.0, cluster_reference_watts=1000.0) == pytest.approx(-0.5)


def test_reward_is_never_positive_and_zero_when_everything_is_free_and_met():
    terms = workload_rewards(
        watts=np.zeros(3), latency_p95_seconds=np.full(3, 0.01), slo_latency_p95_seconds=np.full(3, 0.1),
        energy_weight=np.array([0.0, 0.5, 1.0]), oom_kills=np.zeros(3), throttled_fraction=np.zeros(3),
        evictions=np.zeros(3), churn=np.zeros(3),
    )
    np.testing.assert_array_equal(terms.reward, np.zeros(3))


@pytest.mark.parametrize(
    ("field", "value"),
    [("energy_reference_watts", 0.0), ("energy_term_cap", -1.0), ("churn_penalty", -0.1),
     ("slo_excess_cap", math.nan), ("oom_kill_penalty", math.inf)],
)
def test_config_rejects_bad_values_naming_the_field(field, value):
    with pytest.raises(ValueError, match=f"RewardConfig.{field}"):
        RewardConfig(**{field: value})
