"""The operator on a real cluster: placement, in-place resize, scaling, modes, Events, status,
/metrics, a metrics source going down and a broken policy.

One ``thrifty run`` process serves the whole module (started with the scripted test policy, see
:mod:`tests.support.policies`: a workload's name prefix chooses its sizing action, placement is
the heuristic's). Short intervals and cooldowns keep each test to a few seconds.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.conftest import Cluster
from tests.support.operator import (
    Kubectl,
    Operator,
    condition,
    create_namespace,
    delete_namespace,
    free_port,
    install_crds,
    rlworkload,
    wait_for,
)

PROMETHEUS_PORT = free_port()
"""Where the fake Prometheus of :func:`test_latency_source_down_holds_sizing_then_recovers` listens
(nothing listens there until that test starts it, so the source is down)."""


@pytest.fixture(scope="module")
def namespace(cluster: Cluster) -> str:
    install_crds(cluster)
    name = create_namespace(cluster, "thrifty-op")
    yield name
    delete_namespace(cluster, name)


@pytest.fixture(scope="module")
def operator(cluster: Cluster, namespace: str, tmp_path_factory: pytest.TempPathFactory) -> Operator:
    log = tmp_path_factory.mktemp("operator") / "thrifty-run.log"
    op = Operator(cluster, namespace=namespace, log_path=log, extra_args=[
        "--scale-out-cooldown-seconds", "0", "--scale-in-cooldown-seconds", "1",
        "--resize-cooldown-seconds", "1",
        "--prometheus-url", f"http://127.0.0.1:{PROMETHEUS_PORT}", "--prometheus-timeout-seconds", "1",
    ])
    op.start()
    yield op
    op.stop()


@pytest.fixture(scope="module")
def k(cluster: Cluster, namespace: str) -> Kubectl:
    return Kubectl(cluster, namespace)


def _bound(pods: list[dict]) -> bool:
    return all(p["spec"].get("nodeName") for p in pods)


def _reasons(k: Kubectl, name: str, kind: str) -> list[str]:
    return [e["reason"] for e in k.events(name, kind)]


def test_binds_a_plain_pod_with_scheduler_name_thrifty(operator: Operator, k: Kubectl) -> None:
    """Not only RLWorkload pods: any pod that names Thrifty as its scheduler is bound."""
    k.apply({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "plain"},
             "spec": {"schedulerName": "thrifty", "containers": [{
                 "name": "app", "image": "registry.k8s.io/pause:3.10",
                 "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]}})
    pod = wait_for("pod 'plain' to be bound", lambda: k.get("pod", "plain")["spec"].get("nodeName") and
                   k.get("pod", "plain"), diagnose=operator.log_tail)
    scheduled = wait_for("a Scheduled event on the pod", lambda: [e for e in k.events("plain", "Pod")
                                                                  if e["reason"] == "Scheduled"])
    assert pod["spec"]["nodeName"] in scheduled[-1]["message"]
    assert scheduled[-1]["source"]["component"] == "thrifty"
    wait_for("pod 'plain' to run", lambda: k.get("pod", "plain")["status"].get("phase") == "Running")


def test_pods_waiting_for_a_node_are_counted(operator: Operator, k: Kubectl) -> None:
    """A pod no node can take (its nodeSelector matches none) waits: thrifty_pods_pending counts
    it and the oldest wait grows; deleted, it is no longer counted."""
    k.apply({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "nowhere"},
             "spec": {"schedulerName": "thrifty", "nodeSelector": {"thrifty.dev/test": "no-such-node"},
                      "containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10"}]}})
    wait_for("the waiting pod to be counted", lambda: (operator.sample("thrifty_pods_pending") or 0) >= 1,
             diagnose=operator.log_tail)
    first = operator.sample("thrifty_pods_pending_oldest_seconds")
    time.sleep(2.0)
    assert operator.sample("thrifty_pods_pending_oldest_seconds") >= first + 1.5, "the wait does not grow"
    k.cluster.kubectl("delete", "pod", "nowhere", "-n", k.namespace, "--wait", "--timeout=60s")
    wait_for("the deleted pod to be no longer counted", lambda: operator.sample("thrifty_pods_pending") == 0,
             diagnose=operator.log_tail)
    assert operator.sample("thrifty_pods_pending_oldest_seconds") == 0.0


def test_dependent_workloads_are_co_located(operator: Operator, k: Kubectl) -> None:
    k.apply(rlworkload("dep-db", replicas={"min": 2, "max": 2}))
    db = wait_for("both dep-db pods to be bound", lambda: len(p := k.pods_of("dep-db")) == 2 and _bound(p) and p,
                  diagnose=operator.log_tail)
    db_nodes = {p["spec"]["nodeName"] for p in db}
    k.apply(rlworkload("dep-api", replicas={"min": 2, "max": 2}, dependencies=[{"workload": "dep-db", "weight": 1}]))
    api = wait_for("both dep-api pods to be bound", lambda: len(p := k.pods_of("dep-api")) == 2 and _bound(p) and p,
                   diagnose=operator.log_tail)
    for pod in api:
        assert pod["spec"]["nodeName"] in db_nodes, (
            f"{pod['metadata']['name']} on {pod['spec']['nodeName']}, its dependency dep-db on {db_nodes}")
    placed = [d for d in k.get("rlw", "dep-api")["status"]["lastDecisions"] if d["kind"] == "Placement"]
    assert placed and all(d["outcome"] == "Applied" for d in placed), placed
    assert all("dependent pods there" in d["reason"] and " 0 dependent pods" not in d["reason"]
               for d in placed), f"the reasons do not name the dependency: {placed}"


def test_scales_out_to_max_and_never_beyond(operator: Operator, k: Kubectl) -> None:
    """The scripted policy asks +2 every step; the safety bounds stop it at replicas.max."""
    k.apply(rlworkload("grow-web", replicas={"min": 1, "max": 5}))
    seen = []

    def at_max() -> bool:
        pods = k.pods_of("grow-web")
        seen.append(len(pods))
        assert len(pods) <= 5, f"{len(pods)} pods, above replicas.max 5"
        return len(pods) == 5 and _bound(pods)

    wait_for("grow-web to reach 5 bound pods", at_max, diagnose=operator.log_tail)
    time.sleep(3)  # a few more steps asking +2
    assert len(k.pods_of("grow-web")) == 5
    assert max(seen) <= 5, seen
    status = wait_for("status.replicas 5", lambda: (s := k.get("rlw", "grow-web")["status"]).get("replicas") == 5 and s)
    assert status["recommendedReplicas"] == 5
    scaled = [e for e in k.events("grow-web", "RLWorkload") if e["reason"] == "Scaled"]
    assert scaled and any("\u2192" in e["message"] for e in scaled), scaled
    for pod in k.pods_of("grow-web"):
        [owner] = pod["metadata"]["ownerReferences"]
        assert owner["kind"] == "RLWorkload" and owner["name"] == "grow-web"
        assert owner["controller"] is True and owner["blockOwnerDeletion"] is True
        assert pod["spec"]["schedulerName"] == "thrifty"


def test_scales_in_to_min_and_never_below(operator: Operator, k: Kubectl) -> None:
    k.apply(rlworkload("shrink-web", replicas={"min": 1, "max": 5, "initial": 3}))
    wait_for("shrink-web to start with 3 pods", lambda: len(k.pods_of("shrink-web")) >= 3, diagnose=operator.log_tail)

    def at_min() -> bool:
        pods = k.pods_of("shrink-web")
        assert len(pods) >= 1, "below replicas.min 1"
        return len(pods) == 1

    wait_for("shrink-web to scale in to 1 pod", at_min, diagnose=operator.log_tail)
    time.sleep(3)
    assert len(k.pods_of("shrink-web")) == 1
    decisions = k.get("rlw", "shrink-web")["status"]["lastDecisions"]
    assert any(d["kind"] == "Horizontal" and d["action"] == "replicas 2 -> 1" and d["outcome"] == "Applied"
               for d in decisions), decisions


def test_resizes_in_place_within_bounds(operator: Operator, k: Kubectl) -> None:
    """Raising the spec's CPU minimum above the pods' request makes Thrifty resize them in
    place: same pod, same UID, no restart, a request within the new bounds."""
    pinned = [{"name": "app", "cpu": {"min": "100m", "max": "100m"}}]
    k.apply(rlworkload("keep-sized", replicas={"min": 2, "max": 2}, cpu="100m", bounds=pinned))
    before = wait_for("keep-sized to run 2 pods",
                      lambda: len(p := k.pods_of("keep-sized")) == 2 and all(
                          x["status"].get("phase") == "Running" for x in p) and p, diagnose=operator.log_tail)
    uids = {p["metadata"]["name"]: p["metadata"]["uid"] for p in before}
    k.patch("rlw", "keep-sized", {"spec": {"containers": [{"name": "app", "cpu": {"min": "150m", "max": "1"}}]}})

    def resized() -> list[dict]:
        pods = k.pods_of("keep-sized")
        requests = [p["spec"]["containers"][0]["resources"]["requests"]["cpu"] for p in pods]
        return pods if requests == ["150m", "150m"] else []

    wait_for("both pods resized to 150m", resized, diagnose=operator.log_tail)

    def actuated() -> list[dict]:
        """The kubelet's part (kwok's resize stages): the running containers have the new size."""
        pods = resized()
        done = all(p["status"].get("observedGeneration") == p["metadata"]["generation"]
                   and p["status"]["containerStatuses"][0].get("resources", {}).get("requests", {}).get("cpu") == "150m"
                   for p in pods)
        return pods if done else []

    after = wait_for("the resize to be actuated", actuated)
    assert {p["metadata"]["name"]: p["metadata"]["uid"] for p in after} == uids, "a pod was recreated"
    for pod in after:
        assert pod["metadata"]["generation"] >= 2
        assert pod["spec"]["containers"][0]["resources"]["limits"]["memory"] == "512Mi"
        assert all(s.get("restartCount", 0) == 0 for s in pod["status"].get("containerStatuses", []))
        assert "Resized" in _reasons(k, pod["metadata"]["name"], "Pod")
    workload = wait_for("status to show the new size", lambda: (w := k.get("rlw", "keep-sized"))["status"].get(
        "containers", [{}])[0].get("requests", {}).get("cpu") == "150m" and w)
    assert workload["status"]["observedGeneration"] == workload["metadata"]["generation"]
    vertical = [d for d in workload["status"]["lastDecisions"] if d["kind"] == "Vertical"]
    assert vertical and vertical[0]["outcome"] == "Applied" and "150m" in vertical[0]["action"], vertical
    assert "Resized" in _reasons(k, "keep-sized", "RLWorkload")


def test_resizes_to_measured_usage(operator: Operator, k: Kubectl) -> None:
    """Usage from metrics.k8s.io (kwok's simulated kubelet, scraped by metrics-server) drives the
    size: the scripted trim- policy asks for the p95 of CPU usage + 5 %; the safety pipeline gets
    there in steps of at most x2."""
    k.apply(rlworkload("trim-usage", replicas={"min": 1, "max": 1}, cpu="100m", usage_cpu="300m",
                       bounds=[{"name": "app", "cpu": {"min": "50m", "max": "1"}}]))
    [pod] = wait_for("trim-usage to run", lambda: (p := k.pods_of("trim-usage")) and p[0]["spec"].get("nodeName") and p)
    requests = []

    def sized() -> bool:
        [now] = k.pods_of("trim-usage")
        assert now["metadata"]["uid"] == pod["metadata"]["uid"], "the pod was recreated"
        cpu = now["spec"]["containers"][0]["resources"]["requests"]["cpu"]
        if not requests or requests[-1] != cpu:
            requests.append(cpu)
        return cpu == "315m"

    wait_for("the CPU request to reach 315m (300m used + 5 %)", sized, timeout=90, diagnose=operator.log_tail)
    assert requests[0] == "100m" and "200m" in requests, f"not in steps of at most x2: {requests}"
    decisions = [d for d in k.get("rlw", "trim-usage")["status"]["lastDecisions"] if d["kind"] == "Vertical"]
    assert decisions[0]["action"] == "cpu 200m -> 315m" and "p95 usage 300m" in decisions[0]["reason"], decisions


def test_recommend_mode_records_and_changes_nothing(operator: Operator, k: Kubectl) -> None:
    k.apply(rlworkload("grow-rec", mode="Recommend", replicas={"min": 1, "max": 5}))
    status = wait_for("a Horizontal recommendation", lambda: (s := k.get("rlw", "grow-rec").get("status", {})) and any(
        d["kind"] == "Horizontal" for d in s.get("lastDecisions", [])) and s, diagnose=operator.log_tail)
    [pod] = wait_for("the one initial pod to run", lambda: (p := k.pods_of("grow-rec")) and p[0]["spec"].get(
        "nodeName") and p)
    # kube-scheduler places Recommend-mode pods; Thrifty records where it would have put them.
    assert pod["spec"]["schedulerName"] == "default-scheduler"
    assert status["recommendedReplicas"] == 3 and status["replicas"] == 1
    kinds = {d["kind"]: d for d in reversed(status["lastDecisions"])}  # the newest of each kind
    assert kinds["Horizontal"]["outcome"] == "Recommended" and kinds["Horizontal"]["action"] == "replicas 1 -> 3"
    assert kinds["Placement"]["outcome"] == "Recommended", status["lastDecisions"]
    uid, request = pod["metadata"]["uid"], pod["spec"]["containers"][0]["resources"]["requests"]["cpu"]
    k.patch("rlw", "grow-rec", {"spec": {"containers": [{"name": "app", "cpu": {"min": "150m", "max": "1"}}]}})
    wait_for("a Vertical recommendation", lambda: any(
        d["kind"] == "Vertical" and d["outcome"] == "Recommended"
        for d in k.get("rlw", "grow-rec")["status"]["lastDecisions"]))
    time.sleep(3)
    [pod] = k.pods_of("grow-rec")
    assert pod["metadata"]["uid"] == uid and pod["spec"]["containers"][0]["resources"]["requests"]["cpu"] == request
    reasons = _reasons(k, "grow-rec", "RLWorkload")
    assert "ScaleRecommended" in reasons and "ResizeRecommended" in reasons, reasons
    assert "Scaled" not in reasons and "Resized" not in reasons, reasons
    status = k.get("rlw", "grow-rec")["status"]
    assert status["containers"][0]["recommendedRequests"]["cpu"] == "150m"
    assert status["containers"][0]["requests"]["cpu"] == request


def test_recommend_mode_shadow_placement_of_thriftys_own_pods(operator: Operator, k: Kubectl) -> None:
    """A Recommend-mode workload whose template names Thrifty's scheduler: the extender answers
    equal scores (kube-scheduler's choice stands) and records the node it would have chosen with
    the estimated power difference, in the status, as an Event and as a metric."""
    before = operator.sample("thrifty_shadow_placement_power_difference_watts",
                             "thrifty_shadow_placement_power_difference_watts_count") or 0.0
    k.apply(rlworkload("shadow", mode="Recommend", scheduler="thrifty", replicas={"min": 2, "max": 2}))
    wait_for("both pods bound", lambda: len(p := k.pods_of("shadow")) == 2 and all(
        x["spec"].get("nodeName") for x in p), diagnose=operator.log_tail)
    shadows = wait_for("shadow placements in the status", lambda: [
        d for d in k.get("rlw", "shadow").get("status", {}).get("lastDecisions", [])
        if d["kind"] == "Placement" and "kube-scheduler placed it on" in d["reason"]], diagnose=operator.log_tail)
    assert all(d["outcome"] == "Recommended" and d["action"].startswith("bind to ") and " W against" in d["reason"]
               for d in shadows), shadows
    wait_for("a PlacementRecommended Event", lambda: "PlacementRecommended" in _reasons(k, "shadow", "RLWorkload"))
    after = operator.sample("thrifty_shadow_placement_power_difference_watts",
                            "thrifty_shadow_placement_power_difference_watts_count")
    assert after is not None and after >= before + 1


def test_status_and_events_explain_the_decisions(operator: Operator, k: Kubectl) -> None:
    k.apply(rlworkload("explain", replicas={"min": 2, "max": 4}))
    workload = wait_for("explain's status to settle", lambda: (w := k.get("rlw", "explain")).get(
        "status", {}).get("readyReplicas") == 2 and w, diagnose=operator.log_tail)
    status = workload["status"]
    assert status["observedGeneration"] == workload["metadata"]["generation"]
    assert status["replicas"] == 2 and status["recommendedReplicas"] == 2
    assert status["energyWatts"] > 0 and status["energyJoulesTotal"] >= 0
    assert isinstance(status["reward"], float | int) and status["reward"] <= 0
    assert status["policy"] == {"name": "scripted", "version": "test-1", "backend": "test", "fallback": False}
    assert status["containers"][0]["name"] == "app"
    assert status["containers"][0]["requests"]["cpu"] in ("100m", "50m")  # the heuristic trims idle pods to min
    assert "latencyP95Milliseconds" not in status and "sloAttainment" not in status  # no latency source
    types = {c["type"]: c for c in status["conditions"]}
    assert types["Ready"]["status"] == "True" and types["PolicyLoaded"]["status"] == "True"
    assert types["MetricsAvailable"]["status"] == "True" and types["SLOMet"]["status"] == "Unknown"
    assert all(c["observedGeneration"] == workload["metadata"]["generation"] for c in types.values())
    decisions = status["lastDecisions"]
    assert len(decisions) <= 10
    assert [d["time"] for d in decisions] == sorted((d["time"] for d in decisions), reverse=True)
    horizontal = next(d for d in decisions if d["kind"] == "Horizontal")
    assert horizontal == {**horizontal, "action": "replicas 0 -> 2", "outcome": "Applied", "target": "explain"}
    events = k.events("explain", "RLWorkload")
    scaled = next(e for e in events if e["reason"] == "Scaled")
    assert scaled["type"] == "Normal" and "0\u21922" in scaled["message"] and scaled["reportingComponent"]
    placed = [e for e in events if e["reason"] == "Placed"]
    assert len(placed) == 2 and all("placed on node-" in e["message"] for e in placed), placed
    printed = k.cluster.kubectl("get", "rlw", "explain", "-n", k.namespace).stdout
    assert "Auto" in printed and " 2 " in printed, printed


def test_metrics_endpoint(operator: Operator, k: Kubectl) -> None:
    wait_for("a workload step to be counted", lambda: operator.sample(
        "thrifty_decisions", "thrifty_decisions_total", kind="horizontal", outcome="applied"))
    metrics = operator.scrape()
    w = {"namespace", "rlworkload"}
    expected = {
        "thrifty_reward": w, "thrifty_node_power_watts": {"node"},
        "thrifty_node_energy_joules": {"node"}, "thrifty_workload_power_watts": w,
        "thrifty_workload_energy_joules": w, "thrifty_cluster_power_watts": set(),
        "thrifty_cluster_energy_joules": set(), "thrifty_decisions": {"kind", "outcome"},
        "thrifty_decision_duration_seconds": {"step"}, "thrifty_step_duration_seconds": {"step"},
        "thrifty_placement_latency_seconds": set(), "thrifty_policy_info": {"name", "version", "backend"},
        "thrifty_policy_fallbacks": {"kind"}, "thrifty_metrics_source_up": {"source"},
        "thrifty_metrics_source_errors": {"source"}, "thrifty_workload_replicas": w,
        "thrifty_build_info": {"version", "python_version", "kopf_version"}, "thrifty_pods_pending": set(),
        "thrifty_pods_pending_oldest_seconds": set(), "thrifty_reconcile_errors": {"kind"},
        "thrifty_kube_api_requests": {"verb", "resource", "outcome"}, "thrifty_watch_events": {"kind"},
    }
    for name, labels in expected.items():
        assert name in metrics, f"{name} missing from /metrics: {sorted(metrics)}"
        for sample in metrics[name].samples:
            assert set(sample.labels) - {"le"} == labels, (sample.name, sample.labels)
    assert all(name.startswith("thrifty_") for name in metrics if not name.startswith(("python_", "process_")))
    assert metrics["thrifty_decisions"].type == "counter"
    assert metrics["thrifty_decision_duration_seconds"].type == "histogram"
    nodes = {s.labels["node"] for s in metrics["thrifty_node_power_watts"].samples}
    cluster_nodes = {n["metadata"]["name"] for n in json.loads(
        k.cluster.kubectl("get", "nodes", "-o", "json").stdout)["items"]}
    assert nodes == cluster_nodes
    # From the same scrape: a sizing step between two scrapes changes the power.
    [total] = [s.value for s in metrics["thrifty_cluster_power_watts"].samples]
    by_node = sum(s.value for s in metrics["thrifty_node_power_watts"].samples)
    assert total == pytest.approx(by_node, rel=1e-6)
    assert operator.sample("thrifty_policy_info", name="scripted", backend="test") == 1.0
    placed = operator.sample("thrifty_placement_latency_seconds", "thrifty_placement_latency_seconds_count")
    assert placed and placed > 0
    namespaces = {s.labels["namespace"] for s in metrics["thrifty_workload_replicas"].samples}
    assert namespaces == {k.namespace}, namespaces
    # Every call the module's steps make is counted, and the ones that must work did.
    calls = {(s.labels["verb"], s.labels["resource"]): s.value for s in metrics["thrifty_kube_api_requests"].samples
             if s.labels["outcome"] == "success"}
    for call in (("list", "pods"), ("list", "nodes"), ("list", "rlworkloads"), ("create", "pods"),
                 ("patch", "rlworkloads/status"), ("create", "events"), ("list", "nodes.metrics.k8s.io")):
        assert calls.get(call, 0) > 0, f"no successful {call} counted: {calls}"
    assert not any("pod" in label for family in metrics.values() for s in family.samples for label in s.labels)


class _FakePrometheus(BaseHTTPRequestHandler):
    """Answers every instant query with a p95 latency of 50 ms."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        body = json.dumps({"status": "success", "data": {"resultType": "vector", "result": [
            {"metric": {}, "value": [time.time(), "0.05"]}]}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_latency_source_down_holds_sizing_then_recovers(operator: Operator, k: Kubectl) -> None:
    """With Prometheus down, a workload with a latencyQuery keeps its size (the scripted policy
    asks +2 every step), says why in a condition and counts the errors; once Prometheus answers,
    sizing resumes and the latency shows in the status."""
    k.apply(rlworkload("grow-lat", replicas={"min": 1, "max": 4},
                       slo={"latencyP95Milliseconds": 200, "latencyQuery": "p95_latency_seconds"}))
    workload = wait_for("MetricsAvailable=False", lambda: condition(w := k.get("rlw", "grow-lat"),
                        "MetricsAvailable").get("status") == "False" and w, diagnose=operator.log_tail)
    assert "prometheus" in condition(workload, "MetricsAvailable")["message"]
    time.sleep(3)
    assert len(k.pods_of("grow-lat")) == 1, "sizing changed while the latency source was down"
    assert operator.sample("thrifty_metrics_source_up", source="prometheus") == 0.0
    assert operator.sample("thrifty_metrics_source_errors", "thrifty_metrics_source_errors_total",
                           source="prometheus") > 0
    assert "MetricsUnavailable" in _reasons(k, "grow-lat", "RLWorkload")
    decisions = k.get("rlw", "grow-lat")["status"]["lastDecisions"]
    assert not [d for d in decisions if d["kind"] == "Horizontal" and d["action"] != "replicas 0 -> 1"], decisions

    server = ThreadingHTTPServer(("127.0.0.1", PROMETHEUS_PORT), _FakePrometheus)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        workload = wait_for("MetricsAvailable=True", lambda: condition(w := k.get("rlw", "grow-lat"),
                            "MetricsAvailable").get("status") == "True" and w, diagnose=operator.log_tail)
        wait_for("grow-lat to scale out once latency is known", lambda: len(k.pods_of("grow-lat")) > 1)
        status = k.get("rlw", "grow-lat")["status"]
        assert status["latencyP95Milliseconds"] == 50.0
        assert status["sloAttainment"] == 1.0
        assert condition(k.get("rlw", "grow-lat"), "SLOMet")["status"] == "True"
        assert operator.sample("thrifty_metrics_source_up", source="prometheus") == 1.0
        assert operator.sample("thrifty_latency_p95_seconds", namespace=k.namespace, rlworkload="grow-lat") == 0.05
    finally:
        server.shutdown()
        server.server_close()


