"""What the operator's I/O and steps count: Kubernetes API calls in the adapter (against a local
HTTP server standing in for the API server), reconcile errors of the sizing step, and waiting
pods from the informer's pod feed (with fake Kubes)."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web
from kubernetes_asyncio.client import ApiClient, Configuration

from tests.support.operator import free_port
from tests.unit.test_metrics import value
from thrifty.adapter import Kube, KubeError
from thrifty.handlers import OperatorConfig, Reconciler
from thrifty.informer import Informer
from thrifty.metrics import Metrics
from thrifty.policy.heuristic import HeuristicPolicy
from thrifty.view import ClusterView


async def _api_server(port: int) -> web.AppRunner:
    """Pods list fine; a pod deletion conflicts (409); an RLWorkload status patch fails (500)."""
    async def pods(_: web.Request) -> web.Response:
        return web.json_response({"items": []})

    async def conflict(_: web.Request) -> web.Response:
        return web.json_response({"kind": "Status", "message": "UID precondition failed"}, status=409)

    async def status(_: web.Request) -> web.Response:
        return web.json_response({"kind": "Status", "message": "etcd down"}, status=500)

    app = web.Application()
    app.router.add_get("/api/v1/pods", pods)
    app.router.add_delete("/api/v1/namespaces/ns/pods/p", conflict)
    app.router.add_patch("/apis/thrifty.dev/v1alpha1/namespaces/ns/rlworkloads/w/status", status)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


def _kube(port: int, metrics: Metrics) -> Kube:
    configuration = Configuration(host=f"http://127.0.0.1:{port}")
    return Kube(ApiClient(configuration), None, metrics)


def test_api_calls_are_counted_by_verb_resource_and_outcome() -> None:
    metrics = Metrics()

    async def calls() -> None:
        port = free_port()
        runner = await _api_server(port)
        kube = _kube(port, metrics)
        try:
            assert await kube.list_pods() == []
            await kube.list_pods()
            assert (await kube.list_raw("/api/v1/pods"))["items"] == []  # the informer's LIST
            with pytest.raises(KubeError):
                await kube.get_workload("ns", "missing")  # no such route: 404
            with pytest.raises(KubeError):
                await kube.delete_pod("ns", "p", "uid")
            with pytest.raises(KubeError):
                await kube.patch_workload_status("ns", "w", {"replicas": 1})
        finally:
            await kube.close()
            await runner.cleanup()
        gone = _kube(free_port(), metrics)  # nothing listens there
        try:
            with pytest.raises(KubeError):
                await gone.list_nodes()
        finally:
            await gone.close()

    asyncio.run(calls())
    counted = {(s.labels["verb"], s.labels["resource"], s.labels["outcome"]): s.value
               for s in metrics.registry.collect() if s.name == "thrifty_kube_api_requests" for s in s.samples}
    assert counted == {("list", "pods", "success"): 3.0, ("get", "rlworkloads", "client-error"): 1.0,
                       ("delete", "pods", "client-error"): 1.0,
                       ("patch", "rlworkloads/status", "server-error"): 1.0, ("list", "nodes", "no-response"): 1.0}


class _FailingKube:
    """A Kube whose reads fail as ``error`` says."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    async def list_nodes(self) -> list[dict]:
        raise self.error

    async def list_pods(self) -> list[dict]:
        return []

    async def list_workloads(self) -> list[dict]:
        return []


class _EmptyKube(_FailingKube):
    async def list_nodes(self) -> list[dict]:
        return []

    async def node_metrics(self) -> list[dict]:
        return []

    async def pod_metrics(self) -> list[dict]:
        return []


def _reconciler(kube: object, metrics: Metrics) -> Reconciler:
    return Reconciler(config=OperatorConfig(), kube=kube, prometheus=None, metrics=metrics,
                      policy=HeuristicPolicy(), policy_error=None)


def test_reconcile_errors_are_counted_by_kind_of_step() -> None:
    metrics = Metrics()
    reconciler = _reconciler(_FailingKube(KubeError("list nodes", 503, "unavailable")), metrics)
    asyncio.run(reconciler.reconcile("ns", "web"))  # an API error: logged, counted, retried later
    assert value(metrics, "thrifty_reconcile_errors_total", kind="sizing") == 1.0
    reconciler.kube = _FailingKube(RuntimeError("a bug"))
    with pytest.raises(RuntimeError):  # a bug: counted, and let out for kopf to log and retry
        asyncio.run(reconciler.reconcile("ns", "web"))
    assert value(metrics, "thrifty_reconcile_errors_total", kind="sizing") == 2.0
    assert value(metrics, "thrifty_step_duration_seconds_count", step="sizing") == 2.0


def _pod(name: str, *, node: str | None = None, scheduler: str = "thrifty", namespace: str = "ns") -> dict:
    return {"metadata": {"name": name, "namespace": namespace, "uid": name,
                         "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"schedulerName": scheduler, "containers": [], **({"nodeName": node} if node else {})},
            "status": {"phase": "Pending"}}


def test_pod_events_and_lists_keep_the_waiting_pods() -> None:
    """The informer's pod events and LISTs keep thrifty_pods_pending, for the watched namespace."""
    metrics = Metrics(clock=lambda: 1767225600.0 + 90.0)  # 90 s after the pods' creation
    informer = Informer(_EmptyKube(RuntimeError("unused")), ClusterView(clock=lambda: 0.0), namespace="ns",
                        pending=metrics.pending_pods)
    informer._apply_pod("ADDED", _pod("a"))
    informer._apply_pod("ADDED", _pod("b"))
    informer._apply_pod("ADDED", _pod("c", scheduler="default-scheduler"))
    informer._apply_pod("ADDED", _pod("d", namespace="elsewhere"))
    assert value(metrics, "thrifty_pods_pending") == 2.0
    assert value(metrics, "thrifty_pods_pending_oldest_seconds") == 90.0
    informer._apply_pod("MODIFIED", _pod("a", node="node-0"))  # bound
    assert value(metrics, "thrifty_pods_pending") == 1.0
    informer._apply_pod("DELETED", _pod("b"))
    assert value(metrics, "thrifty_pods_pending") == 0.0
    informer._apply_pod("ADDED", _pod("e"))
    informer._replace_pods([])  # a LIST (after a broken watch) has no pod: e is gone, whatever events said
    assert value(metrics, "thrifty_pods_pending") == 0.0
    assert value(metrics, "thrifty_pods_pending_oldest_seconds") == 0.0
