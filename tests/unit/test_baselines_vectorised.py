"""The vectorised autoscaler, VPA and descheduler rules against their per-pod references.

:mod:`thrifty.baselines.reference` keeps each rule written one pod (and one sample) at a time;
the baselines the benchmark runs compute them with numpy. Here both are fed the same inputs
(random ones, and every snapshot of simulated runs in which the vectorised one acts) and must
agree exactly: the same proposals and evictions, and the same internal state, histogram
weights to the last bit.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from thrifty.baselines.cluster_autoscaler import ClusterAutoscaler
from thrifty.baselines.consolidation import HighNodeUtilization, KarpenterConsolidation
from thrifty.baselines.histogram import DecayingHistogram, ExponentialBuckets
from thrifty.baselines.hpa import HorizontalPodAutoscaler, desired_replicas, desired_replicas_all
from thrifty.baselines.reference import (
    ReferenceClusterAutoscaler,
    ReferenceHighNodeUtilization,
    ReferenceHpa,
    ReferenceKarpenter,
    ReferenceVpa,
)
from thrifty.baselines.stack import KubernetesStack
from thrifty.baselines.vpa import VpaRecommender
from thrifty.bench.policies import parse_policy
from thrifty.bench.runner import KubernetesHarness
from thrifty.bench.scenarios import POD_STREAM, SCENARIO_PARTS, SHIPPED_TRACES, ScenarioSpec, load_traces
from thrifty.config import SimulatorConfig
from thrifty.energy import power_class_for_cpu
from thrifty.sim import Scenario, ScenarioNodes, Simulator, WorkloadSpec
from thrifty.snapshot import ClusterSnapshot

GI, MI = 2.0**30, 2.0**20


# ----------------------------------------------------------------- random inputs


@pytest.mark.parametrize("buckets", [ExponentialBuckets(1000.0, 0.01, 1.05), ExponentialBuckets(1e12, 1e7, 1.05)])
def test_histogram_add_many_is_add_in_order(buckets) -> None:
    rng = np.random.default_rng(0)
    scale = 1.0 if buckets.first_bucket < 1 else 1e9
    for _ in range(100):
        n = int(rng.integers(1, 200))
        edges = np.array([buckets.start(int(b)) for b in rng.integers(0, 300, 5)])
        values = np.concatenate([rng.lognormal(0, 2, n) * scale, edges, np.nextafter(edges, 0), [0.0]])
        rng.shuffle(values)
        times = np.sort(rng.choice(np.arange(0.0, 3 * 86_400.0, 60.0), len(values)))
        weights = rng.uniform(0.1, 3.0, len(values))
        one, many = DecayingHistogram(buckets, 86_400.0), DecayingHistogram(buckets, 86_400.0)
        for value, weight, time in zip(values.tolist(), weights.tolist(), times.tolist(), strict=True):
            one.add(value, weight, time)
        many.add_many(values, weights, times)
        assert np.array_equal(one.weights, many.weights)
        assert (one.total_weight, one.reference_seconds) == (many.total_weight, many.reference_seconds)
        assert buckets.find_many(values).tolist() == [buckets.find(v) for v in values.tolist()]


def test_histogram_add_many_past_the_decay_horizon_moves_the_reference_as_add() -> None:
    buckets = ExponentialBuckets(1000.0, 0.01, 1.05)
    one, many = DecayingHistogram(buckets, 60.0), DecayingHistogram(buckets, 60.0)
    values, times = np.array([1.0, 2.0, 3.0]), np.array([0.0, 50 * 60.0, 150 * 60.0])  # 150 half-lives on
    for value, time in zip(values.tolist(), times.tolist(), strict=True):
        one.add(value, 1.0, time)
    many.add_many(values, 1.0, times)
    assert np.array_equal(one.weights, many.weights) and one.reference_seconds == many.reference_seconds


def test_hpa_recommendations_of_all_workloads_match_one_at_a_time() -> None:
    rng = np.random.default_rng(1)
    for _ in range(300):
        n_workloads, n_pods = int(rng.integers(1, 8)), int(rng.integers(0, 60))
        workload = rng.integers(-1, n_workloads, n_pods)
        request = rng.choice([0.0, 100.0, 250.0, 500.0, 1000.0], n_pods)
        usage = np.where(rng.random(n_pods) < 0.2, np.nan, request * rng.uniform(0.0, 2.0, n_pods))
        # Sums on a rounding edge, where the order of a sum could decide the rounding.
        usage = np.where(rng.random(n_pods) < 0.2, np.round(usage) + 0.5, usage)
        current = rng.integers(0, 25, n_workloads)
        target, tolerance = float(rng.choice([0.5, 0.6, 0.8])), 0.1
        got = desired_replicas_all(workload, usage, request, current, target, tolerance)
        want = [desired_replicas(usage[workload == w], request[workload == w], int(current[w]), target, tolerance)
                for w in range(n_workloads)]
        assert got.tolist() == want


# ---------------------------------------------------------- runs, side by side


def _state(obj: Any) -> Any:
    """Everything a baseline remembers, as comparable plain data."""
    if isinstance(obj, DecayingHistogram):
        return ("histogram", obj.weights.tolist(), obj.total_weight, obj.reference_seconds)
    if isinstance(obj, dict):
        return {k: _state(v) for k, v in obj.items() if k not in ("placement", "info") and not callable(v)}
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    if isinstance(obj, (list, tuple)):
        return [_state(v) for v in obj]
    if hasattr(obj, "__dict__") and not isinstance(obj, (type, np.random.Generator)):
        # Every attribute, the private ones (histograms, per-container states) included.
        return _state(vars(obj))
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return obj


class Shadowed:
    """A sizing policy whose every proposal is checked against its reference twin's."""

    def __init__(self, real: Any, reference: Any) -> None:
        self.real, self.reference = real, reference
        self.info = real.info
        self.calls = 0

    def size(self, snapshot: ClusterSnapshot):
        got, want = self.real.size(snapshot), self.reference.size(snapshot)
        for field in dataclasses.fields(got):
            assert np.array_equal(getattr(got, field.name), getattr(want, field.name)), field.name
        assert _state(self.real) == _state(self.reference)
        self.calls += 1
        return got


