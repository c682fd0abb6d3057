"""kwok as the kubelet, end to end: in-place resize reported in status, and replayed usage served
by metrics.k8s.io (kwok ResourceUsage -> kwok's /metrics/resource -> metrics-server)."""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from kubernetes import client, watch
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import REPO, Cluster
from tests.support.operator import create_namespace, wait_for
from thrifty import replay
from thrifty.observe import cpu_millicores, memory_bytes
from thrifty.traces import load

IMAGE = "registry.k8s.io/pause:3.10"
WAIT_S = 60
METRICS_WAIT_S = 150
"""metrics-server needs two scrapes (10 s apart) of a pod before it reports it, after kwok has
picked the pod up; a fresh cluster also needs its first node scrapes."""
TRACE = "traces/bitbrains-rnd/vms-train.tar.xz"


@pytest.fixture(scope="module")
def ns(cluster: Cluster) -> str:
    name = create_namespace(cluster, "thrifty-replay")
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def _pod_manifest(name: str, *, cpu: str, limit: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {
            "nodeSelector": {"type": "kwok"},
            "containers": [
                {
                    "name": "app",
                    "image": IMAGE,
                    "resources": {
                        "requests": {"cpu": cpu, "memory": "64Mi"},
                        "limits": {"cpu": limit, "memory": "256Mi"},
                    },
                },
                {"name": "sidecar", "image": IMAGE},
            ],
        },
    }


def _pod(cluster: Cluster, ns: str, name: str) -> dict[str, Any]:
    return json.loads(cluster.kubectl("get", "pod", "-n", ns, name, "-o", "json").stdout)


def _running(cluster: Cluster, ns: str, name: str) -> dict[str, Any] | None:
    pod = _pod(cluster, ns, name)
    statuses = pod["status"].get("containerStatuses", [])
    if pod["status"].get("phase") == "Running" and statuses and all("resources" in s for s in statuses):
        return pod
    return None


def _app_status(pod: dict[str, Any]) -> dict[str, Any]:
    return next(s for s in pod["status"]["containerStatuses"] if s["name"] == "app")


def test_resize_is_allocated_then_actuated_without_restart(cluster: Cluster, ns: str, core: client.CoreV1Api) -> None:
    cluster.kubectl("create", "-n", ns, "-f", "-", input=json.dumps(_pod_manifest("resize", cpu="100m", limit="200m")))
    pod = wait_for("pod 'resize' to run and report its container resources", lambda: _running(cluster, ns, "resize"))
    before = _app_status(pod)
    assert before["resources"] == {
        "requests": {"cpu": "100m", "memory": "64Mi"},
        "limits": {"cpu": "200m", "memory": "256Mi"},
    }
    assert before["allocatedResources"] == {"cpu": "100m", "memory": "64Mi"}

    patch = {
        "spec": {"containers": [{"name": "app", "resources": {"requests": {"cpu": "300m"}, "limits": {"cpu": "600m"}}}]}
    }
    response = core.patch_namespaced_pod_resize(
        "resize", ns, patch, _content_type="application/strategic-merge-patch+json", _preload_content=False
    )
    resized = json.loads(response.data)
    generation, version = resized["metadata"]["generation"], resized["metadata"]["resourceVersion"]

    # Every status the "kubelet" writes after the resize, in order: a watch misses none.
    seen: list[dict[str, Any]] = []
    stream = watch.Watch()
    for event in stream.stream(
        core.list_namespaced_pod,
        ns,
        field_selector="metadata.name=resize",
        resource_version=version,
        timeout_seconds=WAIT_S,
        _preload_content=False,
    ):
        pod = event["raw_object"]
        seen.append(pod)
        status = _app_status(pod)
        if status.get("resources", {}).get("requests", {}).get("cpu") == "300m" and not any(
            c["type"].startswith("PodResize") for c in pod["status"].get("conditions", [])
        ):
            stream.stop()
    assert seen, "no status update after the resize"

    # 1. Allocated: the new requests admitted, observedGeneration caught up, the old size still
    #    running, PodResizeInProgress set.
    allocated = [
        p
        for p in seen
        if any(c["type"] == "PodResizeInProgress" and c["status"] == "True" for c in p["status"].get("conditions", []))
    ]
    assert allocated, f"no PodResizeInProgress reported: {[p['status'] for p in seen]}"
    first = allocated[0]
    assert first["status"]["observedGeneration"] == generation
    assert _app_status(first)["allocatedResources"] == {"cpu": "300m", "memory": "64Mi"}
    assert _app_status(first)["resources"]["requests"]["cpu"] == "100m"

    # 2. Actuated: the new size running, the condition gone, the container not restarted.
    final = seen[-1]
    status = _app_status(final)
    assert status["resources"] == {
        "requests": {"cpu": "300m", "memory": "64Mi"},
        "limits": {"cpu": "600m", "memory": "256Mi"},
    }
    assert final["status"]["observedGeneration"] == generation
    assert not any(c["type"].startswith("PodResize") for c in final["status"].get("conditions", []))
    assert final["metadata"]["uid"] == pod["metadata"]["uid"]
    assert status["restartCount"] == before["restartCount"]
    assert status["state"] == before["state"], "the container was restarted"
    # The untouched sidecar reports its (empty) resources unchanged.
    assert next(s for s in final["status"]["containerStatuses"] if s["name"] == "sidecar")["resources"] == {}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pod_metrics(cluster: Cluster, ns: str) -> dict[str, dict[str, tuple[float, float]]]:
    """pod -> container -> (CPU millicores, memory bytes) from metrics.k8s.io."""
    proc = cluster.kubectl("get", "--raw", f"/apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods", check=False)
    if proc.returncode != 0:
        return {}
    return {
        item["metadata"]["name"]: {
            c["name"]: (cpu_millicores(c["usage"]["cpu"]), memory_bytes(c["usage"]["memory"]))
            for c in item["containers"]
        }
        for item in json.loads(proc.stdout)["items"]
    }


