"""The operator process itself: kill -9 mid-scale-out and restart, a policy that cannot load,
and two replicas at once (the leader Lease: only one acts).

Each test starts its own ``thrifty run`` processes in this module's namespace, one test after
the other, so no two tests' operators overlap.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Cluster
from tests.support.operator import (
    Kubectl,
    Operator,
    condition,
    create_namespace,
    delete_namespace,
    install_crds,
    rlworkload,
    wait_for,
)

FAST = ["--scale-out-cooldown-seconds", "0"]


@pytest.fixture(scope="module")
def namespace(cluster: Cluster) -> str:
    install_crds(cluster)
    name = create_namespace(cluster, "thrifty-restart")
    yield name
    delete_namespace(cluster, name)


@pytest.fixture
def k(cluster: Cluster, namespace: str) -> Kubectl:
    return Kubectl(cluster, namespace)


@pytest.fixture
def log(tmp_path: Path) -> Path:
    return tmp_path / "thrifty-run.log"


@pytest.fixture
def operators() -> list[Operator]:
    """Operators a test starts; all are killed at its end, whatever happened, and then their
    kube-scheduler children, which a kill leaves running."""
    started: list[Operator] = []
    yield started
    for op in started:
        op.kill()
        op.stop()


def _owned(k: Kubectl, workload: str) -> list[dict]:
    """Live pods of the workload; fails if one lacks the controller ownerReference."""
    pods = k.pods_of(workload)
    for pod in pods:
        refs = [r for r in pod["metadata"].get("ownerReferences", []) if r.get("controller")]
        assert [r["name"] for r in refs] == [workload], f"{pod['metadata']['name']}: {refs}"
    return pods


def test_kill_9_mid_scale_out_then_restart_converges(cluster: Cluster, namespace: str, k: Kubectl, log: Path,
                                                     operators: list[Operator]) -> None:
    """SIGKILL while the workload grows; the restarted operator ends at exactly replicas.max,
    every pod bound, and the status says so: no duplicate, no orphan, no pod left Pending."""
    first = Operator(cluster, namespace=namespace, log_path=log, extra_args=FAST)
    operators.append(first)
    k.apply(rlworkload("grow-kill", replicas={"min": 1, "max": 8}))
    first.start()
    mid = wait_for("grow-kill to be mid-way through its scale-out",
                   lambda: 2 <= len(p := _owned(k, "grow-kill")) < 8 and p, interval=0.1, diagnose=first.log_tail)
    first.kill()
    killed_at = len(_owned(k, "grow-kill"))
    assert killed_at < 8, f"the operator finished before it was killed ({killed_at} pods)"
    assert len(mid) >= 2

    second = Operator(cluster, namespace=namespace, log_path=log, extra_args=FAST)
    operators.append(second)
    second.start()

    def converged() -> dict | None:
        pods = _owned(k, "grow-kill")
        assert len(pods) <= 8, f"{len(pods)} pods after the restart: more than replicas.max 8"
        names = [p["metadata"]["name"] for p in pods]
        assert len(set(names)) == len(names)
        if len(pods) != 8 or not all(p["spec"].get("nodeName") for p in pods):
            return None
        workload = k.get("rlw", "grow-kill")
        status = workload.get("status", {})
        done = (status.get("replicas") == 8 and status.get("readyReplicas") == 8
                and status.get("observedGeneration") == workload["metadata"]["generation"]
                and condition(workload, "Ready").get("status") == "True")
        return workload if done else None

    workload = wait_for("8 bound, Ready pods and a converged status after the restart", converged,
                        diagnose=second.log_tail)
    assert workload["status"]["recommendedReplicas"] == 8
    # A few more steps: the +2 asks stay capped, nothing is created twice.
    steps = "thrifty_step_duration_seconds", "thrifty_step_duration_seconds_count"
    wait_for("a few more sizing steps", lambda: (second.sample(*steps, step="sizing") or 0) >= 3)
    assert len(_owned(k, "grow-kill")) == 8
    assert not [p for p in k.items("pods") if p["spec"].get("schedulerName") == "thrifty"
                and not p["spec"].get("nodeName")], "pods left Pending"


def test_policy_that_cannot_load_falls_back_to_the_heuristic(cluster: Cluster, namespace: str, k: Kubectl,
                                                             log: Path, operators: list[Operator]) -> None:
    op = Operator(cluster, namespace=namespace, log_path=log, policy="tests.support.policies:ExplodingPolicy")
    operators.append(op)
    op.start()
    assert op.sample("thrifty_policy_fallbacks", "thrifty_policy_fallbacks_total", kind="load") == 1.0
    assert op.sample("thrifty_policy_info", name="heuristic", backend="heuristic") == 1.0
    k.apply(rlworkload("unloaded", replicas={"min": 2, "max": 3}))
    warning = wait_for("a PolicyLoadFailed Warning", lambda: [
        e for e in k.events("unloaded", "RLWorkload") if e["reason"] == "PolicyLoadFailed"], diagnose=op.log_tail)[0]
    assert warning["type"] == "Warning" and "weights file is corrupt" in warning["message"]
    workload = wait_for("the heuristic to run the workload", lambda: (w := k.get("rlw", "unloaded")).get(
        "status", {}).get("replicas") == 2 and w)
    assert workload["status"]["policy"]["name"] == "heuristic" and workload["status"]["policy"]["fallback"] is True
    loaded = condition(workload, "PolicyLoaded")
    assert loaded["status"] == "False" and "weights file is corrupt" in loaded["message"]
    assert "could not be loaded" in log.read_text()
    wait_for("both pods bound", lambda: all(p["spec"].get("nodeName") for p in _owned(k, "unloaded")))


def test_two_replicas_the_first_keeps_leading_and_the_second_stands_by(
        cluster: Cluster, namespace: str, k: Kubectl, log: Path, operators: list[Operator]) -> None:
    """The leader Lease prefers its holder: a replica started later stands by (its watches
    running, no step, no write) and the workload grows to exactly its maximum."""
    older = Operator(cluster, namespace=namespace, log_path=log, extra_args=FAST)
    operators.append(older)
    older.start()
    newer = Operator(cluster, namespace=namespace, log_path=log.with_name("newer.log"), extra_args=FAST)
    operators.append(newer)
    newer.start(leader=False)
    steps = "thrifty_step_duration_seconds", "thrifty_step_duration_seconds_count"
    k.apply(rlworkload("grow-peer", replicas={"min": 1, "max": 6}))

    def at_max() -> bool:
        pods = _owned(k, "grow-peer")
        assert len(pods) <= 6, f"{len(pods)} pods: above replicas.max 6"
        return len(pods) == 6 and all(p["spec"].get("nodeName") for p in pods)

    wait_for("grow-peer to reach 6 bound pods", at_max, diagnose=older.log_tail)
    assert older.leads() and not newer.leads()
    # A step never run leaves no sample: the standby has none with a count above 0.
    ran = [x for x in newer.scrape()["thrifty_step_duration_seconds"].samples if x.name == steps[1] and x.value > 0]
    assert not ran, f"the standby ran steps: {ran}"
    assert (older.sample(*steps, step="sizing") or 0) > 0
    assert newer.sample("thrifty_leader_transitions", "thrifty_leader_transitions_total", outcome="acquired") == 0
