"""The power model: load curve, node power states, and Kepler-style attribution to pods."""

from __future__ import annotations

import math

import numpy as np
import pytest

from thrifty.energy import DEFAULT_PROFILES, SPECPOWER_SHAPE, PowerModel, PowerProfile, power_class_for_cpu
from thrifty.snapshot import ClusterSnapshot, ContainerTable, NodeTable, PodTable, WorkloadTable

MEDIUM = DEFAULT_PROFILES["medium"]
GIB = 2.0**30


def nodes(
    capacity: list[float],
    usage: list[float],
    *,
    requested: list[float] | None = None,
    standby: list[bool] | None = None,
    power_class: str = "medium",
) -> NodeTable:
    n = len(capacity)
    return NodeTable(
        names=tuple(f"node-{i}" for i in range(n)),
        cpu_capacity_millicores=np.asarray(capacity, dtype=float),
        memory_capacity_bytes=np.full(n, 64 * GIB),
        cpu_requested_millicores=np.asarray(requested if requested is not None else [0.0] * n, dtype=float),
        memory_requested_bytes=np.zeros(n),
        cpu_usage_millicores=np.asarray(usage, dtype=float),
        memory_usage_bytes=np.full(n, np.nan),
        power_class=(power_class,) * n,
        schedulable=np.ones(n, dtype=bool),
        standby=np.asarray(standby if standby is not None else [False] * n),
    )


def snapshot(node_table: NodeTable, pod_node: list[int], pod_request: list[float], pod_usage: list[float],
             pod_workload: list[int], n_workloads: int) -> ClusterSnapshot:
    p = len(pod_node)
    pods = PodTable(
        names=tuple(f"default/pod-{i}" for i in range(p)),
        workload_index=np.asarray(pod_workload, dtype=np.int64),
        node_index=np.asarray(pod_node, dtype=np.int64),
        cpu_request_millicores=np.asarray(pod_request, dtype=float),
        cpu_limit_millicores=np.full(p, np.inf),
        memory_request_bytes=np.zeros(p),
        memory_limit_bytes=np.full(p, np.inf),
        cpu_usage_millicores=np.asarray(pod_usage, dtype=float),
        memory_usage_bytes=np.full(p, np.nan),
        age_seconds=np.zeros(p),
    )
    containers = ContainerTable(
        pod_index=np.zeros(0, dtype=np.int64), names=(), workload_index=np.zeros(0, dtype=np.int64),
        cpu_request_millicores=np.zeros(0), cpu_limit_millicores=np.zeros(0), memory_request_bytes=np.zeros(0),
        memory_limit_bytes=np.zeros(0), cpu_history_millicores=np.zeros((0, 1)),
        memory_history_bytes=np.zeros((0, 1)), history_step_seconds=60.0,
        throttled_periods_total=np.zeros(0), oom_kills_total=np.zeros(0),
    )
    w = n_workloads
    workloads = WorkloadTable(
        names=tuple(f"default/w-{i}" for i in range(w)), replicas=np.ones(w, dtype=np.int64),
        replicas_min=np.ones(w, dtype=np.int64), replicas_max=np.ones(w, dtype=np.int64),
        cpu_min_millicores=np.zeros(w), cpu_max_millicores=np.zeros(w), memory_min_bytes=np.zeros(w),
        memory_max_bytes=np.zeros(w), slo_latency_p95_seconds=np.ones(w), energy_weight=np.full(w, 0.5),
        request_rate_per_second=np.zeros(w), latency_p95_seconds=np.zeros(w),
    )
    return ClusterSnapshot(time_seconds=0.0, nodes=node_table, pods=pods, containers=containers, workloads=workloads)


@pytest.mark.parametrize(
    ("utilisation", "fraction"),
    [
        (0.0, 0.0),
        (1.0, 1.0),
        (0.1, SPECPOWER_SHAPE[1]),
        (0.05, SPECPOWER_SHAPE[1] / 2),  # midpoint of the first segment
        (0.55, (SPECPOWER_SHAPE[5] + SPECPOWER_SHAPE[6]) / 2),  # midpoint of a middle segment
        (1.7, 1.0),  # clipped above 100 %
        (-0.3, 0.0),  # clipped below 0 %
    ],
)
def test_profile_follows_the_curve(utilisation, fraction):
    expected = MEDIUM.idle_watts + (MEDIUM.peak_watts - MEDIUM.idle_watts) * fraction
    assert float(MEDIUM.watts(utilisation)) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("capacity", "usage", "requested", "standby", "expected"),
    [
        (64_000, 0.0, 0.0, False, MEDIUM.idle_watts),
        (64_000, 64_000.0, 0.0, False, MEDIUM.peak_watts),
        # 5 %: interpolated
        (64_000, 3_200.0, 0.0, False,
         MEDIUM.idle_watts + (MEDIUM.peak_watts - MEDIUM.idle_watts) * SPECPOWER_SHAPE[1] / 2),
        (64_000, 0.0, 0.0, True, MEDIUM.standby_watts),
        (0, 0.0, 0.0, False, MEDIUM.idle_watts),  # zero capacity, nothing runs: idle
        (0, 10.0, 0.0, False, MEDIUM.peak_watts),  # zero capacity, something runs: saturated
        (64_000, math.nan, 32_000.0, False, MEDIUM.watts(0.5)),  # unknown usage: taken as requested
    ],
)
def test_node_watts_of_one_node(capacity, usage, requested, standby, expected):
    table = nodes([capacity], [usage], requested=[requested], standby=[standby])
    assert float(PowerModel().node_watts(table)[0]) == pytest.approx(float(expected))


