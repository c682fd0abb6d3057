"""Removing and replacing pods on a real cluster: scale-in through the Eviction API under a
PodDisruptionBudget, the scale subresource (``kubectl scale rlw``, a PDB given as a percentage),
finished pods replaced and removed, and a workload without ``spec.slo``.

One ``thrifty run`` process serves the module, with the scripted test policy
(:mod:`tests.support.policies`: ``shrink-`` asks -1 replica every step, ``keep-`` keeps the
count, other names get the heuristic's answer). The cluster's own kube-controller-manager runs
the disruption controller, so each PodDisruptionBudget's status is computed as in production.
"""

from __future__ import annotations

import json
import time

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


@pytest.fixture(scope="module")
def namespace(cluster: Cluster) -> str:
    install_crds(cluster)
    name = create_namespace(cluster, "thrifty-disrupt")
    _wait_for_the_disruption_controller(Kubectl(cluster, name))
    yield name
    delete_namespace(cluster, name)


def _wait_for_the_disruption_controller(k: Kubectl) -> None:
    """Until kube-controller-manager's discovery knows the RLWorkload kind (it refreshes every
    30 s; the CRD may be newer than the process), the disruption controller cannot read the scale
    subresource of a PDB's pods' owner: it marks the PDB SyncFailed, and such a PDB stayed
    uncounted here even after the refresh. So before any test: a probe RLWorkload (no operator
    runs yet, so it has no pods of its own), a pending pod it controls, a PDB over that pod,
    counted once the controller can."""
    workload = rlworkload("probe", replicas={"min": 1, "max": 1, "initial": 1, "desired": 1})
    k.apply(workload)
    uid = k.get("rlw", "probe")["metadata"]["uid"]
    k.apply({"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": "probe", "labels": {"thrifty.dev/workload": "probe"},
        "ownerReferences": [{"apiVersion": "thrifty.dev/v1alpha1", "kind": "RLWorkload", "name": "probe",
                             "uid": uid, "controller": True}]},
        "spec": {"schedulerName": "nobody", "containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10"}]}})
    k.apply(_pdb("probe", "probe", maxUnavailable=0))
    started = time.monotonic()
    _counted_pdb(k, "probe", 1, timeout_seconds=180.0)
    print(f"the disruption controller counted the probe after {time.monotonic() - started:.0f} s")
    for kind in ("pdb", "pod", "rlw"):
        k.cluster.kubectl("delete", kind, "probe", "-n", k.namespace, "--wait=false")


@pytest.fixture(scope="module")
def operator(cluster: Cluster, namespace: str, tmp_path_factory: pytest.TempPathFactory) -> Operator:
    log = tmp_path_factory.mktemp("operator") / "thrifty-run.log"
    op = Operator(cluster, namespace=namespace, log_path=log, extra_args=[
        "--scale-out-cooldown-seconds", "0", "--scale-in-cooldown-seconds", "1", "--resize-cooldown-seconds", "1",
    ])
    op.start()
    yield op
    op.stop()


@pytest.fixture(scope="module")
def k(cluster: Cluster, namespace: str) -> Kubectl:
    return Kubectl(cluster, namespace)


def _pdb(name: str, workload: str, **budget: object) -> dict:
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": name},
            "spec": {"selector": {"matchLabels": {"thrifty.dev/workload": workload}}, **budget}}


def _running(k: Kubectl, workload: str) -> list[dict]:
    return [p for p in k.pods_of(workload) if p.get("status", {}).get("phase") == "Running"]


def _scale(k: Kubectl, workload: str) -> dict:
    path = f"/apis/thrifty.dev/v1alpha1/namespaces/{k.namespace}/rlworkloads/{workload}/scale"
    return json.loads(k.cluster.kubectl("get", "--raw", path).stdout)