def test_metrics_api_down_holds_sizing(operator: Operator, k: Kubectl) -> None:
    """Without metrics.k8s.io, usage is unknown: sizing holds (the scripted policy asks +2 every
    step), the condition says why; sizing resumes when the APIService is back."""
    saved = json.loads(k.cluster.kubectl("get", "apiservice", "v1beta1.metrics.k8s.io", "-o", "json").stdout)
    for field in ("resourceVersion", "uid", "creationTimestamp", "managedFields", "generation"):
        saved["metadata"].pop(field, None)
    saved.pop("status", None)
    k.cluster.kubectl("delete", "apiservice", "v1beta1.metrics.k8s.io")
    try:
        k.apply(rlworkload("grow-usage", replicas={"min": 1, "max": 4}))
        wait_for("MetricsAvailable=False on grow-usage", lambda: condition(k.get("rlw", "grow-usage"),
                 "MetricsAvailable").get("status") == "False", diagnose=operator.log_tail)
        wait_for("grow-usage to start with its initial pod", lambda: len(k.pods_of("grow-usage")) == 1)
        time.sleep(3)
        assert len(k.pods_of("grow-usage")) == 1, "sizing changed while metrics.k8s.io was down"
        assert "usage unknown" in condition(k.get("rlw", "grow-usage"), "MetricsAvailable")["message"]
        assert operator.sample("thrifty_metrics_source_up", source="metrics-api") == 0.0
    finally:
        k.cluster.kubectl("apply", "-f", "-", input=json.dumps(saved))
    wait_for("MetricsAvailable=True again", lambda: condition(k.get("rlw", "grow-usage"),
             "MetricsAvailable").get("status") == "True", diagnose=operator.log_tail)
    wait_for("grow-usage to reach 4 pods once usage is back", lambda: len(k.pods_of("grow-usage")) == 4)


