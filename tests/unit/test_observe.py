"""observe: Kubernetes objects (plain dicts) into a ClusterSnapshot; and the usage history."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from thrifty.actions import ContainerResources
from thrifty.history import UsageHistory
from thrifty.observe import (
    QuantityError,
    build_snapshot,
    container_usage,
    cpu_millicores,
    finished_pods,
    finished_reason,
    format_cpu,
    format_memory,
    memory_bytes,
    needs_placement,
    node_usage,
    owns,
    parse_quantity,
    parse_time,
    parse_workload,
    pod_requests,
    pod_selector,
    resource_quantities,
    usage_by_uid,
)
from thrifty.snapshot import NO_WORKLOAD, UNBOUND

MI, GI = 2**20, 2**30
STAMP = "2027-01-15T08:00:00Z"
NOW = parse_time("2027-01-15T10:00:00Z")


# --- Quantities --------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "millicores"), [
    ("250m", 250.0), ("1", 1000.0), ("1.5", 1500.0), ("0.1", 100.0), (".5", 500.0), ("100m", 100.0),
    ("2", 2000.0), (2, 2000.0), (0.25, 250.0), ("1k", 1_000_000.0), ("1e-3", 1.0), ("500000u", 500.0),
    ("1000000n", 1.0), ("+3", 3000.0),
])
def test_cpu_quantities(text: str | float, millicores: float) -> None:
    assert cpu_millicores(text) == pytest.approx(millicores)


@pytest.mark.parametrize(("text", "value"), [
    ("1Gi", GI), ("128Mi", 128 * MI), ("1.5Gi", 1.5 * GI), ("512Ki", 512 * 1024), ("1G", 1e9),
    ("100M", 1e8), ("1e3", 1000.0), ("2E3", 2000.0), (1024, 1024.0), ("1Ti", 2**40), ("1Ei", 2**60),
    ("64", 64.0), ("0", 0.0), ("1.5", 1.5),
])
def test_memory_quantities(text: str | int, value: float) -> None:
    assert memory_bytes(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["", "abc", "1Gib", "1.2.3", "Mi", "1 Gi", "--1", "1e", "0x10", True, math.nan,
                                  math.inf])
def test_invalid_quantities_are_refused(text: object) -> None:
    with pytest.raises(QuantityError):
        parse_quantity(text)  # type: ignore[arg-type]


@pytest.mark.parametrize(("millicores", "text"), [
    (250, "250m"), (1000, "1"), (1500, "1500m"), (2000, "2"), (10, "10m"), (0, "0"), (99.6, "100m"),
])
def test_format_cpu(millicores: float, text: str) -> None:
    assert format_cpu(millicores) == text


@pytest.mark.parametrize(("value", "text"), [
    (128 * MI, "128Mi"), (GI, "1Gi"), (1536 * MI, "1536Mi"), (1000, "1000"), (2048, "2Ki"), (0, "0"),
    (16 * MI + 1, str(16 * MI + 1)),
])
def test_format_memory(value: float, text: str) -> None:
    assert format_memory(value) == text


@pytest.mark.parametrize(("size", "requests", "limits"), [
    (ContainerResources(250, 1000, 128 * MI, 256 * MI), {"cpu": "250m", "memory": "128Mi"},
     {"cpu": "1", "memory": "256Mi"}),
    (ContainerResources(250, math.inf, 128 * MI, math.inf), {"cpu": "250m", "memory": "128Mi"}, {}),
    (ContainerResources(0, 500, 0, math.inf), {"cpu": "0", "memory": "0"}, {"cpu": "500m"}),
])
def test_resource_quantities(size: ContainerResources, requests: dict, limits: dict) -> None:
    assert resource_quantities(size) == (requests, limits)


@given(st.integers(min_value=0, max_value=10**9))
def test_cpu_format_round_trips(millicores: int) -> None:
    assert cpu_millicores(format_cpu(millicores)) == millicores


@given(st.integers(min_value=0, max_value=2**50))
def test_memory_format_round_trips(value: int) -> None:
    assert memory_bytes(format_memory(value)) == value


# --- Object helpers ----------------------------------------------------------------------------

def container(name: str = "app", cpu: str | None = "100m", memory: str | None = "64Mi",
              limits: dict | None = None) -> dict:
    requests = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v is not None}
    resources = {"requests": requests}
    if limits:
        resources["limits"] = limits
    return {"name": name, "image": "pause", "resources": resources}


def pod(name: str, *, node: str | None = None, namespace: str = "ns", scheduler: str = "thrifty",
        containers: list[dict] | None = None, phase: str = "Running", owner: str | None = None,
        workload: str | None = None, created: str = STAMP, deleting: bool = False, **spec: object) -> dict:
    meta: dict = {"name": name, "namespace": namespace, "uid": f"uid-{name}", "creationTimestamp": created,
                  "labels": {}}
    if workload:
        meta["labels"]["thrifty.dev/workload"] = workload
    if owner:
        meta["ownerReferences"] = [{"kind": "RLWorkload", "name": workload, "uid": owner, "controller": True}]
    if deleting:
        meta["deletionTimestamp"] = STAMP
    body = {"schedulerName": scheduler, "containers": containers or [container()], **spec}
    if node:
        body["nodeName"] = node
    return {"metadata": meta, "spec": body, "status": {"phase": phase if node else "Pending"}}


def node(name: str, cpu: str = "4", memory: str = "16Gi", *, ready: bool = True, labels: dict | None = None,
         taints: list | None = None, unschedulable: bool = False) -> dict:
    return {"metadata": {"name": name, "labels": labels or {}},
            "spec": {"taints": taints or [], **({"unschedulable": True} if unschedulable else {})},
            "status": {"allocatable": {"cpu": cpu, "memory": memory},
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def workload(name: str = "web", *, uid: str = "w-uid", **spec: object) -> dict:
    body = {
        "template": {"spec": {"containers": [container()]}},
        "replicas": {"min": 1, "max": 4},
        "slo": {"latencyP95Milliseconds": 200},
        **spec,
    }
    return {"metadata": {"name": name, "namespace": "ns", "uid": uid, "generation": 3}, "spec": body}


# --- Requests and constraints ------------------------------------------------------------------

@pytest.mark.parametrize(("spec", "cpu", "memory"), [
    ({"containers": [container(cpu="100m", memory="64Mi")]}, 100, 64 * MI),
    ({"containers": [container(cpu="100m", memory="64Mi"), container("b", cpu="250m", memory="1Gi")]},
     350, 64 * MI + GI),
    ({"containers": [container(cpu=None, memory=None)]}, 0, 0),
    # An ordinary init container runs alone: the pod needs the larger of the two.
    ({"containers": [container(cpu="100m")], "initContainers": [container("init", cpu="500m", memory="1Mi")]},
     500, 64 * MI),
    # A sidecar (restartable init container) runs beside the app containers: they add up.
    ({"containers": [container(cpu="100m")],
      "initContainers": [{**container("side", cpu="50m", memory="16Mi"), "restartPolicy": "Always"}]},
     150, 80 * MI),
    ({"containers": [container(cpu="100m")], "overhead": {"cpu": "10m", "memory": "8Mi"}}, 110, 72 * MI),
])
def test_pod_requests(spec: dict, cpu: float, memory: float) -> None:
    assert pod_requests({"spec": spec}) == (pytest.approx(cpu), pytest.approx(memory))


@pytest.mark.parametrize(("obj", "expected"), [
    (pod("a"), True),
    (pod("a", scheduler="default-scheduler"), False),
    (pod("a", node="n1"), False),
    (pod("a", deleting=True), False),
    ({**pod("a"), "status": {"phase": "Failed"}}, False),
])
def test_needs_placement(obj: dict, expected: bool) -> None:
    assert needs_placement(obj) is expected


# --- RLWorkload --------------------------------------------------------------------------------

def test_parse_workload_applies_the_crd_defaults() -> None:
    spec = parse_workload(workload(replicas={"max": 4}))
    assert (spec.key, spec.replicas_min, spec.replicas_max, spec.replicas_initial) == ("ns/web", 1, 4, 1)
    assert (spec.mode, spec.policy_name, spec.energy_weight) == ("Recommend", "default", 0.5)
    assert spec.slo_latency_p95_seconds == pytest.approx(0.2) and spec.latency_query is None
    assert spec.generation == 3 and spec.status == {} and spec.container_bounds == {}


def test_parse_workload_reads_every_field() -> None:
    spec = parse_workload(workload(
        replicas={"min": 0, "max": 5, "initial": 3}, objective={"energyWeight": 0.3},
        slo={"latencyP95Milliseconds": 150, "latencyQuery": "  p95  "},
        dependencies=[{"workload": "db", "weight": 0.8}, {"workload": "cache"}],
        containers=[{"name": "app", "cpu": {"min": "100m", "max": 2}}, {"name": "side", "memory": {"min": "1Mi",
                                                                                                  "max": "1Gi"}}],
        policy={"name": "v2", "mode": "Auto"}))
    assert (spec.replicas_min, spec.replicas_max, spec.replicas_initial) == (0, 5, 3)
    assert spec.latency_query == "p95" and spec.energy_weight == 0.3 and spec.mode == "Auto"
    assert spec.dependencies == (("ns/db", 0.8), ("ns/cache", 1.0))
    app, side = spec.container_bounds["app"], spec.container_bounds["side"]
    assert (app.cpu_min_millicores, app.cpu_max_millicores) == (100.0, 2000.0) and math.isnan(app.memory_min_bytes)
    assert side.memory_max_bytes == GI and math.isnan(side.cpu_max_millicores)


@pytest.mark.parametrize(("patch", "field"), [
    ({"replicas": {"min": 5, "max": 2}}, "spec.replicas"),
    ({"slo": {"latencyP95Milliseconds": 0}}, "latencyP95Milliseconds"),
    ({"policy": {"mode": "Sometimes"}}, "spec.policy.mode"),
    ({"containers": [{"name": "app", "cpu": {"min": "lots", "max": "1"}}]}, "spec.containers"),
])
def test_parse_workload_names_the_bad_field(patch: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        parse_workload(workload(**patch))


def test_parse_workload_without_slo() -> None:
    """No spec.slo (a worker, a batch service): accepted, with no latency target."""
    body = workload()
    del body["spec"]["slo"]
    spec = parse_workload(body)
    assert math.isnan(spec.slo_latency_p95_seconds) and spec.latency_query is None


@pytest.mark.parametrize(("replicas", "desired"), [
    ({"max": 4}, None),
    ({"max": 4, "desired": 3}, 3),
    ({"max": 4, "desired": 0}, 0),
    ({"max": 4, "desired": 9}, 9),  # above max: kept as asked; sizing clips it to the bounds
])
def test_parse_workload_reads_the_scale_count(replicas: dict, desired: int | None) -> None:
    assert parse_workload(workload(replicas=replicas)).replicas_desired == desired


def test_pod_selector_names_the_workload_label() -> None:
    assert pod_selector(parse_workload(workload())) == "thrifty.dev/workload=web"


def _finished(name: str, phase: str, reason: str | None = None, **kw: object) -> dict:
    obj = pod(name, node="n1", phase=phase, workload="web", owner="w-uid", **kw)
    if reason:
        obj["status"] |= {"reason": reason, "message": "The node was low on resource: memory."}
    return obj


@pytest.mark.parametrize(("obj", "finished"), [
    (_finished("a", "Failed", "Evicted"), True),  # evicted by the kubelet
    (_finished("b", "Failed"), True),
    (_finished("c", "Succeeded"), True),
    (_finished("d", "Running"), False),
    (pod("e", workload="web", owner="w-uid"), False),  # Pending
    (_finished("f", "Failed", deleting=True), False),  # already being deleted
    (pod("g", node="n1", phase="Failed", workload="web", owner="other-uid"), False),  # not this workload's
])
def test_finished_pods(obj: dict, finished: bool) -> None:
    assert (finished_pods(parse_workload(workload()), [obj]) == [obj]) is finished


def test_finished_reason_says_what_the_kubelet_said() -> None:
    assert finished_reason(_finished("a", "Failed", "Evicted")) == (
        "Failed, reason Evicted: The node was low on resource: memory.")
    assert finished_reason(_finished("b", "Succeeded")) == "Succeeded"


@pytest.mark.parametrize(("sample_time", "kept"), [
    ("2027-01-15T09:59:30Z", True),  # measured the live pod
    ("2027-01-15T07:59:00Z", False),  # measured an earlier pod of the same name: dropped
    (None, True),  # no window time given: kept
])
def test_usage_is_keyed_by_pod_uid(sample_time: str | None, kept: bool) -> None:
    live = pod("web-0", node="n1", created=STAMP)
    item = {"metadata": {"name": "web-0", "namespace": "ns"},
            "containers": [{"name": "app", "usage": {"cpu": "20m", "memory": "10Mi"}}]}
    if sample_time:
        item["timestamp"] = sample_time
    stray = {"metadata": {"name": "gone", "namespace": "ns"}, "containers": [{"name": "app", "usage": {"cpu": "1"}}]}
    usage = usage_by_uid([item, stray], [live])
    assert usage == ({("uid-web-0", "app"): (20.0, 10 * MI)} if kept else {})


def test_recreated_pod_starts_with_an_empty_history() -> None:
    """A pod re-created under a deleted pod's name (Thrifty reuses the lowest free name) does
    not inherit the old pod's usage: the history is keyed by UID."""
    h = history()
    old, new = pod("web-0", node="n1", workload="web", owner="w-uid"), pod("web-0", node="n1", workload="web",
                                                                             owner="w-uid")
    new["metadata"]["uid"] = "uid-web-0-again"
    h.record(NOW - 15, {("uid-web-0", "app"): (900.0, 400 * MI)})
    snapshot = build_snapshot(time_seconds=NOW, nodes=[node("n1")], pods=[new],
                              workloads=[parse_workload(workload())], history=h)
    assert np.isnan(snapshot.containers.memory_history_bytes).all()
    snapshot = build_snapshot(time_seconds=NOW, nodes=[node("n1")], pods=[old],
                              workloads=[parse_workload(workload())], history=h)
    assert np.nanmax(snapshot.containers.memory_history_bytes) == 400 * MI