def _counted_pdb(k: Kubectl, name: str, pods: int, timeout_seconds: float = 60.0) -> dict:
    """The PDB's status once the disruption controller has counted ``pods`` through the scale
    subresource. On a cluster whose CRDs came after kube-controller-manager started, its first
    syncs fail ("no matches for kind RLWorkload") until its discovery refreshes (30 s), and then
    nothing makes it sync again while the pods stay as they are: each poll touches the PDB so
    that it does."""
    def counted() -> dict | bool:
        k.cluster.kubectl("annotate", "pdb", name, "-n", k.namespace, "--overwrite",
                          f"thrifty.dev/test-resync={time.monotonic_ns()}")
        status = k.get("pdb", name).get("status", {})
        return status.get("expectedPods") == pods and status
    return wait_for(f"PDB {name} to count {pods} pods", counted, timeout=timeout_seconds, interval=2.0)


def test_pdb_allowing_no_disruption_blocks_scale_in(operator: Operator, k: Kubectl) -> None:
    """maxUnavailable 0: every eviction is refused (429), so the pods stay, the workload says why
    in a condition and a Warning, and once the budget goes the held-up scale-in goes through."""
    k.apply(_pdb("shrink-pdb", "shrink-pdb", maxUnavailable=0))
    k.apply(rlworkload("shrink-pdb", replicas={"min": 1, "max": 5, "initial": 3}))
    wait_for("3 running pods", lambda: len(_running(k, "shrink-pdb")) == 3, diagnose=operator.log_tail)
    uids = {p["metadata"]["uid"] for p in k.pods_of("shrink-pdb")}
    pdb = _counted_pdb(k, "shrink-pdb", 3)
    assert pdb["disruptionsAllowed"] == 0, pdb  # counted through the scale subresource
    # The condition follows the latest refusal (before the count, the API refused with "failed sync").
    budget = "The disruption budget shrink-pdb needs 3 healthy pods and has 3 currently"
    blocked = wait_for("the ScaleInBlocked condition quoting the budget", lambda: (c := condition(
        k.get("rlw", "shrink-pdb"), "ScaleInBlocked")).get("status") == "True" and budget in c.get("message", "")
        and c, diagnose=operator.log_tail)
    assert blocked["reason"] == "PodDisruptionBudget", blocked
    assert f"{k.namespace}/shrink-pdb-" in blocked["message"], blocked  # names the pod it tried
    time.sleep(4)  # several steps, each asking -1
    assert {p["metadata"]["uid"] for p in k.pods_of("shrink-pdb")} == uids  # no pod went
    warnings = [e for e in k.events("shrink-pdb", "RLWorkload") if e["reason"] == "ScaleInBlocked"]
    assert warnings and all(e["type"] == "Warning" for e in warnings), warnings
    # Posted when the block starts, not once per step.
    assert sum(e.get("count", 1) for e in warnings) <= 2, warnings
    status = k.get("rlw", "shrink-pdb")["status"]
    assert status["replicas"] == 3
    assert any(d["kind"] == "Horizontal" and d["outcome"] == "Rejected" and "disruption budget" in d["reason"]
               for d in status["lastDecisions"]), status["lastDecisions"]
    k.cluster.kubectl("delete", "pdb", "shrink-pdb", "-n", k.namespace)
    wait_for("the scale-in once the budget is gone", lambda: len(k.pods_of("shrink-pdb")) == 1,
             diagnose=operator.log_tail)
    wait_for("ScaleInBlocked False", lambda: condition(k.get("rlw", "shrink-pdb"), "ScaleInBlocked").get(
        "status") == "False")


