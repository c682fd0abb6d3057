"""The two Kubernetes mechanisms Thrifty acts through, on a real API server with kwok nodes.

- Placement: a pod with ``schedulerName: thrifty`` is left alone by kube-scheduler and is bound
  to a node through the pod's ``binding`` subresource, as kube-scheduler does for Thrifty's profile.
- Vertical sizing: a running pod's CPU request is changed in place through the pod's ``resize``
  subresource, without recreating or restarting it.

Both go through the Python kubernetes client, as the operator does.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from kubernetes import client

from tests.conftest import Cluster
from tests.support.operator import create_namespace, wait_for

PENDING_S = 5
IMAGE = "registry.k8s.io/pause:3.10"


@pytest.fixture(scope="module")
def ns(cluster: Cluster) -> str:
    name = create_namespace(cluster, "thrifty-mech")
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def _pod(cluster: Cluster, ns: str, name: str) -> dict[str, Any]:
    return json.loads(cluster.kubectl("get", "pod", "-n", ns, name, "-o", "json").stdout)


def _ready_node(cluster: Cluster) -> dict[str, Any]:
    """A Ready node; the cluster's nodes are kwok nodes."""
    nodes = json.loads(cluster.kubectl("get", "nodes", "-o", "json").stdout)["items"]
    ready = [
        n for n in nodes
        if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"].get("conditions", []))
        and not n["spec"].get("unschedulable")
    ]
    assert ready, f"no Ready node in the cluster: {[n['metadata']['name'] for n in nodes]}"
    return sorted(ready, key=lambda n: n["metadata"]["name"])[-1]


def _pod_manifest(name: str, node: dict[str, Any], scheduler: str | None) -> dict[str, Any]:
    """A Burstable pod that fits `node`: it tolerates the node's taints (kwok nodes may carry
    kwok.x-k8s.io/node=fake:NoSchedule), so kube-scheduler would place it if it were its pod."""
    tolerations = [
        {"key": t["key"], "operator": "Exists", "effect": t["effect"]} for t in node["spec"].get("taints", [])
    ]
    spec: dict[str, Any] = {
        "tolerations": tolerations,
        "containers": [
            {
                "name": "app",
                "image": IMAGE,
                "resources": {
                    "requests": {"cpu": "100m", "memory": "64Mi"},
                    "limits": {"cpu": "500m", "memory": "128Mi"},
                },
            }
        ],
    }
    if scheduler:
        spec["schedulerName"] = scheduler
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"test": "mechanisms"}},
            "spec": spec}


def _running_on(cluster: Cluster, ns: str, name: str, node: str | None = None) -> dict[str, Any] | None:
    pod = _pod(cluster, ns, name)
    bound = pod["spec"].get("nodeName")
    if pod["status"].get("phase") == "Running" and bound and (node is None or bound == node):
        return pod
    return None


RESIZE_HINT = (
    "a kubelet reports the actual resources of each running container in "
    "status.containerStatuses[].resources, and the API server refuses any resize of a running pod "
    "without them ('Pod running on node without support for resize'); kwok's stock stages do not "
    "set them, so hack/cluster.sh must give kwok a stage that copies spec.containers[].resources there"
)


def _resizable(cluster: Cluster, ns: str, name: str, node: str | None = None) -> dict[str, Any] | None:
    """The pod once it runs and its container statuses report resources, as a kubelet's do."""
    pod = _running_on(cluster, ns, name, node)
    if pod and all("resources" in s for s in pod["status"].get("containerStatuses", [])):
        return pod
    return None


