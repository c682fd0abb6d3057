"""The one module that talks to Kubernetes (and to Prometheus): all of the operator's I/O.

Everything else is pure: :mod:`thrifty.observe` reads the objects fetched here, the core decides,
:mod:`thrifty.record` words the outcome, and the handlers call these methods to act.

Client choice: ``kubernetes_asyncio``. kopf runs the handlers on one asyncio loop, so an async
client keeps every call on that loop without a thread pool, and it loads kubeconfig and
in-cluster credentials (client certificates, tokens, exec plugins with refresh) exactly as
kubectl does. Its generated methods are bypassed for :meth:`ApiClient.call_api` on plain paths:
objects stay the API's JSON dicts (what :mod:`thrifty.observe` reads, no model round trip), and
subresources whose replies the generated models cannot parse (``binding`` answers with a Status)
work the same way as any other call. The same credentials are handed to kopf through
:meth:`Kube.connection_info`, so kopf's watches and our calls use one identity.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import socket
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import aiohttp
import kopf
from kubernetes_asyncio.client import ApiClient, Configuration
from kubernetes_asyncio.config import load_incluster_config, load_kube_config

from thrifty.actions import ContainerResources
from thrifty.metrics import Metrics
from thrifty.observe import GROUP, KIND, PLURAL, VERSION, WORKLOAD_LABEL, WorkloadSpec, resource_quantities

if TYPE_CHECKING:
    from thrifty.record import EventText

logger = logging.getLogger("thrifty")

REQUEST_TIMEOUT_SECONDS = 30.0
"""Longest a single API call may take before the step gives up on it."""
WATCH_TIMEOUT_SECONDS = 300
"""A watch's ``timeoutSeconds``: the server ends it then and the informer resumes it."""
REPORTING_COMPONENT = "thrifty.dev/operator"
"""``reportingComponent`` of Thrifty's Events (``source.component`` is ``thrifty``)."""
HTTP_METHODS = {"get": "GET", "list": "GET", "watch": "GET", "create": "POST", "update": "PUT", "patch": "PATCH",
                "delete": "DELETE"}
"""The HTTP method of each Kubernetes verb Thrifty uses."""
WRITE_VERBS = frozenset({"create", "update", "patch", "delete"})
"""Verbs that change the cluster: refused by the fence unless this replica leads."""
ELECTION_RESOURCE = "leases"
"""The one resource written whoever leads: the election's own Lease."""


class KubeError(Exception):
    """An API call failed; ``status`` is the HTTP status (0 when no answer came)."""

    def __init__(self, operation: str, status: int, message: str,
                 causes: Sequence[tuple[str, str]] = ()) -> None:
        super().__init__(f"{operation}: HTTP {status}: {message}" if status else f"{operation}: {message}")
        self.operation = operation
        self.status = status
        self.message = message
        self.causes = tuple(causes)
        """``(reason, message)`` of each entry of the Status's ``details.causes``."""


DISRUPTION_BUDGET_CAUSE = "DisruptionBudget"
"""``details.causes[].reason`` of an eviction refused because a PodDisruptionBudget allows no
disruption now (HTTP 429); the cause's message names the budget."""


class EvictionBlocked(KubeError):
    """A PodDisruptionBudget refused an eviction (HTTP 429 with a ``DisruptionBudget`` cause)."""

    @property
    def budgets(self) -> str:
        """What the API said about the budgets, e.g. ``The disruption budget web needs 2 healthy
        pods and has 2 currently``."""
        return "; ".join(m for r, m in self.causes if r == DISRUPTION_BUDGET_CAUSE) or self.message


class Fenced(KubeError):
    """A write refused before it was sent: this replica is not the leader
    (:class:`thrifty.leadership.Leadership`)."""

    def __init__(self, operation: str) -> None:
        super().__init__(operation, 0, "refused: this replica is not the leader")


class MetricsSourceError(Exception):
    """A metrics source (metrics.k8s.io or Prometheus) did not answer usefully."""