def _reference_sizing(sizing: Any) -> Any:
    if isinstance(sizing, KubernetesStack):
        twin = KubernetesStack(sizing.hpa_config, sizing.vpa_config)
        twin.hpa, twin.vpa = ReferenceHpa(sizing.hpa_config), ReferenceVpa(sizing.vpa_config)
        return twin
    if isinstance(sizing, VpaRecommender):
        return ReferenceVpa(sizing.config)
    if isinstance(sizing, HorizontalPodAutoscaler):
        return ReferenceHpa(sizing.config)
    return None


def _shadow_plan(real: Any, reference: Any, counts: dict[str, int]) -> None:
    """Make ``real.plan`` also run ``reference.plan`` on the same snapshot and compare."""
    plan, reference_plan = real.plan, reference.plan

    def checked(snapshot: ClusterSnapshot) -> tuple[int, ...]:
        got, want = plan(snapshot), reference_plan(snapshot)
        assert got == want
        assert _state(real) == _state(reference)
        counts[type(real).__name__] = counts.get(type(real).__name__, 0) + len(got)
        return got

    def scaled_up(time_seconds: float) -> None:
        type(real).record_scale_up(real, time_seconds)
        reference.record_scale_up(time_seconds)

    real.plan = checked
    real.record_scale_up = scaled_up


REFERENCE_NODE_MANAGERS: dict[type, Callable[[Any], Any]] = {
    KarpenterConsolidation: lambda a: ReferenceKarpenter(consolidate_after_seconds=a.consolidate_after_seconds),
    ClusterAutoscaler: lambda a: ReferenceClusterAutoscaler(),
    HighNodeUtilization: lambda d: ReferenceHighNodeUtilization(
        cpu_threshold_fraction=d.cpu_threshold_fraction, memory_threshold_fraction=d.memory_threshold_fraction),
}


def run_side_by_side(scenario: Scenario, policy: str, steps: int, seed: int) -> dict[str, int]:
    """Run ``policy`` (vectorised) on ``scenario``, its reference twins checking every call;
    returns how many calls were checked and pods evicted."""
    built = parse_policy(policy).build(seed)
    sizing = built.sizing
    twin = _reference_sizing(sizing)
    if twin is not None:
        sizing = Shadowed(sizing, twin)
    counts: dict[str, int] = {}
    for manager in (built.autoscaler, built.descheduler):
        if manager is not None:
            _shadow_plan(manager, REFERENCE_NODE_MANAGERS[type(manager)](manager), counts)
    simulator = Simulator(scenario, config=SimulatorConfig(), seed=seed)
    harness = KubernetesHarness(simulator, placement_policy=built.placement, sizing_policy=sizing,
                                autoscaler=built.autoscaler, descheduler=built.descheduler)
    for _ in range(steps):
        counts["oom kills"] = counts.get("oom kills", 0) + int(harness.step().result.workload_oom_kills.sum())
    counts["sizing calls"] = sizing.calls if isinstance(sizing, Shadowed) else 0
    return counts


