"""What the operator's I/O and steps count: Kubernetes API calls in the adapter (against a local
HTTP server standing in for the API server), reconcile errors and waiting pods in the reconciler
(with a fake Kube)."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web
from kubernetes_asyncio.client import ApiClient, Configuration

from tests.support.operator import free_port
from tests.unit.test_metrics import value
from thrifty.adapter import Kube, KubeError
from thrifty.handlers import OperatorConfig, Reconciler
from thrifty.metrics import Metrics
from thrifty.policy.heuristic import HeuristicPolicy


async def _api_server(port: int) -> web.AppRunner:
    """Pods list fine; a binding conflicts (409); an RLWorkload status patch fails (500)."""
    async def pods(_: web.Request) -> web.Response:
        return web.json_response({"items": []})

    async def binding(_: web.Request) -> web.Response:
        return web.json_response({"kind": "Status", "message": "already bound"}, status=409)

    async def status(_: web.Request) -> web.Response:
        return web.json_response({"kind": "Status", "message": "etcd down"}, status=500)

    app = web.Application()
    app.router.add_get("/api/v1/pods", pods)
    app.router.add_post("/api/v1/namespaces/ns/pods/p/binding", binding)
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
            with pytest.raises(KubeError):
                await kube.bind_pod("ns", "p", "uid", "node-0")
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
    assert counted == {("list", "pods", "success"): 2.0, ("create", "pods/binding", "client-error"): 1.0,
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
    asyncio.run(reconciler.place_pending())  # an API error: logged, counted, retried later
    asyncio.run(reconciler.reconcile("ns", "web"))
    assert value(metrics, "thrifty_reconcile_errors_total", kind="placement") == 1.0
    assert value(metrics, "thrifty_reconcile_errors_total", kind="sizing") == 1.0
    reconciler.kube = _FailingKube(RuntimeError("a bug"))
    with pytest.raises(RuntimeError):  # a bug: counted, and let out for kopf to log and retry
        asyncio.run(reconciler.reconcile("ns", "web"))
    assert value(metrics, "thrifty_reconcile_errors_total", kind="sizing") == 2.0
    assert value(metrics, "thrifty_step_duration_seconds_count", step="sizing") == 2.0


def _pod(name: str, *, node: str | None = None, scheduler: str = "thrifty") -> dict:
    return {"metadata": {"name": name, "namespace": "ns", "uid": name, "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"schedulerName": scheduler, "containers": [], **({"nodeName": node} if node else {})},
            "status": {"phase": "Pending"}}


def test_pod_events_and_sweeps_keep_the_waiting_pods() -> None:
    metrics = Metrics(clock=lambda: 1767225600.0 + 90.0)  # 90 s after the pods' creation
    reconciler = _reconciler(_EmptyKube(RuntimeError("unused")), metrics)
    assert reconciler.pod_event_needs_sweep(None, _pod("a"))
    assert reconciler.pod_event_needs_sweep("ADDED", _pod("b"))
    assert not reconciler.pod_event_needs_sweep("ADDED", _pod("c", scheduler="default-scheduler"))
    assert value(metrics, "thrifty_pods_pending") == 2.0
    assert value(metrics, "thrifty_pods_pending_oldest_seconds") == 90.0
    reconciler.pod_event_needs_sweep("MODIFIED", _pod("a", node="node-0"))  # bound
    assert value(metrics, "thrifty_pods_pending") == 1.0
    reconciler.pod_event_needs_sweep("DELETED", _pod("b"))
    assert value(metrics, "thrifty_pods_pending") == 0.0
    reconciler.pod_event_needs_sweep("ADDED", _pod("d"))
    asyncio.run(reconciler.place_pending())  # the API lists no pod: d is gone, whatever events said
    assert value(metrics, "thrifty_pods_pending") == 0.0
    assert value(metrics, "thrifty_pods_pending_oldest_seconds") == 0.0


class _OneNodeKube(_EmptyKube):
    """One node, the pods given, and bindings that another scheduler always wins (409)."""

    def __init__(self, pods: list[dict]) -> None:
        super().__init__(RuntimeError("unused"))
        self.pods, self.binds = pods, 0

    async def list_nodes(self) -> list[dict]:
        return [{"metadata": {"name": "node-0", "labels": {}}, "spec": {},
                 "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                            "capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                            "conditions": [{"type": "Ready", "status": "True"}]}}]

    async def list_pods(self) -> list[dict]:
        return self.pods

    async def bind_pod(self, namespace: str, name: str, uid: str, node: str) -> None:
        self.binds += 1
        raise KubeError(f"bind pod {namespace}/{name}", 409, "already bound")

    async def post_event(self, *args: object, **kwargs: object) -> None:
        pass


def test_a_pod_bound_by_another_scheduler_waits_no_more() -> None:
    metrics = Metrics(clock=lambda: 1767225600.0 + 90.0)
    kube = _OneNodeKube([_pod("a")])
    reconciler = _reconciler(kube, metrics)
    reconciler.pod_event_needs_sweep(None, _pod("a"))
    asyncio.run(reconciler.place_pending())
    assert kube.binds == 1  # the sweep tried, and found it taken
    assert value(metrics, "thrifty_pods_pending") == 0.0
