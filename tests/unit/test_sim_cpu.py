"""CPU sharing: limits (CFS quota) and contended nodes (CFS shares by request)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from thrifty.sim.cpu import share_node_cpu, throttle


@pytest.mark.parametrize(
    ("demand", "limit", "capped", "denied"),
    [
        (1000.0, 400.0, 400.0, 0.6),
        (300.0, 400.0, 300.0, 0.0),
        (0.0, 400.0, 0.0, 0.0),
        (500.0, math.inf, 500.0, 0.0),
        (500.0, 0.0, 0.0, 1.0),
    ],
)
def test_throttle(demand, limit, capped, denied):
    got_capped, got_denied = throttle(np.array([demand]), np.array([limit]))
    assert got_capped[0] == pytest.approx(capped) and got_denied[0] == pytest.approx(denied)


@pytest.mark.parametrize(
    ("demand", "weight", "node", "capacity", "usage", "contended"),
    [
        # Uncontended: everyone gets its demand.
        ([100, 200], [100, 100], [0, 0], [1000], [100, 200], [False]),
        # Equal demands, weights 3:1: 750 and 250.
        ([800, 800], [600, 200], [0, 0], [1000], [750, 250], [True]),
        # Water-filling: the small pod takes its 100, the other two split 900 by weight 1:2.
        ([100, 800, 800], [100, 100, 200], [0, 0, 0], [1000], [100, 300, 600], [True]),
        # A pod that needs less than its share leaves the rest to the others, in two rounds.
        ([100, 200, 2000], [300, 300, 400], [0, 0, 0], [1000], [100, 200, 700], [True]),
        # BestEffort (no request) still gets the minimum 2-share weight.
        ([500, 2000], [0, 1000], [0, 0], [1000], [1000 * 2 / 1002, 1000 * 1000 / 1002], [True]),
        # Nodes are independent.
        ([800, 800, 300], [100, 100, 100], [0, 0, 1], [1000, 1000], [500, 500, 300], [True, False]),
    ],
)
def test_share_node_cpu(demand, weight, node, capacity, usage, contended):
    got_usage, got_contended = share_node_cpu(
        np.asarray(demand, dtype=float), np.asarray(weight, dtype=float), np.asarray(node),
        np.asarray(capacity, dtype=float),
    )
    np.testing.assert_allclose(got_usage, usage)
    np.testing.assert_array_equal(got_contended, contended)


def test_share_node_cpu_never_exceeds_capacity_or_demand():
    rng = np.random.default_rng(0)
    for _ in range(200):
        pods, nodes = int(rng.integers(1, 30)), int(rng.integers(1, 5))
        demand = rng.uniform(0, 2000, pods)
        request = rng.choice([0.0, 100.0, 500.0, 1000.0], pods)
        node = rng.integers(0, nodes, pods)
        capacity = rng.uniform(500, 4000, nodes)
        usage, _ = share_node_cpu(demand, request, node, capacity)
        assert np.all(usage <= demand + 1e-9) and np.all(usage >= 0)
        per_node = np.bincount(node, weights=usage, minlength=nodes)
        wanted = np.bincount(node, weights=demand, minlength=nodes)
        np.testing.assert_allclose(per_node, np.minimum(wanted, capacity), rtol=1e-9)