def oom_prone_scenario(seed: int) -> Scenario:
    """A few nodes and workloads whose memory bursts past the limit now and then, whose replicas
    differ in CPU and memory: OOM kills, new memory peaks and node drains all happen."""
    rng = np.random.default_rng(seed)
    steps = 240
    cpu = rng.choice([8_000.0, 16_000.0, 32_000.0], 6)
    nodes = ScenarioNodes(names=tuple(f"node-{i}" for i in range(6)), cpu_capacity_millicores=cpu,
                          memory_capacity_bytes=cpu / 1000 * 4 * GI,
                          power_class=tuple(power_class_for_cpu(c) for c in cpu))
    workloads = []
    for w in range(4):
        memory = 300 * MI * np.exp(np.cumsum(rng.normal(0, 0.05, steps)))
        memory *= np.where(rng.random(steps) < 0.03, 1.6, 1.0)
        rate = 20.0 * (1.5 + np.sin(np.arange(steps) / 30.0 + w))
        workloads.append(WorkloadSpec(
            name=f"app/w{w}", request_rate_per_second=rate, cpu_per_request_millicore_seconds=float(rng.uniform(5, 30)),
            cpu_baseline_millicores=30.0 * rng.lognormal(0, 0.5, steps), memory_per_pod_bytes=memory,
            cpu_request_millicores=300.0, cpu_limit_millicores=600.0, memory_request_bytes=float(np.median(memory)),
            memory_limit_bytes=float(np.median(memory)) * 1.3, replicas=int(rng.integers(2, 6)), replicas_max=12,
            slo_latency_p95_seconds=0.2, memory_max_bytes=8 * GI))
    return Scenario(nodes=nodes, workloads=tuple(workloads), replica_memory_phases=True, replica_cpu_phases=True,
                    replica_cpu_spread=0.2, replica_seed=seed)


SIDE_BY_SIDE_POLICIES = ("kube-default+vpa", "k8s-stack", "kube-default+hpa",
                         "most-allocated+stack+descheduler-hnu", "kube-default+stack+karpenter-underutilized")


@pytest.mark.parametrize("policy", SIDE_BY_SIDE_POLICIES)
def test_vectorised_baselines_decide_as_their_references_on_an_oom_prone_cluster(policy) -> None:
    counts = run_side_by_side(oom_prone_scenario(3), policy, 240, seed=3)
    assert counts["sizing calls"] == 240
    assert counts["oom kills"] > 0


@pytest.fixture(scope="module")
def heldout():
    files = sorted(SHIPPED_TRACES.glob("*/*-heldout.*")) + [SHIPPED_TRACES / "alibaba-openb/nodes.csv.gz"]
    loaded, _ = load_traces(files, split="heldout", parts=SCENARIO_PARTS + (POD_STREAM,))
    return loaded


@pytest.mark.parametrize("policy", SIDE_BY_SIDE_POLICIES)
@pytest.mark.parametrize(("regime", "nodes", "steps"), [("loaded", 128, 60), ("light", 16, 120)])
def test_vectorised_baselines_decide_as_their_references_on_benchmark_scenarios(
        heldout, policy, regime, nodes, steps) -> None:
    spec = ScenarioSpec(n_nodes=nodes, seed=1, regime=regime)
    counts = run_side_by_side(spec.build(heldout, steps), policy, steps, seed=1)
    assert counts["sizing calls"] == steps


def test_the_side_by_side_check_would_see_a_difference() -> None:
    # A reference that differs by one bucket's worth of weight fails the comparison.
    real, reference = VpaRecommender(), ReferenceVpa()
    shadow = Shadowed(real, reference)
    simulator = Simulator(oom_prone_scenario(0), seed=0)
    for pod in simulator.pending_pods():
        assert any(simulator.bind(pod, n) for n in range(len(simulator.node_names)))
    simulator.step()
    shadow.size(simulator.snapshot())
    next(iter(reference._aggregates.values())).cpu.weights[0] += math.ulp(1.0)
    simulator.step()
    with pytest.raises(AssertionError):
        shadow.size(simulator.snapshot())