def test_replayed_usage_reaches_metrics_api_and_latency_is_exported(cluster: Cluster, ns: str) -> None:
    # The series the workload replays, read here the way the replayer reads it.
    vm = max(load(REPO / TRACE).containers, key=lambda u: float(np.nan_to_num(u.cpu_usage_millicores[0])))
    cpu_seconds_per_request = 0.01
    signals = replay.resolve_signals(
        replay.parse_replay_spec("t", {replay.TRACE_ANNOTATION: f"{TRACE}#{vm.name}"}), "t", lambda p: load(REPO / p)
    )
    demand = replay.demand_at(signals, cpu_seconds_per_request, 0.0)
    share = demand.cpu_millicores / 2  # two replicas
    low_limit = max(10, int(share / 2))  # one replica is capped at its limit

    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))
    workload = {
        "apiVersion": "thrifty.dev/v1alpha1",
        "kind": "RLWorkload",
        "metadata": {
            "name": "web",
            "annotations": {
                replay.TRACE_ANNOTATION: f"{TRACE}#{vm.name}",
                replay.CPU_PER_REQUEST_ANNOTATION: str(cpu_seconds_per_request),
            },
        },
        "spec": {
            # An RLWorkload no operator acts on (none runs against the test cluster): the test
            # creates its pods itself, labelled as Thrifty labels its own.
            "template": {"spec": {"containers": [{"name": "app", "image": IMAGE}]}},
            "replicas": {"min": 1, "max": 4},
            "slo": {"latencyP95Milliseconds": 200},
            "policy": {"mode": "Recommend"},
        },
    }
    cluster.kubectl("create", "-n", ns, "-f", "-", input=json.dumps(workload))
    labels = {replay.WORKLOAD_LABEL: "web"}
    for name, limit in (("web-roomy", "4"), ("web-capped", f"{low_limit}m")):
        manifest = _pod_manifest(name, cpu=f"{min(low_limit, 10)}m", limit=limit, labels=labels)
        cluster.kubectl("create", "-n", ns, "-f", "-", input=json.dumps(manifest))
    for name in ("web-roomy", "web-capped"):
        wait_for(f"pod {name} to run", lambda name=name: _running(cluster, ns, name))

    # A replay speed so slow that the trace stays at its first sample for the whole test.
    port = _free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    replayer = subprocess.Popen(
        [str(Path(sys.executable).parent / "thrifty"), "replay", "--kubeconfig", cluster.kubeconfig, "--namespace", ns,
         "--speedup", "1e-9", "--interval-seconds", "2", "--metrics-port", str(port)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )  # fmt: skip
    try:
        expected = {"web-roomy": share, "web-capped": float(low_limit)}

        def replayed() -> dict | None:
            metrics = _pod_metrics(cluster, ns)
            if set(expected) - set(metrics):
                return None
            for pod, cpu in expected.items():
                app_cpu, app_memory = metrics[pod]["app"]
                # kwok serves the rate of a counter it integrates at each scrape: exact up to ns.
                if abs(app_cpu - cpu) > 2.0 or abs(app_memory - demand.memory_bytes_per_replica) > 1.0:
                    return None
            return metrics

        metrics = wait_for(
            f"metrics.k8s.io to report the replayed usage {expected} CPU m, {demand.memory_bytes_per_replica:.0f} B",
            replayed,
            timeout=METRICS_WAIT_S,
            interval=2.0,
        )
        # The sidecar gets kwok's idle default, not the replayed usage.
        assert metrics["web-roomy"]["sidecar"][0] <= 2.0

        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
        values = {
            sample.name: sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.labels == {"namespace": ns, "rlworkload": "web"}
        }
        assert values["thrifty_replay_running_replicas"] == 2
        assert values["thrifty_replay_cpu_demand_millicores"] == pytest.approx(demand.cpu_millicores, abs=0.5)
        assert values["thrifty_replay_request_rate_per_second"] == pytest.approx(
            demand.request_rate_per_second, rel=1e-3
        )
        assert 0 < values["thrifty_replay_latency_p95_seconds"] < math.inf
    finally:
        replayer.terminate()
        output = replayer.communicate(timeout=30)[0]
    assert "Traceback" not in output, output
