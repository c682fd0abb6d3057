"""The network model: crossing fractions under random load balancing, and their cost."""

from __future__ import annotations

import numpy as np
import pytest

from thrifty.config import NetworkModelConfig
from thrifty.network import cross_node_fraction, network_effect


@pytest.mark.parametrize(
    ("pod_workload", "pod_node", "expected"),
    [
        ([0, 1], [0, 0], 0.0),  # co-located
        ([0, 1], [0, 1], 1.0),  # apart
        ([0, 0, 1, 1], [0, 1, 0, 1], 0.5),  # both spread evenly over the same two nodes
        ([0, 0, 0, 1], [0, 1, 2, 0], 2 / 3),  # one callee pod, next to one of three callers
        ([0], [0], 0.0),  # callee has no running pod: no traffic
        ([], [], 0.0),
    ],
)
def test_cross_node_fraction(pod_workload, pod_node, expected):
    fraction = cross_node_fraction(np.array(pod_workload, dtype=np.int64), np.array(pod_node, dtype=np.int64),
                                   np.array([0]), np.array([1]))
    assert fraction[0] == pytest.approx(expected)


def test_cross_node_fraction_matches_the_share_formula():
    rng = np.random.default_rng(1)
    for _ in range(200):
        workloads, nodes, pods, edges = (int(rng.integers(1, n)) for n in (8, 6, 30, 10))
        pod_workload, pod_node = rng.integers(0, workloads, pods), rng.integers(0, nodes, pods)
        source, target = rng.integers(0, workloads, edges), rng.integers(0, workloads, edges)
        counts = np.zeros((workloads, nodes))
        np.add.at(counts, (pod_workload, pod_node), 1)
        totals = counts.sum(axis=1)
        shares = counts / np.maximum(totals[:, None], 1)
        expected = np.where((totals[source] > 0) & (totals[target] > 0),
                            1 - (shares[source] * shares[target]).sum(axis=1), 0.0)
        np.testing.assert_allclose(cross_node_fraction(pod_workload, pod_node, source, target), expected, atol=1e-12)


def test_network_effect_hand_worked():
    config = NetworkModelConfig(cross_node_call_latency_seconds=0.0005, network_energy_joules_per_byte=1e-8)
    # Workload 0 (10 req/s) makes 2 calls per request to workload 1 (apart) and 1 to workload 2 (co-located).
    effect = network_effect(
        np.array([10.0, 20.0, 5.0]),
        np.array([0, 1, 2]),
        np.array([0, 1, 0]),
        source=np.array([0, 0]),
        target=np.array([1, 2]),
        calls_per_request=np.array([2.0, 1.0]),
        bytes_per_call=np.array([1000.0, 1000.0]),
        config=config,
    )
    np.testing.assert_allclose(effect.calls_per_second, [20.0, 10.0])
    np.testing.assert_allclose(effect.cross_node_calls_per_second, [20.0, 0.0])
    np.testing.assert_allclose(effect.added_latency_seconds, [0.001, 0.0, 0.0])
    np.testing.assert_allclose(effect.watts, [20 * 1000 * 1e-8, 0.0, 0.0])
    assert effect.total_watts == pytest.approx(2e-4)


def test_network_config_rejects_negative_values():
    with pytest.raises(ValueError, match="NetworkModelConfig.cross_node_call_latency_seconds"):
        NetworkModelConfig(cross_node_call_latency_seconds=-1.0)
