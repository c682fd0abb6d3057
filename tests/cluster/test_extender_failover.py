"""The operator killed outright (SIGKILL) while its kube-scheduler child keeps running: pods are
still placed (the extender is ``ignorable``, so the framework scores and binds without it); once
the operator is back on the same extender address, Thrifty's policy decides again."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import Cluster
from tests.support.operator import Kubectl, Operator, create_namespace, delete_namespace, wait_for

PAUSE = "registry.k8s.io/pause:3.10"


@pytest.fixture(scope="module")
def namespace(cluster: Cluster) -> str:
    name = create_namespace(cluster, "thrifty-failover")
    yield name
    delete_namespace(cluster, name)


def pod(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": {
        "schedulerName": "thrifty",
        "containers": [{"name": "app", "image": PAUSE, "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}}


def thrifty_decided(k: Kubectl, name: str) -> bool:
    return any(e["reason"] == "Scheduled" and e["message"].startswith("placed on") for e in k.events(name, "Pod"))


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_pods_are_placed_while_the_operator_is_down_and_thrifty_decides_after_restart(
        cluster: Cluster, namespace: str, tmp_path: Path) -> None:
    k = Kubectl(cluster, namespace)
    log = tmp_path / "thrifty-run.log"
    operator = Operator(cluster, namespace=namespace, log_path=log, policy="heuristic").start()
    try:
        k.apply(pod("before"))
        wait_for("Thrifty to place 'before'", lambda: thrifty_decided(k, "before"), diagnose=operator.log_tail)
        [child] = operator.scheduler_pids()
        operator.kill()
        assert alive(child), "the kube-scheduler child went down with the operator"
        for i in range(3):
            k.apply(pod(f"down-{i}"))
        for i in range(3):
            wait_for(f"down-{i} bound by the framework alone",
                     lambda i=i: k.get("pod", f"down-{i}")["spec"].get("nodeName"))
            assert not thrifty_decided(k, f"down-{i}")
        operator.start()  # and holds the leader Lease, once the killed one's has expired
        k.apply(pod("after"))
        wait_for("Thrifty's policy to place 'after' again", lambda: thrifty_decided(k, "after"),
                 diagnose=operator.log_tail)
    finally:
        operator.stop()  # and the orphaned child