def pod_manifest(workload: WorkloadSpec, *, name: str, scheduler_name: str | None,
                 resources: Mapping[str, ContainerResources]) -> dict:
    """A pod of ``workload`` from its template.

    Thrifty's label and a controller ownerReference mark the pod as the workload's (garbage
    collected with it, never adopted by anyone else). ``resources`` overrides the requests and
    limits of the named containers (the workload's current size); ``scheduler_name`` None keeps
    the template's own (kube-scheduler's when it sets none).
    """
    template = workload.template
    metadata = dict(template.get("metadata") or {})
    spec = json.loads(json.dumps(template.get("spec") or {}))  # a deep copy: the template is shared
    labels = {**(metadata.get("labels") or {}), WORKLOAD_LABEL: workload.name}
    if scheduler_name:
        spec["schedulerName"] = scheduler_name
    for container in spec.get("containers", []):
        size = resources.get(container["name"])
        if size is None:
            continue
        requests, limits = resource_quantities(size)
        container["resources"] = {**(container.get("resources") or {}), "requests": requests}
        if limits:
            container["resources"]["limits"] = limits
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": workload.namespace,
            "labels": labels,
            "annotations": dict(metadata.get("annotations") or {}),
            "ownerReferences": [{
                "apiVersion": f"{GROUP}/{VERSION}", "kind": KIND, "name": workload.name, "uid": workload.uid,
                "controller": True, "blockOwnerDeletion": True,
            }],
        },
        "spec": spec,
    }


