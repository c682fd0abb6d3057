"""Feeds a :class:`~thrifty.view.ClusterView` from the API: LIST then WATCH for nodes, pods and
RLWorkloads, and node and pod usage from metrics.k8s.io once per ``metrics_refresh_seconds``.

A watch that the server ends (its timeout) resumes from the last resourceVersion seen; one that
breaks, or whose resourceVersion is too old (410 Gone), starts again from a fresh LIST, as
client-go's reflector does. :attr:`Informer.synced` is set once all three kinds were listed.

A pod of Thrifty's scheduler seen waiting and then with a node is reported once to ``on_bound``
(the extender explains its placement from there). A pod bound while a watch was broken is not
reported: the LIST after it shows it bound already.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from thrifty.adapter import Kube, KubeError, MetricsSourceError
from thrifty.metrics import PendingPods
from thrifty.observe import (
    GROUP,
    PLURAL,
    VERSION,
    container_usage,
    needs_placement,
    node_usage,
    object_key,
    parse_time,
    parse_workload,
)
from thrifty.view import ADDED, DELETED, ClusterView

logger = logging.getLogger("thrifty.informer")


@dataclass(frozen=True, kw_only=True)
class InformerConfig:
    """How the view is kept current."""

    metrics_refresh_seconds: float = 15.0
    """Seconds between two reads of metrics.k8s.io (metrics-server's default resolution is 15 s
    in the test cluster, 60 s upstream: reading faster returns the same sample)."""
    retry_seconds: float = 1.0
    """Wait before a broken LIST or WATCH is tried again."""

    def __post_init__(self) -> None:
        for name in ("metrics_refresh_seconds", "retry_seconds"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"InformerConfig.{name}: must be finite and > 0, got {value!r}")


class Informer:
    """The watches behind one view; :meth:`run` until cancelled."""

    def __init__(self, kube: Kube, view: ClusterView, config: InformerConfig | None = None,
                 namespace: str | None = None, pending: PendingPods | None = None,
                 on_bound: Callable[[Mapping], None] | None = None,
                 count_event: Callable[[str], None] | None = None) -> None:
        self.kube = kube
        self.view = view
        self.config = config or InformerConfig()
        self.namespace = namespace
        self.pending = pending
        """Pods waiting for Thrifty's scheduler (``thrifty_pods_pending``), kept from the same pod
        events, at no API cost."""
        self.count_event = count_event
        """Called with the kind (nodes, pods, rlworkloads) of every watch event."""
        self.on_bound = on_bound
        """Called with each pod of Thrifty's scheduler the watch shows bound (see the module docstring)."""
        self._unbound: set[str] = set()
        """Keys of the pods of Thrifty's scheduler that wait for a node."""
        self.synced = asyncio.Event()
        workloads = (f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}" if namespace
                     else f"/apis/{GROUP}/{VERSION}/{PLURAL}")
        # Pods and nodes of the whole cluster whatever namespace is watched: their requests fill
        # the nodes.
        self._kinds: dict[str, tuple[str, Callable[[list], None], Callable[[str, Mapping], None]]] = {
            "nodes": ("/api/v1/nodes", view.replace_nodes, view.apply_node),
            "pods": ("/api/v1/pods", self._replace_pods, self._apply_pod),
            "rlworkloads": (workloads, self._replace_workloads, self._apply_workload),
        }
        self._listed: set[str] = set()

    async def run(self) -> None:
        await asyncio.gather(*(self._reflect(kind) for kind in self._kinds), self._refresh_metrics())

    def _waiting(self, pod: Mapping) -> bool:
        return needs_placement(pod) and self.namespace in (None, pod.get("metadata", {}).get("namespace"))

    def _apply_pod(self, event_type: str, pod: Mapping) -> None:
        self.view.apply_pod(event_type, pod)
        key = object_key(pod)
        waiting = event_type != DELETED and self._waiting(pod)
        if waiting:
            self._unbound.add(key)
        elif key in self._unbound:
            self._unbound.discard(key)
            if event_type != DELETED and pod.get("spec", {}).get("nodeName") and self.on_bound is not None:
                self.on_bound(pod)
        if self.pending is not None:
            if waiting:
                self.pending.waiting(key, parse_time(pod["metadata"].get("creationTimestamp")))
            else:
                self.pending.done(key)

    def _replace_pods(self, pods: list) -> None:
        self.view.replace_pods(pods)
        self._unbound = {object_key(p) for p in pods if self._waiting(p)}
        if self.pending is not None:
            self.pending.replace({object_key(p): parse_time(p["metadata"].get("creationTimestamp"))
                                  for p in pods if self._waiting(p)})

    def _replace_workloads(self, objects: list) -> None:
        for key in list(self.view.workloads):
            self.view.workloads.pop(key)
        for obj in objects:
            self._apply_workload(ADDED, obj)

    def _apply_workload(self, event_type: str, obj: Mapping) -> None:
        try:
            workload = parse_workload(obj)
        except ValueError as error:  # the CRD's schema should prevent it; the sizing step says so
            logger.debug("ignoring RLWorkload %s: %s", object_key(obj), error)
            return
        self.view.apply_workload(event_type, workload)

    async def _reflect(self, kind: str) -> None:
        path, replace, apply = self._kinds[kind]
        while True:
            try:
                listing = await self.kube.list_raw(path)
                replace(listing["items"])
                version = listing["metadata"]["resourceVersion"]
                self._listed.add(kind)
                if self._listed == set(self._kinds):
                    self.synced.set()
                while True:
                    version = await self._follow(kind, path, version, apply)
            except (KubeError, KeyError) as error:
                logger.warning("%s watch broke, listing again: %s", kind, error)
                await asyncio.sleep(self.config.retry_seconds)

    async def _follow(self, kind: str, path: str, version: str, apply: Callable[[str, Mapping], None]) -> str:
        """One watch until the server ends it; returns the resourceVersion to resume from."""
        async for event in self.kube.watch(path, version):
            event_type, obj = event.get("type"), event.get("object") or {}
            if event_type == "ERROR":
                raise KubeError(f"watch {kind}", int(obj.get("code") or 0), obj.get("message", ""))
            version = obj.get("metadata", {}).get("resourceVersion", version)
            if self.count_event is not None:
                self.count_event(kind)
            if event_type in (ADDED, "MODIFIED", DELETED):
                apply(event_type, obj)
        return version

    async def _refresh_metrics(self) -> None:
        while True:
            try:
                nodes, pods = await asyncio.gather(self.kube.node_metrics(), self.kube.pod_metrics())
                self.view.node_usage, self.view.container_usage = node_usage(nodes), container_usage(pods)
            except MetricsSourceError as error:
                # Placement then sees requests only (usage unknown), as the features define it.
                logger.debug("usage for placement unknown: %s", error)
                self.view.node_usage, self.view.container_usage = {}, {}
            self.view.expire_assumed()
            await asyncio.sleep(self.config.metrics_refresh_seconds)