def test_node_watts_uses_each_nodes_class_and_an_override():
    table = NodeTable(
        names=("a", "b", "c"),
        cpu_capacity_millicores=np.full(3, 32_000.0),
        memory_capacity_bytes=np.full(3, GIB),
        cpu_requested_millicores=np.zeros(3),
        memory_requested_bytes=np.zeros(3),
        cpu_usage_millicores=np.zeros(3),
        memory_usage_bytes=np.zeros(3),
        power_class=("small", "large", "unknown-class"),
        schedulable=np.ones(3, dtype=bool),
        standby=np.zeros(3, dtype=bool),
    )
    model = PowerModel()
    idle = [DEFAULT_PROFILES["small"].idle_watts, DEFAULT_PROFILES["large"].idle_watts, MEDIUM.idle_watts]
    np.testing.assert_allclose(model.node_watts(table), idle)
    full = model.node_watts(table, np.full(3, 32_000.0))
    np.testing.assert_allclose(
        full, [DEFAULT_PROFILES["small"].peak_watts, DEFAULT_PROFILES["large"].peak_watts, MEDIUM.peak_watts])


def test_attribution_sums_to_node_power():
    # Node 0: two pods sharing dynamic power by usage and idle power by request.
    # Node 1: one pod. Node 2: empty, its idle power stays unattributed. One Pending pod.
    table = nodes([64_000, 64_000, 64_000], [12_800.0, 6_400.0, 0.0], requested=[4_000.0, 1_000.0, 0.0])
    snap = snapshot(table, [0, 0, 1, -1], [3_000.0, 1_000.0, 1_000.0, 500.0], [9_600.0, 3_200.0, 6_400.0, math.nan],
                    [0, 1, 1, 0], 2)
    model = PowerModel()
    node_watts = model.node_watts(table)
    pod_watts = model.pod_watts(snap)
    dynamic = node_watts - MEDIUM.idle_watts
    # Hand-worked node 0: dynamic split 3:1 by usage, idle split 3:1 by request.
    assert pod_watts[0] == pytest.approx(dynamic[0] * 0.75 + MEDIUM.idle_watts * 0.75)
    assert pod_watts[1] == pytest.approx(dynamic[0] * 0.25 + MEDIUM.idle_watts * 0.25)
    assert pod_watts[3] == 0.0
    per_node = np.bincount([0, 0, 1], weights=pod_watts[:3], minlength=3)
    np.testing.assert_allclose(per_node, [node_watts[0], node_watts[1], 0.0])
    np.testing.assert_allclose(model.workload_watts(snap), [pod_watts[0], pod_watts[1] + pod_watts[2]])


def test_attribution_with_unknown_pod_usage_falls_back_to_requests():
    table = nodes([64_000], [8_000.0], requested=[8_000.0])
    snap = snapshot(table, [0, 0], [6_000.0, 2_000.0], [math.nan, math.nan], [0, 0], 1)
    watts = PowerModel().pod_watts(snap)
    assert watts.sum() == pytest.approx(float(PowerModel().node_watts(table)[0]))
    assert watts[0] == pytest.approx(3 * watts[1])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"idle_watts": 300.0, "peak_watts": 200.0, "standby_watts": 5.0}, "standby_watts <= idle_watts <= peak_watts"),
        ({"idle_watts": 100.0, "peak_watts": 200.0, "standby_watts": 150.0}, "standby_watts <= idle_watts"),
        ({"idle_watts": 100.0, "peak_watts": 200.0, "standby_watts": 5.0, "curve": (0.0, 1.0)}, "11 points"),
        ({"idle_watts": 100.0, "peak_watts": 200.0, "standby_watts": 5.0,
          "curve": (0.0,) + (0.5,) * 4 + (0.4,) * 5 + (1.0,)}, "non-decreasing"),
    ],
)
def test_profile_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PowerProfile(name="x", **kwargs)


@pytest.mark.parametrize(("cpu", "power_class"),
                         [(16_000, "small"), (32_000, "small"), (64_000, "medium"), (96_000, "large")])
def test_default_power_class_by_size(cpu, power_class):
    assert power_class_for_cpu(cpu) == power_class


@pytest.mark.parametrize(("power_class", "idle_watts", "peak_watts"), [
    pytest.param("small", 54.1, 243.0, id="Dell PowerEdge R620, 2x Xeon E5-2670"),
    pytest.param("medium", 110.0, 446.0, id="Dell PowerEdge R820, Xeon 2.7 GHz"),
    pytest.param("large", 127.0, 619.0, id="HPE ProLiant DL380 Gen10 Plus, 2x Xeon Platinum 8380"),
])
def test_default_classes_are_the_cited_specpower_rows(power_class, idle_watts, peak_watts):
    """The rows of docs/models.md: active idle and 100 % wall power of one published result each."""
    profile = DEFAULT_PROFILES[power_class]
    assert (profile.idle_watts, profile.peak_watts) == (idle_watts, peak_watts)
    assert profile.curve == SPECPOWER_SHAPE


def test_a_powered_small_node_costs_less_than_a_big_one_idle_or_busy():
    classes = [DEFAULT_PROFILES[c] for c in ("small", "medium", "large")]
    for utilisation in (0.0, 0.5, 1.0):
        watts = [float(p.watts(np.array([utilisation]))[0]) for p in classes]
        assert watts == sorted(watts) and len(set(watts)) == 3, (utilisation, watts)