@pytest.mark.parametrize(("obj", "owned"), [
    (pod("p", workload="web", owner="w-uid"), True),
    (pod("p", workload="web", owner="other-uid"), False),  # the label alone is not enough
    (pod("p", workload="api", owner="w-uid"), False),
    (pod("p", workload="web", owner="w-uid", namespace="elsewhere"), False),
    (pod("p"), False),
])
def test_owns(obj: dict, owned: bool) -> None:
    assert owns(parse_workload(workload()), obj) is owned


def test_metrics_api_items() -> None:
    assert node_usage([{"metadata": {"name": "n1"}, "usage": {"cpu": "1500m", "memory": "2Gi"}}]) == {
        "n1": (1500.0, 2 * GI)}
    usage = container_usage([{"metadata": {"name": "p", "namespace": "ns"},
                              "containers": [{"name": "app", "usage": {"cpu": "12m", "memory": "3Mi"}},
                                             {"name": "side", "usage": {"cpu": "3077n"}}]}])
    assert usage[("ns/p", "app")] == (12.0, 3 * MI)
    assert usage[("ns/p", "side")][0] == pytest.approx(0.003077) and math.isnan(usage[("ns/p", "side")][1])


# --- The snapshot ------------------------------------------------------------------------------

def history(window: int = 4) -> UsageHistory:
    return UsageHistory(window_samples=window, step_seconds=15.0)


