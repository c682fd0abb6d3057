"""Consolidation peers: the descheduler's HighNodeUtilization, Karpenter, and the VPA pairings."""

from __future__ import annotations

import pytest

from tests.unit.snapshots import make_snapshot
from thrifty.baselines import ClusterAutoscaler, MostAllocatedScoring, TargetLoadPacking, VpaRecommender
from thrifty.baselines.consolidation import HighNodeUtilization, KarpenterConsolidation
from thrifty.bench.policies import parse_policy
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
