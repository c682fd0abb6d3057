"""Consolidation peers (the descheduler's HighNodeUtilization, Karpenter), the VPA pairings, and how
Thrifty's consolidation and the peers are built and counted in the benchmark."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tests.unit.snapshots import make_snapshot
from tests.unit.test_sim import QUIET
from tests.unit.test_sim import scenario as sim_scenario
from tests.unit.test_sim import workload as sim_workload
from thrifty.baselines import ClusterAutoscaler, MostAllocatedScoring, TargetLoadPacking, VpaRecommender
from thrifty.baselines.consolidation import HighNodeUtilization, KarpenterConsolidation
from thrifty.bench.metrics import RunMetrics
from thrifty.bench.policies import parse_policy
from thrifty.bench.runner import KubernetesHarness
from thrifty.config import SimulatorConfig
from thrifty.policy.consolidation import Consolidator, CordonedNodes
from thrifty.policy.heuristic import HeuristicPolicy
from thrifty.sim import Simulator
from thrifty.snapshot import ClusterSnapshot


def workload_pod(node: int, cpu: float) -> dict:
    return {"workload": 0, "node": node, "cpu": cpu, "usage": cpu / 2}


@pytest.mark.parametrize(("case", "pods", "expected"), [
    pytest.param("node 0 at 10 % is underutilized; 60 % and 20 % are targets with room",
                 [workload_pod(0, 1000), workload_pod(1, 6000), {"node": 2, "cpu": 1500}, workload_pod(2, 500)],
                 (0,), id="evict-the-underutilized"),
    pytest.param("a pod without a controller is not evictable",
                 [{"node": 0, "cpu": 1000}, workload_pod(1, 6000)], (), id="bare-pod-stays"),
    pytest.param("the targets' free CPU cannot hold the pod: stop",
                 [workload_pod(0, 1500), workload_pod(1, 9500), workload_pod(2, 9500)], (), id="no-room"),
    pytest.param("least utilised node first, then the next while room lasts",
                 [workload_pod(0, 1500), workload_pod(1, 500), workload_pod(2, 9500)], (1,), id="order-and-room"),
])
def test_high_node_utilization(case, pods, expected) -> None:
    snapshot = make_snapshot(node_cpu=[10000, 10000, 10000], pods=pods, workloads=[{}])
    assert HighNodeUtilization().plan(snapshot) == expected, case


def test_high_node_utilization_runs_every_interval() -> None:
    pods = [workload_pod(0, 1000), workload_pod(1, 6000)]
    descheduler = HighNodeUtilization(interval_seconds=300.0)
    def at(time_seconds: float) -> ClusterSnapshot:
        return make_snapshot(node_cpu=[10000, 10000], pods=pods, workloads=[{}], time_seconds=time_seconds)

    assert descheduler.plan(at(1000.0)) == (0,)
    assert descheduler.plan(at(1200.0)) == ()
    assert descheduler.plan(at(1300.0)) == (0,)


def two_nodes(time_seconds: float):
    # Node 0: one pod at 60 %. Node 1: two pods at 5 % each. Everything fits on either node.
    return make_snapshot(node_cpu=[10000, 10000], workloads=[{}], time_seconds=time_seconds,
                         pods=[workload_pod(0, 6000), workload_pod(1, 500), workload_pod(1, 500)])


def test_karpenter_consolidates_above_the_autoscalers_threshold_at_once() -> None:
    # The Cluster Autoscaler only considers node 1 (10 % < 50 %) and waits 10 minutes.
    assert ClusterAutoscaler().plan(two_nodes(1000.0)) == ()
    # Karpenter: no threshold, no wait, fewest pods first: node 0, whose pod fits on node 1.
    assert KarpenterConsolidation().plan(two_nodes(1000.0)) == (0,)


def test_karpenter_waits_consolidate_after_since_a_pod_last_landed() -> None:
    karpenter = KarpenterConsolidation(consolidate_after_seconds=300.0)
    assert karpenter.plan(two_nodes(1000.0)) == ()
    assert karpenter.plan(two_nodes(1200.0)) == ()
    assert karpenter.plan(two_nodes(1300.0)) == (0,)


@pytest.mark.parametrize(("name", "placement", "nodes"), [
    ("trimaran+vpa", TargetLoadPacking, ClusterAutoscaler),
    ("most-allocated+vpa", MostAllocatedScoring, ClusterAutoscaler),
])
def test_vpa_pairings_build_the_named_parts(name, placement, nodes) -> None:
    built = parse_policy(name).build(seed=0)
    assert isinstance(built.placement.placement, placement) and isinstance(built.sizing, VpaRecommender)
    assert type(built.autoscaler) is nodes and built.descheduler is None and built.replicaset_scale_in


@pytest.mark.parametrize(("name", "autoscaler", "descheduler"), [
    ("most-allocated+stack+descheduler-hnu", ClusterAutoscaler, HighNodeUtilization),
    ("kube-default+stack+karpenter-underutilized", KarpenterConsolidation, type(None)),
])
def test_consolidation_peers_build_the_named_parts(name, autoscaler, descheduler) -> None:
    built = parse_policy(name).build(seed=0)
    assert type(built.autoscaler) is autoscaler and type(built.descheduler) is descheduler


def test_thrifty_consolidation_builds_the_rule_behind_cordoned_placement() -> None:
    built = parse_policy("thrifty-consolidation").build(seed=0)
    assert isinstance(built.consolidator, Consolidator) and isinstance(built.placement, CordonedNodes)
    assert isinstance(built.consolidator.policy, HeuristicPolicy) and built.autoscaler is None
    assert built.consolidator.config.standby_after_idle_seconds == SimulatorConfig().standby_after_idle_seconds
    assert parse_policy("thrifty-heuristic").build(seed=0).consolidator is None
    tuned = parse_policy("thrifty-consolidation", {"consolidation_disruption_kj": 5.0}).build(seed=0)
    assert tuned.consolidator.config.disruption_joules_per_move == 5000.0


@pytest.mark.parametrize("name", ["kube-default+stack+consolidation", "heuristic+heuristic+cluster-autoscaler"])
def test_consolidation_is_thriftys_and_the_autoscalers_are_the_baselines(name) -> None:
    with pytest.raises(ValueError, match="unknown policy"):
        parse_policy(name)


def test_peer_evictions_go_through_the_migration_action_and_are_counted() -> None:
    # Node 0 at 5 % requested, node 1 at 40 %: the descheduler evicts node 0's pod, whose
    # replacement pays the start-up; RunMetrics counts the eviction as it counts Thrifty's.
    web = dataclasses.replace(sim_workload("default/web", replicas=2), request_rate_per_second=np.full(8, 1.0))
    sim = Simulator(sim_scenario(web, node_cpu=(10000.0, 1250.0)), config=QUIET)
    first, second = sim.workload_pods(0)
    assert sim.bind(first, 0) and sim.bind(second, 1)
    sim.step()
    built = parse_policy("most-allocated+stack+descheduler-hnu").build(seed=0)
    harness = KubernetesHarness(sim, placement_policy=built.placement, sizing_policy=built.sizing,
                                autoscaler=built.autoscaler, descheduler=built.descheduler)
    step = harness.step()
    assert int(step.result.workload_voluntary_evictions[0]) == 1 and step.result.evictions == 0
    assert int(step.result.workload_running_replicas[0]) == 1  # the replacement is starting
    metrics = RunMetrics(dependency_source=np.zeros(0, dtype=np.int64), calls_per_request=np.zeros(0))
    metrics.add(step, np.array([0.5]), sim.snapshot())
    assert metrics.summary()["evictions"] == 1.0
