"""Each baseline's decision on a hand-worked case (expected numbers derived in the comments)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tests.unit.snapshots import GI, MI, make_snapshot
from thrifty.baselines import (
    ClusterAutoscaler,
    ClusterAutoscalerNodes,
    HorizontalPodAutoscaler,
    HpaConfig,
    KubeDefaultScoring,
    KubernetesStack,
    MostAllocatedScoring,
    NetworkAwareScoring,
    RandomPlacement,
    StaticSizing,
    TargetLoadPacking,
    VpaConfig,
    VpaRecommender,
)
from thrifty.baselines.histogram import DecayingHistogram, ExponentialBuckets
from thrifty.baselines.hpa import desired_replicas
from thrifty.baselines.network_aware import dependency_costs, normalised_network_score
from thrifty.baselines.trimaran import target_load_packing_score
from thrifty.baselines.vpa import MEMORY
from thrifty.core import plan_placements
from thrifty.policy.heuristic import HeuristicPolicy
from thrifty.safety import choose_node


def _with_node_usage(snapshot, usage):
    nodes = dataclasses.replace(snapshot.nodes, cpu_usage_millicores=np.asarray(usage, dtype=float))
    return dataclasses.replace(snapshot, nodes=nodes)


# Two nodes, 4 and 8 cores, 8 GiB each; node 0 holds a 1000m / 2 GiB pod; pod 1 (1000m, 1 GiB)
# is Pending. With it, node 0 has 2000m of 4000m (50 %) and 3 GiB of 8 GiB (37.5 %); node 1
# 1000m of 8000m (12.5 %) and 1 GiB of 8 GiB (12.5 %).
TWO_NODES = dict(
    node_cpu=[4000, 8000], node_memory=[8 * GI, 8 * GI],
    pods=[{"node": 0, "cpu": 1000, "memory": 2 * GI, "usage": 500, "memory_usage": GI},
          {"cpu": 1000, "memory": 1 * GI}],
)

# Three 4-core / 8 GiB nodes; workload 1 has two pods on node 1 and one on node 2 (100m /
# 128 MiB each); pod 3 of workload 0, which depends on workload 1 with weight 1, is Pending.
DEPENDENT = dict(
    node_cpu=[4000, 4000, 4000], node_memory=[8 * GI] * 3,
    pods=[{"workload": 1, "node": 1}, {"workload": 1, "node": 1}, {"workload": 1, "node": 2}, {"workload": 0}],
    workloads=[{}, {}], dependencies=[(0, 1, 1.0)],
)

PLACEMENT_CASES = [
    pytest.param(
        KubeDefaultScoring(0), TWO_NODES, 1, None,
        # LeastAllocated: node 0 cpu (4000-2000)*100//4000 = 50, memory 5*100//8 = 62 -> (50+62)//2 = 56;
        #   node 1: cpu 7*100//8 = 87, memory 87 -> 87.
        # Balanced: node 0 int((1 - |0.5 - 0.375|/2) * 100) = 93; node 1: 100.
        [56 + 93, 87 + 100],
        id="kube-default: LeastAllocated + BalancedAllocation prefers the emptier node",
    ),
    pytest.param(
        MostAllocatedScoring(0), TWO_NODES, 1, None,
        # MostAllocated: node 0 cpu 50, memory 3*100//8 = 37 -> 43; node 1: 12, 12 -> 12. Balanced as above.
        [43 + 93, 12 + 100],
        id="most-allocated: packs onto the fuller node",
    ),
    pytest.param(
        TargetLoadPacking(0), dict(node_cpu=[10000] * 4, pods=[{"cpu": 500, "cpu_limit": 1000}]), 0,
        [3000, 0, 8000, 9500],
        # Predicted use of the pod is its limit, 1000m. U = 40 %, 10 %, 90 %, 105 % with target 40:
        # round(60*40/40 + 40) = 100; round(60*10/40 + 40) = 55; round(40*10/60) = 7; over 100 % -> 0.
        [100, 55, 7, 0],
        id="trimaran: rises to the target, then falls",
    ),
    pytest.param(
        TargetLoadPacking(0),
        dict(node_cpu=[10000, 10000], pods=[{"node": 0, "cpu": 1000}, {"cpu": 1000}]), 1,
        [0, 0],
        # Node 0 holds a pod without a measurement yet: predicted at request x 1.5 = 1500m, plus the
        # pod's own 1500m -> 30 % -> round(60*30/40 + 40) = 85; node 1: 15 % -> round(62.5) = 62.
        [85, 62],
        id="trimaran: pods bound since the last measurement count at their predicted use",
    ),
    pytest.param(
        NetworkAwareScoring(0, network_weight=5), DEPENDENT, 3, None,
        # Default profile (pod 100m / 128 MiB added): node 0 97 fit + 99 balanced = 196;
        #   node 1 (300m, 384 MiB) 93 + 98 = 191; node 2 (200m, 256 MiB) 95 + 99 = 194.
        # Network cost 100 per dependent pod elsewhere: 300, 100, 200 -> normalised 0, 100, 50.
        [196, 191 + 5 * 100, 194 + 5 * 50],
        id="network-aware: default profile + 5 x NetworkOverhead",
    ),
]


@pytest.mark.parametrize(("policy", "layout", "pod", "node_usage", "expected"), PLACEMENT_CASES)
def test_placement_baseline_scores(policy, layout, pod, node_usage, expected) -> None:
    snapshot = make_snapshot(**layout)
    if node_usage is not None:
        snapshot = _with_node_usage(snapshot, node_usage)
    np.testing.assert_array_equal(policy.raw_scores(snapshot, pod), expected)
    jittered = policy.score_nodes(snapshot, pod)
    assert np.argmax(jittered) == np.argmax(expected), "tie-breaking jitter must not reorder different scores"


def test_dependency_cost_is_weighted_per_remote_pod() -> None:
    snapshot = make_snapshot(**{**DEPENDENT, "dependencies": [(0, 1, 0.5)]})
    costs = dependency_costs(snapshot, 3)
    np.testing.assert_allclose(costs, [150, 50, 100])
    np.testing.assert_array_equal(normalised_network_score(costs, np.array([True, True, True])), [0, 100, 50])


def test_tie_breaking_is_seeded_and_uniform_among_equal_scores() -> None:
    snapshot = make_snapshot(node_cpu=[4000] * 4, pods=[{"cpu": 100}])
    choices = [int(np.argmax(KubeDefaultScoring(seed).score_nodes(snapshot, 0))) for seed in range(40)]
    assert len(set(choices)) == 4, "equal nodes must all get chosen under some seed, as selectHost does"
    assert (KubeDefaultScoring(7).score_nodes(snapshot, 0).tolist()
            == KubeDefaultScoring(7).score_nodes(snapshot, 0).tolist())


def test_random_placement_uses_the_generator_passed_in() -> None:
    snapshot = make_snapshot(node_cpu=[4000] * 5, pods=[{"cpu": 100}])
    scores = RandomPlacement(np.random.default_rng(3)).score_nodes(snapshot, 0)
    np.testing.assert_array_equal(scores, np.random.default_rng(3).random(5))


@pytest.mark.parametrize(("utilisation", "target", "expected"), [
    (0.0, 40, 40), (20.0, 40, 70), (40.0, 40, 100), (70.0, 40, 20), (100.0, 40, 0), (120.0, 40, 0),
    (80.0, 80, 100), (90.0, 80, 40),
])
def test_target_load_packing_formula(utilisation, target, expected) -> None:
    assert target_load_packing_score(np.array([utilisation]), target)[0] == expected


# ---------------------------------------------------------------------------- VPA

ONE_POD_VPA = dict(
    node_cpu=[8000],
    pods=[{"workload": 0, "node": 0, "cpu": 1000, "memory": GI, "memory_limit": GI,
           "usage": 500, "memory_usage": 300 * MI}],
    workloads=[{}],
)
# CPU: eight samples of 0.5 core fall in bucket floor(log(0.5*0.05/0.01 + 1) / log 1.05) = 25, whose
# end is 0.01 * (1.05**26 - 1) / 0.05 = 0.511134 cores; P90 x 1.15 = 587.80m.
# Memory: one peak (300 MiB) in the 24 h interval, bucket 19, end 1e7 * (1.05**20 - 1) / 0.05 =
# 330659541 B; x 1.15 = 380258472 B.
VPA_CPU_TARGET = 587.8047
VPA_MEMORY_TARGET = 380258472.2


@pytest.mark.parametrize(("age_seconds", "expected_cpu", "expected_memory"), [
    pytest.param(100.0, 1000.0, float(GI), id="young pod inside the recommended range: kept"),
    pytest.param(13 * 3600.0, VPA_CPU_TARGET, VPA_MEMORY_TARGET, id="pod older than 12 h: resized to target"),
])
def test_vpa_recommends_p90_plus_margin_and_updates_as_the_updater(age_seconds, expected_cpu, expected_memory) -> None:
    pods = [{**ONE_POD_VPA["pods"][0], "age": age_seconds}]
    snapshot = make_snapshot(**{**ONE_POD_VPA, "pods": pods})
    vpa = VpaRecommender()
    proposal = vpa.size(snapshot)
    recommendation = vpa.recommend("default/w0", "app")
    assert recommendation.cpu_target == pytest.approx(VPA_CPU_TARGET, rel=1e-6)
    assert recommendation.memory_target == pytest.approx(VPA_MEMORY_TARGET, rel=1e-6)
    assert recommendation.cpu_upper > 1000.0, "eight minutes of history: the upper bound is far out"
    assert proposal.cpu_request_millicores[0] == pytest.approx(expected_cpu, rel=1e-6)
    assert proposal.memory_request_bytes[0] == pytest.approx(expected_memory, rel=1e-6)
    assert proposal.replicas.tolist() == [1.0]


def test_vpa_bumps_memory_after_an_oom_kill() -> None:
    snapshot = make_snapshot(**ONE_POD_VPA)
    vpa = VpaRecommender()
    vpa.size(snapshot)
    killed = make_snapshot(**{**ONE_POD_VPA, "pods": [{**ONE_POD_VPA["pods"][0], "ooms": 1}], "time_seconds": 1060.0})
    proposal = vpa.size(killed)
    # used = max(request 1 GiB, peak 300 MiB); needed = max(used + 100 MiB, 1.2 x used) = 1.2 GiB,
    # which replaces the interval's peak: bucket 41, end 1e7 * (1.05**42 - 1) / 0.05 = 1352.3e6 B;
    # x 1.15 = 1555.17e6 B. A quick OOM resizes at once, whatever the pod's age.
    assert vpa.recommend("default/w0", "app").memory_target == pytest.approx(1555165137.7, rel=1e-6)
    assert proposal.memory_request_bytes[0] == pytest.approx(1555165137.7, rel=1e-6)


def test_vpa_never_goes_below_the_pod_minimum() -> None:
    pods = [{**ONE_POD_VPA["pods"][0], "usage": 1.0, "memory_usage": 10 * MI, "age": 13 * 3600.0}]
    vpa = VpaRecommender()
    proposal = vpa.size(make_snapshot(**{**ONE_POD_VPA, "pods": pods}))
    assert proposal.cpu_request_millicores[0] == pytest.approx(25.0)
    assert proposal.memory_request_bytes[0] == pytest.approx(250 * MI)


def test_decaying_histogram_halves_old_samples_every_half_life() -> None:
    histogram = DecayingHistogram(ExponentialBuckets(1000.0, 0.01, 1.05), half_life_seconds=100.0)
    histogram.add(1.0, 1.0, 0.0)
    histogram.add(2.0, 1.0, 100.0)  # weighs 2: twice the older one
    assert histogram.total_weight == pytest.approx(3.0)
    assert histogram.percentile(0.3) < 1.1 < histogram.percentile(0.4)
    histogram.add(3.0, 1.0, 101 * 100.0)  # past 2**100: the reference moves, ratios stay
    assert histogram.percentile(0.5) > 2.9


# ---------------------------------------------------------------------------- HPA

@pytest.mark.parametrize(("usage", "requests", "current", "target", "expected"), [
    pytest.param([900, 900], [1000, 1000], 2, 0.6, 3, id="ratio 1.5: ceil(1.5 x 2) = 3"),
    pytest.param([540, 540], [1000, 1000], 2, 0.5, 2, id="ratio 1.08: within the 10 % tolerance"),
    pytest.param([556, 556], [1000, 1000], 2, 0.5, 3, id="55.6 % is 55 % in whole percent: ratio 1.1, scaled"),
    pytest.param([100, 100], [1000, 1000], 2, 0.5, 1, id="ratio 0.2: ceil(0.4) = 1"),
    pytest.param([900, np.nan], [1000, 1000], 2, 0.5,
                 2, id="unready pod at 0 %: ratio 1.8 becomes 0.9, a flip in direction, so kept"),
    pytest.param([1000, 1000, np.nan], [1000, 1000, 1000], 3, 0.5,
                 4, id="unready pod at 0 %: ratio 4/3 on 3 pods -> ceil(4) = 4"),
    pytest.param([np.nan, np.nan], [1000, 1000], 2, 0.5, 2, id="no metrics at all: kept"),
])
def test_hpa_desired_replicas(usage, requests, current, target, expected) -> None:
    usage_array, requests_array = np.array(usage, dtype=float), np.array(requests, dtype=float)
    assert desired_replicas(usage_array, requests_array, current, target, 0.1) == expected


def _hpa_snapshot(time_seconds: float, replicas: int, usage: float):
    pods = [{"workload": 0, "node": 0, "cpu": 1000, "usage": usage, "memory_usage": 100 * MI}] * replicas
    return make_snapshot(node_cpu=[16000], pods=pods, workloads=[{"max": 10}], time_seconds=time_seconds)


def test_hpa_scale_down_waits_for_the_stabilisation_window() -> None:
    hpa = HorizontalPodAutoscaler(HpaConfig(target_cpu_utilisation=0.6))
    assert hpa.size(_hpa_snapshot(1000.0, 2, 900)).replicas.tolist() == [3.0]  # ratio 1.5
    # Usage falls to 10 %: desired ceil(0.1/0.6 x 3) = 1, but 3 was recommended 120 s ago.
    assert hpa.size(_hpa_snapshot(1120.0, 3, 100)).replicas.tolist() == [3.0]
    assert hpa.size(_hpa_snapshot(1240.0, 3, 100)).replicas.tolist() == [3.0]
    # 301 s after the high recommendation it has left the 300 s window.
    assert hpa.size(_hpa_snapshot(1301.0, 3, 100)).replicas.tolist() == [1.0]


def test_hpa_keeps_requests() -> None:
    snapshot = _hpa_snapshot(1000.0, 2, 900)
    proposal = HorizontalPodAutoscaler().size(snapshot)
    np.testing.assert_array_equal(proposal.cpu_request_millicores, snapshot.containers.cpu_request_millicores)


# -------------------------------------------------------------------- the stack

def test_stack_takes_replicas_from_the_hpa_and_memory_from_the_vpa() -> None:
    pods = [{**ONE_POD_VPA["pods"][0], "usage": 900, "age": 13 * 3600.0}]
    snapshot = make_snapshot(**{**ONE_POD_VPA, "pods": pods})
    stack = KubernetesStack(HpaConfig(target_cpu_utilisation=0.6))
    proposal = stack.size(snapshot)
    assert proposal.replicas.tolist() == [2.0]  # 90 % / 60 % = 1.5 -> ceil(1.5) = 2
    assert proposal.cpu_request_millicores[0] == 1000.0  # the VPA does not touch CPU
    assert proposal.memory_request_bytes[0] == pytest.approx(VPA_MEMORY_TARGET, rel=1e-6)


def test_stack_refuses_a_vpa_on_cpu() -> None:
    with pytest.raises(ValueError, match="controlled_resources"):
        KubernetesStack(vpa_config=VpaConfig())
    assert KubernetesStack(vpa_config=VpaConfig(controlled_resources=(MEMORY,))).info.name == "k8s-stack"


def test_sizing_baselines_place_like_kube_scheduler_and_static_keeps_everything() -> None:
    snapshot = make_snapshot(**TWO_NODES)
    np.testing.assert_array_equal(np.floor(StaticSizing().score_nodes(snapshot, 1)), [149, 187])
    proposal = StaticSizing().size(snapshot)
    np.testing.assert_array_equal(proposal.cpu_request_millicores, snapshot.containers.cpu_request_millicores)


# ------------------------------------------------------------ cluster autoscaler

def test_cluster_autoscaler_drains_an_under_used_node_after_ten_minutes() -> None:
    # Node 0 holds one 500m pod (12.5 %), node 1 is at 50 %: only node 0 is under the threshold,
    # and its pod fits on node 1.
    layout = dict(node_cpu=[4000, 4000], pods=[{"workload": 0, "node": 0, "cpu": 500},
                                                {"workload": 0, "node": 1, "cpu": 2000}], workloads=[{}])
    autoscaler = ClusterAutoscaler()
    assert autoscaler.plan(make_snapshot(**layout, time_seconds=1000.0)) == ()
    assert autoscaler.plan(make_snapshot(**layout, time_seconds=1540.0)) == ()
    assert autoscaler.plan(make_snapshot(**layout, time_seconds=1600.0)) == (0,)
    assert autoscaler.tainted == {"node-0"}


@pytest.mark.parametrize("layout", [
    pytest.param(dict(node_cpu=[4000, 4000], pods=[{"node": 0, "cpu": 500}, {"node": 1, "cpu": 2000}]),
                 id="a pod without a controller blocks the drain"),
    pytest.param(dict(node_cpu=[4000, 4000], pods=[{"workload": 0, "node": 0, "cpu": 500},
                                                   {"workload": 0, "node": 1, "cpu": 3800}], workloads=[{}]),
                 id="a pod that fits nowhere else blocks the drain"),
])
def test_cluster_autoscaler_keeps_nodes_it_cannot_empty(layout) -> None:
    autoscaler = ClusterAutoscaler()
    for time in (1000.0, 2000.0):
        assert autoscaler.plan(make_snapshot(**layout, time_seconds=time)) == ()


def test_cluster_autoscaler_view_uses_standby_nodes_only_when_nothing_else_fits() -> None:
    wrapped = ClusterAutoscalerNodes(KubeDefaultScoring(0))
    roomy = make_snapshot(node_cpu=[4000, 4000], pods=[{"cpu": 500}], standby=[True, False])
    assert choose_node(roomy, 0, wrapped.score_nodes(roomy, 0)) == 1
    full = make_snapshot(node_cpu=[4000, 4000], pods=[{"node": 1, "cpu": 3900}, {"cpu": 500}], standby=[True, False])
    assert choose_node(full, 1, wrapped.score_nodes(full, 1)) == 0


def test_baselines_run_behind_the_decision_core() -> None:
    snapshot = make_snapshot(**TWO_NODES)
    decisions, _ = plan_placements(snapshot, MostAllocatedScoring(0), HeuristicPolicy())
    assert decisions[0].node == "node-0" and decisions[0].fallback is None


def test_vpa_resizes_every_pod_of_a_workload_once_one_qualifies() -> None:
    old = {**ONE_POD_VPA["pods"][0], "age": 13 * 3600.0}
    young = {**ONE_POD_VPA["pods"][0], "age": 60.0}
    proposal = VpaRecommender().size(make_snapshot(**{**ONE_POD_VPA, "pods": [old, young]}))
    np.testing.assert_allclose(proposal.cpu_request_millicores, [VPA_CPU_TARGET] * 2, rtol=1e-6)
