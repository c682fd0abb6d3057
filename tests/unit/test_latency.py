"""The M/M/c response-time model: Erlang C, exact percentiles, and every edge case."""

from __future__ import annotations

import math

import numpy as np
import pytest

from thrifty.config import LatencyModelConfig
from thrifty.latency import erlang_c, response_time_percentile, service_rate_per_second

LN20 = math.log(20.0)
CAP = LatencyModelConfig().saturated_latency_seconds


def erlang_c_direct(c: int, a: float) -> float:
    """Erlang C from its textbook sum, for comparison."""
    top = a**c / math.factorial(c) * c / (c - a)
    return top / (sum(a**k / math.factorial(k) for k in range(c)) + top)


@pytest.mark.parametrize(
    ("servers", "load", "expected"),
    [
        (1, 0.5, 0.5),  # M/M/1: P(wait) = rho
        (2, 1.0, 1.0 / 3.0),  # hand-worked: B(2,1) = 0.2, C = 0.2 / (1 - 0.5 * 0.8)
        (1, 0.0, 0.0),  # no load, nobody waits
        (3, 3.0, 1.0),  # a = c: unstable, everyone waits
        (2, 5.0, 1.0),  # a > c
        (0, 0.1, 1.0),  # no server
        (2, float("nan"), float("nan")),
        (float("nan"), 1.0, float("nan")),
    ],
)
def test_erlang_c_known_values(servers, load, expected):
    assert float(erlang_c(servers, load)) == pytest.approx(expected, nan_ok=True)


@pytest.mark.parametrize(("servers", "load"), [(5, 4.0), (10, 7.5), (20, 19.0), (3, 0.2), (50, 40.0)])
def test_erlang_c_matches_textbook_sum(servers, load):
    assert float(erlang_c(servers, load)) == pytest.approx(erlang_c_direct(servers, load), rel=1e-10)


def test_erlang_c_is_vectorised_over_mixed_server_counts():
    servers = np.array([1, 5, 10, 2])
    load = np.array([0.5, 4.0, 7.5, 1.0])
    expected = [erlang_c_direct(c, a) for c, a in zip(servers.tolist(), load.tolist(), strict=True)]
    np.testing.assert_allclose(erlang_c(servers, load), expected, rtol=1e-10)


@pytest.mark.parametrize(
    ("arrival", "service", "servers", "p95", "saturated"),
    [
        (0.5, 1.0, 1, LN20 / 0.5, False),  # M/M/1: T ~ Exp(mu - lambda)
        (9.0, 10.0, 1, LN20 / 1.0, False),
        (0.0, 2.0, 3, LN20 / 2.0, False),  # no arrivals: the service percentile
        (0.0, 0.0, 0, 0.0, False),  # no arrivals, no capacity: no request, no latency
        (0.0, 1.0, 0, 0.0, False),
        (2.0, 1.0, 2, CAP, True),  # lambda = c mu: saturated
        (5.0, 1.0, 2, CAP, True),  # lambda > c mu
        (1.0, 1.0, 0, CAP, True),  # no replica
        (1.0, 0.0, 3, CAP, True),  # replicas without CPU
        (0.999, 1.0, 1, CAP, False),  # stable but slower than the cap: capped, not saturated
        (5.0, math.inf, 2, 0.0, False),  # free requests
        (math.nan, 1.0, 1, math.nan, False),  # unknown inputs give unknown latency
        (1.0, math.nan, 1, math.nan, False),
        (1.0, 1.0, math.nan, math.nan, False),
    ],
)
def test_response_time_percentile_cases(arrival, service, servers, p95, saturated):
    estimate = response_time_percentile(arrival, service, servers)
    assert float(estimate.p95_seconds[0]) == pytest.approx(p95, rel=1e-9, nan_ok=True)
    assert bool(estimate.saturated[0]) is saturated


@pytest.mark.parametrize(
    ("arrival", "service", "servers", "utilisation"),
    [(0.5, 1.0, 1, 0.5), (0.0, 1.0, 1, 0.0), (3.0, 1.0, 2, 1.5), (1.0, 1.0, 0, math.inf), (math.nan, 1.0, 1, math.nan)],
)
def test_utilisation(arrival, service, servers, utilisation):
    estimate = response_time_percentile(arrival, service, servers)
    assert float(estimate.utilisation[0]) == pytest.approx(utilisation, nan_ok=True)


