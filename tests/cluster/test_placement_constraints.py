"""Pods with ``schedulerName: thrifty`` are placed exactly as kube-scheduler's rules require: the
``thrifty`` profile's filters (all upstream plugins) decide where a pod may go, Thrifty's
extender only where among those. Each test uses constraints that Thrifty's heuristic alone
(which packs pods onto the fullest node) would break.

The nodes the tests change (labels, taints, extended resources, pod limit) are node-0001 to
node-0005 of the session's cluster, each changed under a key of its own and restored after.
"""

from __future__ import annotations

import json
import uuid

import pytest

from tests.conftest import Cluster
from tests.support.operator import Kubectl, Operator, create_namespace, delete_namespace, wait_for

PAUSE = "registry.k8s.io/pause:3.10"
KEY = f"test.thrifty.dev/c{uuid.uuid4().hex[:6]}"
"""A label, taint and extended-resource prefix of this module only."""


@pytest.fixture(scope="module")
def namespace(cluster: Cluster) -> str:
    name = create_namespace(cluster, "thrifty-constraints")
    yield name
    delete_namespace(cluster, name)


@pytest.fixture(scope="module")
def operator(cluster: Cluster, namespace: str, tmp_path_factory: pytest.TempPathFactory) -> Operator:
    log = tmp_path_factory.mktemp("constraints") / "thrifty-run.log"
    # The heuristic policy: it packs, so every spreading constraint below works against it.
    op = Operator(cluster, namespace=namespace, log_path=log, policy="heuristic").start()
    yield op
    op.stop()


@pytest.fixture(scope="module")
def k(cluster: Cluster, namespace: str) -> Kubectl:
    return Kubectl(cluster, namespace)


def thrifty_pod(name: str, *, cpu: str = "10m", labels: dict | None = None, **spec: object) -> dict:
    container: dict = {"name": "app", "image": PAUSE, "resources": {"requests": {"cpu": cpu, "memory": "16Mi"}}}
    for field in ("ports", "resources"):
        if field in spec:
            container[field] = spec.pop(field)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels or {}},
            "spec": {"schedulerName": "thrifty", "containers": [container], **spec}}


def node_of(k: Kubectl, name: str, operator: Operator) -> str:
    return wait_for(f"pod {name} to be bound", lambda: k.get("pod", name)["spec"].get("nodeName"),
                    diagnose=operator.log_tail)


def placed_by_thrifty(k: Kubectl, name: str) -> bool:
    """Thrifty's own Event on the pod: the extender scored and bound it."""
    return any(e["reason"] == "Scheduled" and e["message"].startswith("placed on") for e in k.events(name, "Pod"))


def unschedulable(k: Kubectl, name: str) -> dict:
    return next((c for c in k.get("pod", name).get("status", {}).get("conditions", [])
                 if c["type"] == "PodScheduled" and c["status"] == "False" and c.get("reason") == "Unschedulable"), {})


def test_node_affinity_match_expressions_and_match_fields(cluster: Cluster, operator: Operator, k: Kubectl) -> None:
    cluster.kubectl("label", "node", "node-0003", f"{KEY}-zone=a")
    try:
        zone_a = {"key": f"{KEY}-zone", "operator": "In", "values": ["a"]}
        k.apply(thrifty_pod("expr", affinity={"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [zone_a]}]}}}))
        k.apply(thrifty_pod("fields", affinity={"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In",
                                                    "values": ["node-0004"]}]}]}}}))
        assert node_of(k, "expr", operator) == "node-0003"
        assert node_of(k, "fields", operator) == "node-0004"
    finally:
        cluster.kubectl("label", "node", "node-0003", f"{KEY}-zone-")