def test_broken_policy_falls_back_to_the_heuristic(operator: Operator, k: Kubectl) -> None:
    """The scripted policy proposes NaN for nan-* workloads: the heuristic decides, with a
    Warning Event, a counted fallback and the workload run within its bounds."""
    before = operator.sample("thrifty_policy_fallbacks", "thrifty_policy_fallbacks_total", kind="sizing") or 0.0
    k.apply(rlworkload("nan-web", replicas={"min": 2, "max": 4}))
    warning = wait_for("a PolicyFallback Warning", lambda: [e for e in k.events("nan-web", "RLWorkload")
                                                            if e["reason"] == "PolicyFallback"],
                       diagnose=operator.log_tail)[0]
    assert warning["type"] == "Warning" and "NaN" in warning["message"] and "heuristic" in warning["message"]
    assert operator.sample("thrifty_policy_fallbacks", "thrifty_policy_fallbacks_total", kind="sizing") > before
    pods = wait_for("the heuristic's decision applied: 2 bound pods",
                    lambda: len(p := k.pods_of("nan-web")) == 2 and _bound(p) and p)
    assert len(pods) == 2
    status = wait_for("status", lambda: k.get("rlw", "nan-web").get("status", {}).get("policy"))
    assert status["fallback"] is True and status["name"] == "scripted"