def test_snapshot_of_nodes_pods_and_workloads() -> None:
    spec = parse_workload(workload(containers=[{"name": "app", "cpu": {"min": "50m", "max": "1"}}],
                                   dependencies=[{"workload": "db", "weight": 0.5}, {"workload": "ghost"}]))
    db = parse_workload(workload("db", uid="db-uid"))
    nodes = [node("n1"), node("n2", cpu="8", labels={"thrifty.dev/power-class": "large"}),
             node("n3", ready=False), node("n4", unschedulable=True),
             node("n5", labels={"thrifty.dev/standby": "true"})]
    pods = [
        pod("w1", node="n1", workload="web", owner="w-uid", created="2027-01-15T07:00:00Z",
            containers=[container(cpu="200m", memory="128Mi", limits={"cpu": "1"}), container("side", cpu="10m")]),
        pod("w2", workload="web", owner="w-uid"),  # Pending, Thrifty's to place
        pod("w3", node="n2", workload="web", owner="w-uid", deleting=True),  # leaving: not a replica
        pod("d1", node="n2", workload="db", owner="db-uid"),
        pod("other", node="n1", scheduler="default-scheduler", containers=[container(cpu="1", memory="1Gi")]),
        pod("done", node="n1", phase="Succeeded"),  # holds nothing
        pod("foreign-pending", scheduler="default-scheduler"),  # not ours to place
        pod("lost", node="gone-node"),  # its node was deleted
    ]
    h = history()
    h.record(NOW, {("uid-w1", "app"): (20.0, 100 * MI)})
    snapshot = build_snapshot(
        time_seconds=NOW, nodes=nodes, pods=pods, workloads=[spec, db], history=h,
        node_usage_now={"n1": (500.0, GI)}, container_usage_now={("uid-w1", "app"): (20.0, 100 * MI)},
        latency_seconds={"ns/web": 0.15},
    )
    n = snapshot.nodes
    assert n.names == ("n1", "n2", "n3", "n4", "n5")
    assert n.cpu_capacity_millicores.tolist() == [4000, 8000, 4000, 4000, 4000]
    assert n.cpu_requested_millicores.tolist() == [210 + 1000, 200, 0, 0, 0]
    assert n.memory_requested_bytes[0] == 128 * MI + 64 * MI + GI
    assert n.schedulable.tolist() == [True, True, False, False, True]
    assert n.standby.tolist() == [False, False, False, False, True]
    assert n.power_class[1] == "large" and n.power_class[0] == "small"
    assert n.cpu_usage_millicores[0] == 500 and math.isnan(n.cpu_usage_millicores[1])

    p = snapshot.pods
    assert set(p.names) == {"ns/w1", "ns/w2", "ns/w3", "ns/d1", "ns/other"}
    row = {name: i for i, name in enumerate(p.names)}
    assert p.names[0] == "ns/w1"  # the oldest first
    assert p.node_index[row["ns/w2"]] == UNBOUND
    assert p.workload_index[row["ns/w1"]] == 0 and p.workload_index[row["ns/w2"]] == 0
    assert p.workload_index[row["ns/w3"]] == NO_WORKLOAD and p.node_index[row["ns/w3"]] == 1
    assert p.workload_index[row["ns/other"]] == NO_WORKLOAD
    assert p.cpu_request_millicores[row["ns/w1"]] == 210
    assert p.cpu_limit_millicores[row["ns/w1"]] == math.inf  # one container has no limit
    assert p.cpu_usage_millicores[row["ns/w1"]] == 20 and math.isnan(p.cpu_usage_millicores[row["ns/w2"]])
    assert p.age_seconds[row["ns/w1"]] > p.age_seconds[row["ns/w2"]]

    c = snapshot.containers
    app = next(i for i in range(len(c)) if c.pod_index[i] == row["ns/w1"] and c.names[i] == "app")
    side = next(i for i in range(len(c)) if c.pod_index[i] == row["ns/w1"] and c.names[i] == "side")
    assert (c.cpu_min_millicores[app], c.cpu_max_millicores[app]) == (50.0, 1000.0)
    # Not named in spec.containers: pinned to the current request, never resized.
    assert c.cpu_min_millicores[side] == c.cpu_max_millicores[side] == 10.0
    assert c.memory_min_bytes[app] == c.memory_max_bytes[app] == 128 * MI
    assert c.cpu_limit_millicores[app] == 1000 and c.memory_limit_bytes[app] == math.inf
    assert c.cpu_history_millicores.shape == (len(c), 4) and c.cpu_history_millicores[app, -1] == 20
    assert np.isnan(c.cpu_history_millicores[side]).all()

    w = snapshot.workloads
    assert w.names == ("ns/web", "ns/db") and w.replicas.tolist() == [2, 1]
    assert w.latency_p95_seconds[0] == 0.15 and math.isnan(w.latency_p95_seconds[1])
    assert w.cpu_min_millicores[0] == 50 and math.isnan(w.cpu_min_millicores[1])
    deps = snapshot.dependencies
    assert (deps.source.tolist(), deps.target.tolist(), deps.weight.tolist()) == ([0], [1], [0.5])


