"""Fixtures shared by the cluster tests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kubernetes import client, config

from tests.conftest import Cluster
from tests.support import image_env


@pytest.fixture(scope="module")
def core(cluster: Cluster) -> client.CoreV1Api:
    """The core/v1 API of the session's cluster, through the synchronous Python client."""
    api = config.new_client_from_config(config_file=cluster.kubeconfig)
    yield client.CoreV1Api(api)
    api.close()


@pytest.fixture(scope="session")
def image_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``bin/`` of an environment built by the Dockerfile's own command (tests.support.image_env),
    once per session: the operator of the install and monitoring tests runs from it."""
    return image_env.build(tmp_path_factory.mktemp("image"))


def overcommitted_nodes(cluster: Cluster) -> list[str]:
    """Nodes whose bound, unfinished pods request more than the node's allocatable CPU, memory,
    pod count or any extended resource, each with what overflows."""
    from thrifty.observe import cpu_millicores, memory_bytes, parse_quantity, pod_requests

    nodes = json.loads(cluster.kubectl("get", "nodes", "-o", "json").stdout)["items"]
    pods = json.loads(cluster.kubectl("get", "pods", "-A", "-o", "json").stdout)["items"]
    used: dict[str, dict[str, float]] = {}
    for pod in pods:
        node = pod["spec"].get("nodeName")
        if not node or pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
            continue
        total = used.setdefault(node, {})
        cpu, memory = pod_requests(pod)
        total["cpu"] = total.get("cpu", 0.0) + cpu
        total["memory"] = total.get("memory", 0.0) + memory
        total["pods"] = total.get("pods", 0.0) + 1
        for container in pod["spec"].get("containers", []):
            for name, value in ((container.get("resources") or {}).get("requests") or {}).items():
                if "/" in name:  # an extended resource
                    total[name] = total.get(name, 0.0) + parse_quantity(value)
    problems = []
    for node in nodes:
        name, allocatable = node["metadata"]["name"], node["status"].get("allocatable") or {}
        have = {"cpu": cpu_millicores(allocatable.get("cpu", "0")),
                "memory": memory_bytes(allocatable.get("memory", "0")),
                "pods": parse_quantity(allocatable.get("pods", "0")),
                **{k: parse_quantity(v) for k, v in allocatable.items() if "/" in k}}
        for resource, amount in used.get(name, {}).items():
            if amount > have.get(resource, 0.0):
                problems.append(f"{name}: {resource} requested {amount:g} > allocatable {have.get(resource, 0.0):g}")
    return problems


@pytest.fixture(autouse=True)
def no_node_overcommitted(request: pytest.FixtureRequest) -> None:
    """After every cluster test: no node holds more than it can (whoever placed the pods)."""
    yield
    if "cluster" not in request.fixturenames:
        return
    problems = overcommitted_nodes(request.getfixturevalue("cluster"))
    assert not problems, f"nodes overcommitted after {request.node.name}: {problems}"
