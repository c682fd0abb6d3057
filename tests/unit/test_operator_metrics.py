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
from tests.unit.test_observe import node as observed_node
from tests.unit.test_observe import workload as observed_workload
from thrifty.adapter import EvictionBlocked, Kube, KubeError
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


_BUDGET = "The disruption budget web needs 3 healthy pods and has 3 currently"
_PDB_REFUSAL = {"kind": "Status", "status": "Failure", "reason": "TooManyRequests", "code": 429,
                "message": "Cannot evict pod as it would violate the pod's disruption budget.",
                "details": {"causes": [{"reason": "DisruptionBudget", "message": _BUDGET}]}}


@pytest.mark.parametrize(("status", "reply", "raised", "words"), [
    (201, {"kind": "Status", "status": "Success"}, None, None),
    (404, {"kind": "Status", "message": "pods \"web-1\" not found"}, None, None),  # gone already: fine
    (429, _PDB_REFUSAL, EvictionBlocked, _BUDGET),
    # A 429 without a budget cause is the API server's own throttling, an ordinary failure.
    (429, {"kind": "Status", "message": "too many requests, please try again later"}, KubeError, "too many"),
    (500, {"kind": "Status", "message": "etcd down"}, KubeError, "etcd down"),
])
def test_eviction_replies(status: int, reply: dict, raised: type[Exception] | None, words: str | None) -> None:
    """Scale-in goes through the pod's eviction subresource; a PodDisruptionBudget's refusal is
    told apart from other failures, with the budget's own words."""
    seen: list[dict] = []

    async def evict(request: web.Request) -> web.Response:
        seen.append(await request.json())
        return web.json_response(reply, status=status)

    async def calls() -> None:
        port = free_port()
        app = web.Application()
        app.router.add_post("/api/v1/namespaces/ns/pods/web-1/eviction", evict)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        kube = _kube(port, Metrics())
        try:
            if raised is None:
                await kube.evict_pod("ns", "web-1", "uid-1")
                return
            with pytest.raises(raised) as caught:
                await kube.evict_pod("ns", "web-1", "uid-1")
            assert type(caught.value) is raised
            text = caught.value.budgets if isinstance(caught.value, EvictionBlocked) else str(caught.value)
            assert words in text, text
        finally:
            await kube.close()
            await runner.cleanup()

    asyncio.run(calls())
    assert seen == [{"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "web-1", "namespace": "ns"},
                     "deleteOptions": {"preconditions": {"uid": "uid-1"}}}]


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


class _StepKube:
    """The API of one sizing step of the Auto workload ns/web (2 initial replicas, nothing yet):
    ``scale_status`` is what the scale subresource answers (0: it accepts)."""

    def __init__(self, scale_status: int) -> None:
        self.scale_status = scale_status
        self.created: list[str] = []
        self.statuses: list[dict] = []

    async def list_nodes(self) -> list[dict]:
        return [observed_node("n1")]

    async def list_pods(self) -> list[dict]:
        return []

    async def list_workloads(self) -> list[dict]:
        return [observed_workload(replicas={"min": 1, "max": 4, "initial": 2}, policy={"mode": "Auto"})]

    async def node_metrics(self) -> list[dict]:
        return []

    async def pod_metrics(self) -> list[dict]:
        return []

    async def scale_workload(self, namespace: str, name: str, replicas: int) -> None:
        if self.scale_status:
            raise KubeError(f"scale rlworkload {namespace}/{name} to {replicas}", self.scale_status, "no")

    async def create_pod(self, manifest: dict) -> dict:
        self.created.append(manifest["metadata"]["name"])
        return {**manifest, "metadata": {**manifest["metadata"], "uid": f"uid-{manifest['metadata']['name']}"}}

    async def patch_workload_status(self, namespace: str, name: str, status: dict) -> None:
        self.statuses.append(status)

    async def post_event(self, involved: dict, **_: object) -> None:
        return None


@pytest.mark.parametrize(("scale_status", "created", "errors"), [
    (0, ["web-0", "web-1"], 0.0),
    # A CRD without the scale subresource (helm upgrade keeps CRDs as they were): sizing goes on.
    (404, ["web-0", "web-1"], 0.0),
    # Any other failure stops the step before it acts: the count is written first.
    (500, [], 1.0),
])
def test_the_count_is_written_before_the_step_acts(scale_status: int, created: list[str], errors: float) -> None:
    metrics = Metrics()
    kube = _StepKube(scale_status)
    asyncio.run(_reconciler(kube, metrics).reconcile("ns", "web"))
    assert kube.created == created
    assert len(kube.statuses) == (0 if errors else 1)
    assert all(s["selector"] == "thrifty.dev/workload=web" and s["replicas"] == 2 for s in kube.statuses)
    assert value(metrics, "thrifty_reconcile_errors_total", kind="sizing") == errors


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