def test_snapshot_includes_the_pending_pods_asked_for() -> None:
    """include_pending picks the unbound pods; bound pods always count on their nodes."""
    nodes = [node("n1"), node("n2"), node("n3", labels={"zone": "a"})]
    pods = [pod("a"), pod("b", nodeSelector={"zone": "a"}), pod("c", node="n1")]
    batch = build_snapshot(time_seconds=NOW, nodes=nodes, pods=pods, workloads=[], history=history(),
                           include_pending=lambda p: p["metadata"]["name"] == "b")
    assert set(batch.pods.names) == {"ns/b", "ns/c"}
    assert batch.nodes.schedulable.tolist() == [True, True, True]
    assert batch.nodes.cpu_requested_millicores.tolist() == [100, 0, 0]


def test_empty_cluster() -> None:
    snapshot = build_snapshot(time_seconds=NOW, nodes=[], pods=[], workloads=[], history=history())
    assert len(snapshot.nodes) == len(snapshot.pods) == len(snapshot.containers) == len(snapshot.workloads) == 0


# --- Usage history -----------------------------------------------------------------------------

def test_history_buckets_oldest_first_with_gaps() -> None:
    h = UsageHistory(window_samples=4, step_seconds=10.0)
    key = ("ns/p", "app")
    h.record(100.0, {key: (1.0, 10.0)})
    h.record(105.0, {key: (2.0, 20.0)})  # same bucket: the newest wins
    h.record(120.0, {key: (3.0, 30.0)})  # bucket 12; bucket 11 stays a gap
    cpu, memory = h.window(key, 125.0)
    assert np.array_equal(cpu, [np.nan, 2.0, np.nan, 3.0], equal_nan=True)
    assert np.array_equal(memory, [np.nan, 20.0, np.nan, 30.0], equal_nan=True)
    assert np.isnan(h.window(("ns/other", "app"), 125.0)[0]).all()


def test_history_forgets_what_left_the_window() -> None:
    h = UsageHistory(window_samples=3, step_seconds=1.0)
    h.record(0.0, {("ns/gone", "app"): (1.0, 1.0)})
    h.record(10.0, {("ns/here", "app"): (2.0, 2.0)})
    assert len(h) == 1
    assert np.isnan(h.window(("ns/gone", "app"), 10.0)[0]).all()


@pytest.mark.parametrize(("window", "step"), [(0, 1.0), (3, 0.0), (3, math.inf), (3, -1.0)])
def test_history_config_is_checked(window: int, step: float) -> None:
    with pytest.raises(ValueError, match="UsageHistory"):
        UsageHistory(window_samples=window, step_seconds=step)