def test_kubectl_scale_changes_the_replica_count(operator: Operator, k: Kubectl) -> None:
    """``kubectl scale rlw`` sets spec.replicas.desired; the operator creates or evicts pods to
    match, and the scale subresource lets a PDB given as a percentage count the pods."""
    k.apply(rlworkload("keep-scale", replicas={"min": 1, "max": 6, "initial": 2}))
    wait_for("2 running pods", lambda: len(_running(k, "keep-scale")) == 2, diagnose=operator.log_tail)
    scale = wait_for("the scale subresource to read 2", lambda: (s := _scale(k, "keep-scale"))["spec"].get(
        "replicas") == 2 and s.get("status", {}).get("replicas") == 2 and s)
    assert scale["status"]["selector"] == "thrifty.dev/workload=keep-scale", scale
    k.cluster.kubectl("scale", "rlw", "keep-scale", "-n", k.namespace, "--replicas", "5")
    wait_for("5 running pods", lambda: len(_running(k, "keep-scale")) == 5, diagnose=operator.log_tail)
    k.apply(_pdb("keep-scale", "keep-scale", minAvailable="60%"))
    pdb = _counted_pdb(k, "keep-scale", 5)
    assert (pdb["desiredHealthy"], pdb["disruptionsAllowed"]) == (3, 2), pdb  # 60 % of 5, rounded up
    k.cluster.kubectl("scale", "rlw", "keep-scale", "-n", k.namespace, "--replicas", "3")
    wait_for("3 pods (evicted within the budget)", lambda: len(k.pods_of("keep-scale")) == 3,
             diagnose=operator.log_tail)
    time.sleep(3)
    assert len(k.pods_of("keep-scale")) == 3  # kept where kubectl scale put it
    assert k.get("rlw", "keep-scale")["spec"]["replicas"]["desired"] == 3
    decisions = k.get("rlw", "keep-scale")["status"]["lastDecisions"]
    assert any(d["action"] == "replicas 2 -> 5" and "spec.replicas.desired is 5" in d["reason"]
               for d in decisions), decisions


def test_failed_pod_is_replaced_and_removed(operator: Operator, k: Kubectl) -> None:
    """A pod the kubelet evicted (phase Failed, reason Evicted) is deleted and a new pod takes its
    place, so the workload keeps its count."""
    k.apply(rlworkload("keep-failed", replicas={"min": 1, "max": 4, "initial": 2}))
    pods = wait_for("2 running pods", lambda: len(p := _running(k, "keep-failed")) == 2 and p,
                    diagnose=operator.log_tail)
    victim = pods[0]["metadata"]
    k.cluster.kubectl("patch", "pod", victim["name"], "-n", k.namespace, "--subresource", "status", "--type",
                      "merge", "-p", json.dumps({"status": {"phase": "Failed", "reason": "Evicted",
                                                            "message": "The node was low on resource: memory."}}))

    def replaced() -> bool:
        now = {p["metadata"]["uid"] for p in k.pods_of("keep-failed")}
        return victim["uid"] not in now and len(_running(k, "keep-failed")) == 2

    wait_for("the evicted pod removed and replaced", replaced, diagnose=operator.log_tail)
    gone = k.cluster.kubectl("get", "pod", victim["name"], "-n", k.namespace, "-o", "json", check=False)
    assert gone.returncode != 0 or json.loads(gone.stdout)["metadata"]["uid"] != victim["uid"]
    events = [e for e in k.events("keep-failed", "RLWorkload") if e["reason"] == "FinishedPodRemoved"]
    assert any(victim["name"] in e["message"] and "Evicted" in e["message"] for e in events), events
    assert k.get("rlw", "keep-failed")["status"]["replicas"] == 2


def test_rlworkload_without_slo_is_sized(operator: Operator, k: Kubectl) -> None:
    """No spec.slo: accepted, and the heuristic scales on CPU utilisation (pods use 3x their
    request) and resizes on usage; the status names the signals and SLOMet says there is no SLO."""
    obj = rlworkload("busy-worker", replicas={"min": 1, "max": 4, "initial": 1}, usage_cpu="300m")
    del obj["spec"]["slo"]
    k.apply(obj)
    wait_for("a scale-out on utilisation", lambda: len(k.pods_of("busy-worker")) > 1, diagnose=operator.log_tail)
    status = wait_for("the sizing signals", lambda: (s := k.get("rlw", "busy-worker").get("status", {})).get(
        "sizingSignals") and "utilisation" in s["sizingSignals"] and s, diagnose=operator.log_tail)
    assert "latency" not in status["sizingSignals"], status["sizingSignals"]
    slo = condition(k.get("rlw", "busy-worker"), "SLOMet")
    assert (slo["status"], slo["reason"]) == ("Unknown", "NoSLO"), slo
    horizontal = [d for d in k.get("rlw", "busy-worker")["status"]["lastDecisions"]
                  if d["kind"] == "Horizontal" and d["outcome"] == "Applied" and "no SLO" in d["reason"]]
    assert horizontal and "CPU at" in horizontal[0]["reason"], horizontal