class Kube:
    """Kubernetes API calls, returning the API's JSON as dicts."""

    def __init__(self, client: ApiClient, namespace: str | None, metrics: Metrics,
                 user_agent: str | None = None) -> None:
        self._client = client
        self._namespace = namespace
        self._metrics = metrics
        self._instance = socket.gethostname()
        self.user_agent = user_agent
        """``User-Agent`` of every request (this client's and kopf's): tells the replicas apart in
        the API server's audit log. None: the client library's."""
        if user_agent:
            client.user_agent = user_agent
        self.fence: Callable[[], bool] | None = None
        """Whether writes are allowed now (the leadership token); None: always. Checked before
        every create, update, patch and delete except of the election's Lease."""

    @classmethod
    async def connect(cls, kubeconfig: str | None, namespace: str | None, metrics: Metrics,
                      user_agent: str | None = None) -> Kube:
        """Credentials from ``kubeconfig``, else in-cluster (service account), else
        ``$KUBECONFIG`` or ``~/.kube/config``. ``namespace`` None watches every namespace."""
        configuration = Configuration()
        if kubeconfig:
            await load_kube_config(config_file=kubeconfig, client_configuration=configuration, persist_config=False)
        elif "KUBERNETES_SERVICE_HOST" in os.environ:
            load_incluster_config(client_configuration=configuration)
        else:
            await load_kube_config(client_configuration=configuration, persist_config=False)
        return cls(ApiClient(configuration), namespace, metrics, user_agent)

    async def close(self) -> None:
        await self._client.close()

    def connection_info(self) -> kopf.ConnectionInfo:
        """The same credentials, for kopf's own watches and patches."""
        configuration = self._client.configuration
        scheme, _, token = (configuration.api_key.get("BearerToken") or "").partition(" ")
        return _ConnectionInfo(
            user_agent=f"{self.user_agent} kopf" if self.user_agent else None,
            server=str(configuration.host),
            ca_path=configuration.ssl_ca_cert or None,
            insecure=not configuration.verify_ssl,
            certificate_path=configuration.cert_file or None,
            private_key_path=configuration.key_file or None,
            scheme=scheme or None,
            token=token or None,
            default_namespace=self._namespace,
        )

    async def _call(self, verb: str, resource: str, operation: str, path: str, *, body: Any = None,
                    query: Sequence[tuple[str, str]] | None = None,
                    content_type: str = "application/json",
                    timeout_seconds: float = REQUEST_TIMEOUT_SECONDS) -> dict:
        """One API call, counted in ``thrifty_kube_api_requests_total`` by ``verb`` (a key of
        :data:`HTTP_METHODS`), ``resource`` (``pods``, ``pods/binding``, ...) and outcome;
        ``operation`` words it for errors. A write while this replica does not lead is not sent:
        :class:`Fenced` (counted in ``thrifty_fenced_writes_total``)."""
        if verb in WRITE_VERBS and resource != ELECTION_RESOURCE and self.fence is not None and not self.fence():
            self._metrics.count_fenced_write(resource)
            raise Fenced(operation)
        try:
            response = await self._client.call_api(
                path, HTTP_METHODS[verb], query_params=list(query or []), body=body,
                header_params={"Content-Type": content_type, "Accept": "application/json"},
                auth_settings=["BearerToken"], _preload_content=False, _request_timeout=timeout_seconds,
            )
        except (aiohttp.ClientError, TimeoutError, OSError) as error:
            self._metrics.count_api_request(verb, resource, 0)
            raise KubeError(operation, 0, f"{type(error).__name__}: {error}") from error
        try:
            data = await response.read()
        finally:
            response.release()
        self._metrics.count_api_request(verb, resource, response.status)
        if not 200 <= response.status < 300:
            causes: list[tuple[str, str]] = []
            try:
                reply = json.loads(data)
                message = reply.get("message", "")
                causes = [(str(c.get("reason", "")), str(c.get("message", "")))
                          for c in (reply.get("details") or {}).get("causes") or []]
            except (ValueError, AttributeError):
                message = data.decode(errors="replace")[:500]
            if response.status == 429 and any(r == DISRUPTION_BUDGET_CAUSE for r, _ in causes):
                raise EvictionBlocked(operation, response.status, message, causes)
            raise KubeError(operation, response.status, message or response.reason or "", causes)
        return json.loads(data) if data else {}

    def _scope(self, group_path: str, plural: str) -> str:
        """Path of a collection in the watched namespace, or across all namespaces."""
        if self._namespace:
            return f"{group_path}/namespaces/{quote(self._namespace)}/{plural}"
        return f"{group_path}/{plural}"

    # --- Reads -----------------------------------------------------------------------------

    async def list_nodes(self) -> list[dict]:
        return (await self._call("list", "nodes", "list nodes", "/api/v1/nodes"))["items"]

    async def list_pods(self) -> list[dict]:
        """Every pod of the cluster, whatever namespace is watched: their requests fill the nodes,
        and a capacity check that missed some would overfill them."""
        return (await self._call("list", "pods", "list pods", "/api/v1/pods"))["items"]

    async def list_workloads(self) -> list[dict]:
        path = self._scope(f"/apis/{GROUP}/{VERSION}", PLURAL)
        return (await self._call("list", PLURAL, "list rlworkloads", path))["items"]

    async def list_raw(self, path: str) -> dict:
        """A LIST of ``path`` as the API answers it (``items`` and ``metadata.resourceVersion``);
        counted under the collection's name, the path's last segment."""
        return await self._call("list", path.rstrip("/").rsplit("/", 1)[-1], f"list {path}", path)

    async def get_workload(self, namespace: str, name: str) -> dict:
        return await self._call("get", PLURAL, f"get rlworkload {namespace}/{name}",
                                f"/apis/{GROUP}/{VERSION}/namespaces/{quote(namespace)}/{PLURAL}/{quote(name)}")

    async def watch(self, path: str, resource_version: str,
                    timeout_seconds: int = WATCH_TIMEOUT_SECONDS) -> AsyncIterator[dict]:
        """The watch events of ``path`` from ``resource_version`` on, as the API's dicts
        (``type``, ``object``), until the server ends the watch after ``timeout_seconds``.
        Raises :class:`KubeError` when the watch cannot start or breaks."""
        query = [("watch", "1"), ("resourceVersion", resource_version), ("allowWatchBookmarks", "true"),
                 ("timeoutSeconds", str(timeout_seconds))]
        resource = path.rstrip("/").rsplit("/", 1)[-1]
        try:
            response = await self._client.call_api(
                path, "GET", query_params=query, header_params={"Accept": "application/json"},
                auth_settings=["BearerToken"], _preload_content=False, _request_timeout=timeout_seconds + 30)
        except (aiohttp.ClientError, TimeoutError, OSError) as error:
            self._metrics.count_api_request("watch", resource, 0)
            raise KubeError(f"watch {path}", 0, f"{type(error).__name__}: {error}") from error
        self._metrics.count_api_request("watch", resource, response.status)
        try:
            if not 200 <= response.status < 300:
                raise KubeError(f"watch {path}", response.status, (await response.read()).decode(errors="replace"))
            async for line in response.content:
                if line.strip():
                    yield json.loads(line)
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as error:
            raise KubeError(f"watch {path}", 0, f"{type(error).__name__}: {error}") from error
        finally:
            response.release()

    async def node_metrics(self) -> list[dict]:
        """NodeMetrics from metrics.k8s.io; raises :class:`MetricsSourceError` when it is down."""
        return await self._resource_metrics("nodes", "/apis/metrics.k8s.io/v1beta1/nodes")

    async def pod_metrics(self) -> list[dict]:
        """PodMetrics of every pod (each pod's usage share sets its part of its node's power)."""
        return await self._resource_metrics("pods", "/apis/metrics.k8s.io/v1beta1/pods")

    async def _resource_metrics(self, what: str, path: str) -> list[dict]:
        try:
            return (await self._call("list", f"{what}.metrics.k8s.io", f"metrics.k8s.io {what}", path))["items"]
        except KubeError as error:
            raise MetricsSourceError(str(error)) from error

    # --- Actions -----------------------------------------------------------------------------

    async def create_pod(self, manifest: Mapping) -> dict:
        namespace = manifest["metadata"]["namespace"]
        return await self._call("create", "pods", f"create pod {namespace}/{manifest['metadata']['name']}",
                                f"/api/v1/namespaces/{quote(namespace)}/pods", body=manifest)

    async def delete_pod(self, namespace: str, name: str, uid: str) -> None:
        """Delete the pod if it still is the one decided on (UID precondition); gone is fine."""
        try:
            await self._call("delete", "pods", f"delete pod {namespace}/{name}",
                             f"/api/v1/namespaces/{quote(namespace)}/pods/{quote(name)}",
                             body={"apiVersion": "v1", "kind": "DeleteOptions", "preconditions": {"uid": uid}})
        except KubeError as error:
            if error.status != 404:
                raise

    async def evict_pod(self, namespace: str, name: str, uid: str) -> None:
        """Remove a running pod through its ``eviction`` subresource (policy/v1), so that the
        PodDisruptionBudgets covering it hold; only if it still is the pod decided on (UID
        precondition); gone is fine. Raises :class:`EvictionBlocked` when a budget refuses it
        (the API's 429): the caller retries on a later step, never in a loop."""
        try:
            await self._call("create", "pods/eviction", f"evict pod {namespace}/{name}",
                             f"/api/v1/namespaces/{quote(namespace)}/pods/{quote(name)}/eviction",
                             body={"apiVersion": "policy/v1", "kind": "Eviction",
                                   "metadata": {"name": name, "namespace": namespace},
                                   "deleteOptions": {"preconditions": {"uid": uid}}})
        except KubeError as error:
            if error.status != 404:
                raise

    async def resize_pod(self, namespace: str, name: str, sizes: Mapping[str, ContainerResources]) -> dict:
        """Resize containers in place through the pod's ``resize`` subresource (no restart).

        Requests and limits are sent together, so the pod's QoS class, which the API server
        refuses to let a resize change, stays as it is.
        """
        containers = []
        for container, size in sizes.items():
            requests, limits = resource_quantities(size)
            resources = {"requests": requests, **({"limits": limits} if limits else {})}
            containers.append({"name": container, "resources": resources})
        return await self._call("patch", "pods/resize", f"resize pod {namespace}/{name}",
                                f"/api/v1/namespaces/{quote(namespace)}/pods/{quote(name)}/resize",
                                body={"spec": {"containers": containers}},
                                content_type="application/strategic-merge-patch+json")

    async def scale_workload(self, namespace: str, name: str, replicas: int) -> None:
        """Set the workload's replica count through its ``scale`` subresource (what ``kubectl
        scale`` and an HPA write: ``spec.replicas.desired``)."""
        await self._call("patch", f"{PLURAL}/scale", f"scale rlworkload {namespace}/{name} to {replicas}",
                         f"/apis/{GROUP}/{VERSION}/namespaces/{quote(namespace)}/{PLURAL}/{quote(name)}/scale",
                         body={"spec": {"replicas": replicas}}, content_type="application/merge-patch+json")

    async def patch_workload_status(self, namespace: str, name: str, status: Mapping) -> None:
        await self._call("patch", f"{PLURAL}/status", f"patch status of rlworkload {namespace}/{name}",
                         f"/apis/{GROUP}/{VERSION}/namespaces/{quote(namespace)}/{PLURAL}/{quote(name)}/status",
                         body={"status": status}, content_type="application/merge-patch+json")

    async def post_event(self, involved: Mapping, *, type: str, reason: str, message: str, action: str,
                         time: str) -> None:
        """A core/v1 Event on ``involved`` (an API object), shown by ``kubectl describe``."""
        meta = involved["metadata"]
        namespace = meta.get("namespace") or "default"
        await self._call("create", "events", f"post event {reason} on {namespace}/{meta['name']}",
                         f"/api/v1/namespaces/{quote(namespace)}/events", body={
                             "apiVersion": "v1", "kind": "Event",
                             "metadata": {"generateName": f"{meta['name']}.", "namespace": namespace},
                             "involvedObject": {"apiVersion": involved.get("apiVersion", "v1"),
                                                "kind": involved.get("kind", "Pod"), "name": meta["name"],
                                                "namespace": namespace, "uid": meta.get("uid")},
                             "type": type, "reason": reason, "message": message, "action": action,
                             "source": {"component": "thrifty"},
                             "reportingComponent": REPORTING_COMPONENT, "reportingInstance": self._instance,
                             "firstTimestamp": time, "lastTimestamp": time, "count": 1,
                         })

    # --- The election's Lease (thrifty.leadership.LeaseAPI) ------------------------------------

    def _lease_path(self, namespace: str, name: str | None = None) -> str:
        path = f"/apis/coordination.k8s.io/v1/namespaces/{quote(namespace)}/leases"
        return f"{path}/{quote(name)}" if name else path

    async def _lease_call(self, verb: str, operation: str, path: str, body: Mapping | None,
                          timeout_seconds: float) -> dict:
        from thrifty.leadership import LeaseConflict, LeaseUnavailable

        try:
            return await self._call(verb, ELECTION_RESOURCE, operation, path, body=body,
                                    timeout_seconds=timeout_seconds)
        except KubeError as error:
            if error.status == 409:
                raise LeaseConflict(str(error)) from error
            raise LeaseUnavailable(str(error)) from error

    async def get_lease(self, namespace: str, name: str, timeout_seconds: float) -> dict | None:
        """The Lease, or None if it does not exist."""
        from thrifty.leadership import LeaseUnavailable

        try:
            return await self._lease_call("get", f"get lease {namespace}/{name}", self._lease_path(namespace, name),
                                          None, timeout_seconds)
        except LeaseUnavailable as error:
            cause = error.__cause__
            if isinstance(cause, KubeError) and cause.status == 404:
                return None
            raise

    async def create_lease(self, namespace: str, body: Mapping, timeout_seconds: float) -> dict:
        return await self._lease_call("create", f"create lease {namespace}/{body['metadata']['name']}",
                                      self._lease_path(namespace), body, timeout_seconds)

    async def replace_lease(self, namespace: str, name: str, body: Mapping, timeout_seconds: float) -> dict:
        """PUT the Lease; 409 (:class:`~thrifty.leadership.LeaseConflict`) unless its
        ``metadata.resourceVersion`` is still the one in ``body``."""
        return await self._lease_call("update", f"update lease {namespace}/{name}", self._lease_path(namespace, name),
                                      body, timeout_seconds)