def test_thrifty_pod_waits_for_binding_then_runs_and_resizes_in_place(
    cluster: Cluster, ns: str, core: client.CoreV1Api
) -> None:
    node = _ready_node(cluster)
    node_name = node["metadata"]["name"]

    # Control: the same pod for kube-scheduler is placed at once, so the thrifty pod below is
    # Pending only because of its schedulerName, not because it fits nowhere.
    cluster.kubectl("create", "-n", ns, "-f", "-", input=json.dumps(_pod_manifest("control", node, None)))
    wait_for("kube-scheduler to place and kwok to run the control pod", lambda: _running_on(cluster, ns, "control"))

    cluster.kubectl("create", "-n", ns, "-f", "-", input=json.dumps(_pod_manifest("placed", node, "thrifty")))
    deadline = time.monotonic() + PENDING_S
    while time.monotonic() < deadline:
        pod = _pod(cluster, ns, "placed")
        assert not pod["spec"].get("nodeName"), (
            f"pod with schedulerName thrifty was bound to {pod['spec']['nodeName']} by someone else "
            "(is a Thrifty operator running against the test cluster?)"
        )
        assert pod["status"].get("phase") == "Pending", pod["status"]
        # kube-scheduler sets PodScheduled (False, Unschedulable) on pods it tried and failed to place.
        assert not any(c["type"] == "PodScheduled" for c in pod["status"].get("conditions", [])), pod["status"]
        time.sleep(0.5)
    events = json.loads(
        cluster.kubectl("get", "events", "-n", ns, "--field-selector", "involvedObject.name=placed",
                        "-o", "json").stdout
    )["items"]
    assert not [e for e in events if e.get("reportingComponent") == "default-scheduler" or
                e.get("source", {}).get("component") == "default-scheduler"], events

    # Bind through the binding subresource. The API server answers 201 with a v1 Status, not a
    # Binding, so the client cannot deserialise the reply as its declared return type:
    # _preload_content=False returns the raw response (errors still raise ApiException).
    body = client.V1Binding(
        metadata=client.V1ObjectMeta(name="placed"),
        target=client.V1ObjectReference(api_version="v1", kind="Node", name=node_name),
    )
    response = core.create_namespaced_pod_binding("placed", ns, body, _preload_content=False)
    assert response.status == 201, (response.status, response.data)
    assert json.loads(response.data)["status"] == "Success", response.data

    wait_for(f"pod 'placed' to run on {node_name}", lambda: _running_on(cluster, ns, "placed", node_name))
    pod = wait_for(
        f"pod 'placed' to report container resources ({RESIZE_HINT})",
        lambda: _resizable(cluster, ns, "placed", node_name),
    )
    uid = pod["metadata"]["uid"]
    [status] = pod["status"]["containerStatuses"]
    restarts = status["restartCount"]
    assert [c for c in pod["status"]["conditions"] if c["type"] == "PodScheduled"][0]["status"] == "True"

    # Resize in place through the resize subresource. The client picks JSON Patch as the default
    # content type of a PATCH, so a strategic merge patch must say so.
    patch = {"spec": {"containers": [{"name": "app", "resources": {"requests": {"cpu": "200m"}}}]}}
    response = core.patch_namespaced_pod_resize(
        "placed", ns, patch, _content_type="application/strategic-merge-patch+json", _preload_content=False
    )
    assert response.status == 200, (response.status, response.data)
    assert json.loads(response.data)["spec"]["containers"][0]["resources"]["requests"]["cpu"] == "200m"

    # Give a would-be restart or recreation time to show.
    time.sleep(2)
    pod = wait_for("pod 'placed' to be Running after the resize", lambda: _running_on(cluster, ns, "placed"))
    assert pod["metadata"]["uid"] == uid, "the pod was recreated"
    assert pod["spec"]["nodeName"] == node_name, "the pod moved"
    [container] = pod["spec"]["containers"]
    assert container["resources"]["requests"] == {"cpu": "200m", "memory": "64Mi"}
    assert container["resources"]["limits"] == {"cpu": "500m", "memory": "128Mi"}
    [status] = pod["status"]["containerStatuses"]
    assert status["restartCount"] == restarts, "the container restarted"
    generation = pod["metadata"]["generation"]
    assert generation >= 2, "a resize bumps the pod's generation"

    # The node (kwok, standing in for the kubelet) actuates the resize and reports it. The resize
    # is complete when the status has caught up with the generation, the container reports the
    # new size and no PodResizeInProgress/PodResizePending condition is left.
    def actuated() -> dict[str, Any] | None:
        pod = _pod(cluster, ns, "placed")
        [status] = pod["status"]["containerStatuses"]
        done = (
            pod["status"].get("observedGeneration") == generation
            and status.get("resources", {}).get("requests", {}).get("cpu") == "200m"
            and not any(c["type"].startswith("PodResize") for c in pod["status"].get("conditions", []))
        )
        return pod if done else None

    pod = wait_for(f"the resize to be actuated and reported in status ({RESIZE_HINT})", actuated)
    assert pod["metadata"]["uid"] == uid and pod["status"]["containerStatuses"][0]["restartCount"] == restarts


def test_resize_cannot_change_qos_class(cluster: Cluster, ns: str, core: client.CoreV1Api) -> None:
    """What Thrifty's safety layer must respect: a resize that would turn a Burstable pod into a
    Guaranteed one (requests == limits) is refused by the API server, so it is never sent."""
    node = _ready_node(cluster)
    cluster.kubectl("create", "-n", ns, "-f", "-", input=json.dumps(_pod_manifest("qos", node, None)))
    wait_for(f"pod 'qos' to run and report container resources ({RESIZE_HINT})", lambda: _resizable(cluster, ns, "qos"))
    patch = {
        "spec": {
            "containers": [
                {"name": "app", "resources": {"requests": {"cpu": "500m", "memory": "128Mi"}}}
            ]
        }
    }
    with pytest.raises(client.ApiException) as err:
        core.patch_namespaced_pod_resize(
            "qos", ns, patch, _content_type="application/strategic-merge-patch+json", _preload_content=False
        )
    assert err.value.status == 422, err.value
    assert "qos" in str(err.value.body).lower(), err.value.body