def test_pod_anti_affinity_and_affinity(operator: Operator, k: Kubectl) -> None:
    app = {"app": "anti"}
    term = {"labelSelector": {"matchLabels": app}, "topologyKey": "kubernetes.io/hostname"}
    for i in range(3):
        k.apply(thrifty_pod(f"anti-{i}", labels=app, affinity={"podAntiAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [term]}}))
    nodes = [node_of(k, f"anti-{i}", operator) for i in range(3)]
    assert len(set(nodes)) == 3, nodes
    wait_for("Thrifty's Events on them", lambda: all(placed_by_thrifty(k, f"anti-{i}") for i in range(3)))
    k.apply(thrifty_pod("buddy", affinity={"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "anti"}}, "topologyKey": "kubernetes.io/hostname"}]}}))
    assert node_of(k, "buddy", operator) in nodes


def test_topology_spread(cluster: Cluster, operator: Operator, k: Kubectl) -> None:
    nodes = json.loads(cluster.kubectl("get", "nodes", "-o", "json").stdout)["items"]
    count = len(nodes)
    app = {"app": "spread"}
    for i in range(count):
        k.apply(thrifty_pod(f"spread-{i}", labels=app, topologySpreadConstraints=[{
            "maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "DoNotSchedule",
            "labelSelector": {"matchLabels": app}}]))
    placed = [node_of(k, f"spread-{i}", operator) for i in range(count)]
    assert len(set(placed)) == count, placed


def test_host_ports(operator: Operator, k: Kubectl) -> None:
    for i in range(2):
        k.apply(thrifty_pod(f"port-{i}", ports=[{"containerPort": 80, "hostPort": 18080, "protocol": "TCP"}]))
    assert node_of(k, "port-0", operator) != node_of(k, "port-1", operator)


def test_scheduling_gates_hold_the_pod_until_removed(operator: Operator, k: Kubectl) -> None:
    k.apply(thrifty_pod("gated", schedulingGates=[{"name": f"{KEY}-gate"}]))
    wait_for("the gated pod to report SchedulingGated", lambda: any(
        c["type"] == "PodScheduled" and c.get("reason") == "SchedulingGated"
        for c in k.get("pod", "gated").get("status", {}).get("conditions", [])))
    assert not k.get("pod", "gated")["spec"].get("nodeName")
    k.cluster.kubectl("patch", "pod", "gated", "-n", k.namespace, "--type", "json",
                      "-p", '[{"op": "remove", "path": "/spec/schedulingGates"}]')
    node_of(k, "gated", operator)


def _patch_node_status(cluster: Cluster, node: str, resources: dict) -> None:
    patch = {"status": {"capacity": resources, "allocatable": resources}}
    cluster.kubectl("patch", "node", node, "--subresource=status", "--type", "merge", "-p", json.dumps(patch))


def test_extended_resources(cluster: Cluster, operator: Operator, k: Kubectl) -> None:
    widget = f"{KEY}-widget"
    _patch_node_status(cluster, "node-0002", {widget: "2"})
    try:
        wait_for("the widget capacity", lambda: widget in k.cluster.kubectl(
            "get", "node", "node-0002", "-o", "json").stdout)
        resources = {"requests": {"cpu": "10m", "memory": "16Mi", widget: "1"}, "limits": {widget: "1"}}
        for i in range(3):
            k.apply(thrifty_pod(f"widget-{i}", resources=resources))
        wait_for("two widget pods bound and one Unschedulable", lambda: sorted(
            bool(k.get("pod", f"widget-{i}")["spec"].get("nodeName")) for i in range(3)) == [False, True, True]
            and any(unschedulable(k, f"widget-{i}") for i in range(3)), diagnose=operator.log_tail)
        placed = [k.get("pod", f"widget-{i}")["spec"].get("nodeName") for i in range(3)]
        assert sorted(filter(None, placed)) == ["node-0002", "node-0002"]
    finally:
        for i in range(3):
            k.cluster.kubectl("delete", "pod", f"widget-{i}", "-n", k.namespace, "--wait=true", check=False)
        patch = [{"op": "remove", "path": f"/status/{part}/{widget.replace('/', '~1')}"}
                 for part in ("capacity", "allocatable")]
        cluster.kubectl("patch", "node", "node-0002", "--subresource=status", "--type", "json",
                        "-p", json.dumps(patch), check=False)


def test_the_nodes_pod_limit(cluster: Cluster, operator: Operator, k: Kubectl) -> None:
    pods = json.loads(cluster.kubectl("get", "pods", "-A", "--field-selector", "spec.nodeName=node-0005",
                                      "-o", "json").stdout)["items"]
    limit = len(pods) + 2
    _patch_node_status(cluster, "node-0005", {"pods": str(limit)})
    pin = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["node-0005"]}]}]}}}
    try:
        for i in range(3):
            k.apply(thrifty_pod(f"limit-{i}", affinity=pin))
        wait_for("two pods on node-0005 and the third Unschedulable", lambda: sum(
            bool(k.get("pod", f"limit-{i}")["spec"].get("nodeName")) for i in range(3)) == 2
            and any(unschedulable(k, f"limit-{i}") for i in range(3)), diagnose=operator.log_tail)
    finally:
        for i in range(3):
            k.cluster.kubectl("delete", "pod", f"limit-{i}", "-n", k.namespace, "--wait=true", check=False)
        _patch_node_status(cluster, "node-0005", {"pods": "110"})


def test_taints(cluster: Cluster, operator: Operator, k: Kubectl) -> None:
    cluster.kubectl("taint", "node", "node-0001", f"{KEY}-taint=x:NoSchedule")
    pin = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["node-0001"]}]}]}}}
    try:
        k.apply(thrifty_pod("intolerant", affinity=pin))
        k.apply(thrifty_pod("tolerant", affinity=pin, tolerations=[
            {"key": f"{KEY}-taint", "operator": "Exists", "effect": "NoSchedule"}]))
        assert node_of(k, "tolerant", operator) == "node-0001"
        wait_for("the intolerant pod to be Unschedulable", lambda: unschedulable(k, "intolerant"))
        assert not k.get("pod", "intolerant")["spec"].get("nodeName")
    finally:
        cluster.kubectl("taint", "node", "node-0001", f"{KEY}-taint-", check=False)
        k.cluster.kubectl("delete", "pod", "intolerant", "-n", k.namespace, "--wait=false", check=False)


def test_a_pod_that_fits_nowhere_is_unschedulable(operator: Operator, k: Kubectl) -> None:
    k.apply(thrifty_pod("huge", cpu="10000"))
    condition = wait_for("PodScheduled=False reason Unschedulable", lambda: unschedulable(k, "huge"),
                         diagnose=operator.log_tail)
    assert "Insufficient cpu" in condition.get("message", "")
    k.cluster.kubectl("delete", "pod", "huge", "-n", k.namespace, "--wait=false")