@dataclasses.dataclass(frozen=True)
class _ConnectionInfo(kopf.ConnectionInfo):
    """kopf's credentials with the operator's ``User-Agent`` (kopf sets its own only when the
    headers carry none), so kopf's writes are told apart in the audit log too."""

    user_agent: str | None = None

    def as_http_headers(self) -> dict[str, str]:
        headers = super().as_http_headers()
        return {**headers, "User-Agent": self.user_agent} if self.user_agent else headers


async def post_explanation(kube: Kube, involved: Mapping, event: EventText, action: str, time: str) -> None:
    """Post an Event; failing to explain must not undo or stop what was decided, so an error is
    logged, not raised."""
    try:
        await kube.post_event(involved, type=event.type, reason=event.reason, message=event.message,
                              action=action, time=time)
    except KubeError as error:
        logger.warning("could not post event %s: %s", event.reason, error)


class Prometheus:
    """Instant PromQL queries (``GET /api/v1/query``)."""

    def __init__(self, url: str, timeout_seconds: float) -> None:
        self._url = url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def query_seconds(self, query: str) -> float:
        """The query's value (NaN when it returns no sample); the largest if it returns several,
        since a p95 latency is judged by its worst series. Raises :class:`MetricsSourceError`."""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        try:
            async with self._session.get(f"{self._url}/api/v1/query", params={"query": query}) as response:
                payload = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as error:
            raise MetricsSourceError(f"prometheus {self._url}: {type(error).__name__}: {error}") from error
        if response.status != 200 or payload.get("status") != "success":
            raise MetricsSourceError(f"prometheus {self._url}: HTTP {response.status}: "
                                     f"{payload.get('error', 'query failed')}")
        data = payload.get("data") or {}
        result = data.get("result") or []
        if data.get("resultType") == "scalar":
            values = [result[1]] if result else []
        else:
            values = [series["value"][1] for series in result if "value" in series]
        numbers = [float(v) for v in values if not math.isnan(float(v))]
        return max(numbers) if numbers else math.nan