def test_percentile_where_wait_and_service_rates_coincide():
    # c = 2, mu = 1, lambda = 1: theta = c mu - lambda = mu, where the general formula divides by
    # zero. Then P(T > t) = (1 - C) e^-t + C (1 + t) e^-t; solve it independently by bisection.
    wait = 1.0 / 3.0
    low, high = 0.0, 100.0
    for _ in range(200):
        mid = (low + high) / 2
        survival = (1 - wait) * math.exp(-mid) + wait * (1 + mid) * math.exp(-mid)
        low, high = (mid, high) if survival > 0.05 else (low, mid)
    assert float(response_time_percentile(1.0, 1.0, 2).p95_seconds[0]) == pytest.approx(low, rel=1e-9)


@pytest.mark.parametrize(("arrival", "service", "servers"),
                         [(2.4, 1.0, 3), (7.9, 0.5, 20), (15.0, 2.0, 10), (0.3, 1.0, 5)])
def test_percentile_matches_monte_carlo(arrival, service, servers):
    rng = np.random.default_rng(7)
    samples = 400_000
    wait_probability = float(erlang_c(servers, arrival / service))
    waits = np.where(
        rng.random(samples) < wait_probability, rng.exponential(1 / (servers * service - arrival), samples), 0.0
    )
    response = waits + rng.exponential(1 / service, samples)
    expected = np.quantile(response, 0.95)
    p95_seconds = float(response_time_percentile(arrival, service, servers).p95_seconds[0])
    assert p95_seconds == pytest.approx(expected, rel=0.02)


def test_one_fast_replica_beats_many_slow_ones_of_equal_total_capacity():
    # Classic queueing result: one server of rate 4 responds faster than 4 servers of rate 1.
    one = response_time_percentile(2.0, 4.0, 1).p95_seconds[0]
    many = response_time_percentile(2.0, 1.0, 4).p95_seconds[0]
    assert one < many


def test_more_replicas_never_hurt_and_load_never_helps():
    replicas = response_time_percentile(np.full(6, 3.0), 1.0, np.arange(4, 10)).p95_seconds
    assert np.all(np.diff(replicas) <= 1e-12)
    load = response_time_percentile(np.linspace(0.0, 3.9, 40), 1.0, 4).p95_seconds
    assert np.all(np.diff(load) >= -1e-12)


def test_extra_latency_is_added_and_capped():
    base = response_time_percentile(0.5, 1.0, 1).p95_seconds[0]
    delayed = response_time_percentile(0.5, 1.0, 1, extra_latency_seconds=0.25)
    assert delayed.p95_seconds[0] == pytest.approx(base + 0.25)
    assert response_time_percentile(0.5, 1.0, 1, extra_latency_seconds=1e6).p95_seconds[0] == CAP


def test_other_percentiles_and_caps():
    config = LatencyModelConfig(latency_percentile=0.5, saturated_latency_seconds=3.0)
    median = response_time_percentile([0.5, 9.0], 1.0, 1, config=config)
    assert median.p95_seconds[0] == pytest.approx(math.log(2) / 0.5)
    assert median.p95_seconds[1] == 3.0 and median.saturated[1]


def test_service_rate_is_cpu_over_work_per_request():
    np.testing.assert_allclose(
        service_rate_per_second([1000.0, 500.0, 0.0, -5.0, 100.0], [10.0, 10.0, 10.0, 10.0, 0.0]),
        [100.0, 50.0, 0.0, 0.0, math.inf],
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [("latency_percentile", 1.0), ("latency_percentile", 0.0), ("saturated_latency_seconds", 0.0),
     ("saturated_latency_seconds", math.inf)],
)
def test_config_rejects_bad_values_naming_the_field(field, value):
    with pytest.raises(ValueError, match=f"LatencyModelConfig.{field}"):
        LatencyModelConfig(**{field: value})
