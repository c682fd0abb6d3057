"""Observe: Kubernetes objects, as the API returns them (JSON dicts), into a ClusterSnapshot.

This is the first box of the reconcile data flow. It is pure: :mod:`thrifty.adapter` fetches the
objects, this module only reads them, so every parsing rule here is unit-tested on plain dicts.

What goes into a snapshot:

* every node (unschedulable ones too: their pods still draw power);
* every pod bound to a known node and not finished (Succeeded/Failed pods hold no resources), as
  the scheduler counts requests;
* Pending pods that Thrifty must place (``schedulerName: thrifty``) or that belong to an
  RLWorkload (they count as its replicas);
* every RLWorkload, with its pods counted by label *and* controller ownerReference, so a stale
  pod that merely carries the label is never taken for one of its replicas.

A pod being deleted still holds its node's resources until it is gone, so it stays bound in the
snapshot, but it no longer counts as a replica of its workload: the workload is short of it
already, as a ReplicaSet sees it.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

import numpy as np

from thrifty.actions import ContainerResources
from thrifty.energy import power_class_for_cpu
from thrifty.history import ContainerKey, UsageHistory
from thrifty.snapshot import (
    NO_WORKLOAD,
    UNBOUND,
    ClusterSnapshot,
    ContainerTable,
    DependencyTable,
    NodeTable,
    PodTable,
    WorkloadTable,
    empty_dependencies,
)

GROUP = "thrifty.dev"
VERSION = "v1alpha1"
PLURAL = "rlworkloads"
KIND = "RLWorkload"
SCHEDULER_NAME = "thrifty"
"""``spec.schedulerName`` of the pods Thrifty places."""
WORKLOAD_LABEL = "thrifty.dev/workload"
"""Label carrying the RLWorkload's name on every pod Thrifty creates for it."""
POWER_CLASS_LABEL = "thrifty.dev/power-class"
STANDBY_LABEL = "thrifty.dev/standby"
"""Node label: ``"true"`` marks a node for standby; it draws standby power while empty."""
AUTO, RECOMMEND = "Auto", "Recommend"


# --- Quantities -------------------------------------------------------------------------------

class QuantityError(ValueError):
    """A string is not a Kubernetes quantity."""


_QUANTITY = re.compile(r"^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))([KMGTPE]i|[numkMGTPE]|[eE][+-]?[0-9]+)?$")
_SUFFIX = {
    "": Decimal(1), "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"),
    "k": Decimal("1e3"), "M": Decimal("1e6"), "G": Decimal("1e9"), "T": Decimal("1e12"),
    "P": Decimal("1e15"), "E": Decimal("1e18"),
    "Ki": Decimal(2**10), "Mi": Decimal(2**20), "Gi": Decimal(2**30), "Ti": Decimal(2**40),
    "Pi": Decimal(2**50), "Ei": Decimal(2**60),
}


def _decimal(value: str | int | float) -> Decimal:
    if isinstance(value, bool):
        raise QuantityError(f"not a quantity: {value!r}")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise QuantityError(f"not a quantity: {value!r}")
        return Decimal(str(value))
    match = _QUANTITY.match(str(value).strip())
    if not match:
        raise QuantityError(f"not a quantity: {value!r}")
    number, suffix = match.group(1), match.group(2) or ""
    try:
        if suffix in _SUFFIX:
            return Decimal(number) * _SUFFIX[suffix]
        return Decimal(number) * Decimal(10) ** int(suffix[1:])  # an exponent, e.g. 2e3
    except (InvalidOperation, OverflowError) as error:
        raise QuantityError(f"not a quantity: {value!r} ({error})") from error


def parse_quantity(value: str | int | float) -> float:
    """A Kubernetes quantity (``250m``, ``1Gi``, ``1.5``, ``2e3``, or a JSON number) in base units.

    Decimal arithmetic keeps ``0.1`` and ``100m`` identical, as the API server's own parser does.
    """
    return float(_decimal(value))


def cpu_millicores(value: str | int | float) -> float:
    """A CPU quantity in millicores: ``"250m"`` is 250, ``"1.5"`` is 1500."""
    return float(_decimal(value) * 1000)


def memory_bytes(value: str | int | float) -> float:
    """A memory quantity in bytes: ``"1Gi"`` is 1073741824, ``"1G"`` is 1e9."""
    return parse_quantity(value)


def format_cpu(millicores: float) -> str:
    """Millicores as a quantity: whole cores as ``"2"``, otherwise ``"250m"`` (1m is the API's
    precision for CPU)."""
    value = int(round(millicores))
    return str(value // 1000) if value % 1000 == 0 else f"{value}m"


def format_memory(value_bytes: float) -> str:
    """Bytes as a quantity, in the largest binary unit that is exact (``"128Mi"``), else bytes."""
    value = int(round(value_bytes))
    for suffix, size in (("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if value and value % size == 0:
            return f"{value // size}{suffix}"
    return str(value)


def resource_quantities(size: ContainerResources) -> tuple[dict[str, str], dict[str, str]]:
    """``(requests, limits)`` of a container as the API's quantity maps; an infinite limit is no
    limit and is left out."""
    requests = {"cpu": format_cpu(size.cpu_request_millicores), "memory": format_memory(size.memory_request_bytes)}
    limits = {}
    if math.isfinite(size.cpu_limit_millicores):
        limits["cpu"] = format_cpu(size.cpu_limit_millicores)
    if math.isfinite(size.memory_limit_bytes):
        limits["memory"] = format_memory(size.memory_limit_bytes)
    return requests, limits


# --- Small readers of Kubernetes objects ------------------------------------------------------

def object_key(obj: Mapping) -> str:
    """``namespace/name`` of a namespaced object."""
    meta = obj.get("metadata", {})
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


def parse_time(value: str | None) -> float:
    """An RFC 3339 timestamp as Unix seconds (NaN when absent)."""
    if not value:
        return math.nan
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def is_finished(pod: Mapping) -> bool:
    """Succeeded or Failed: the pod holds no resources any more."""
    return pod.get("status", {}).get("phase") in ("Succeeded", "Failed")


def pod_uid(pod: Mapping) -> str:
    """The pod's UID: what the usage history is keyed by, so that a pod re-created under the
    same name starts with an empty history."""
    return str(pod.get("metadata", {}).get("uid") or "")


def is_terminating(pod: Mapping) -> bool:
    return bool(pod.get("metadata", {}).get("deletionTimestamp"))


def is_ready(pod: Mapping) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in pod.get("status", {}).get("conditions", []))


def needs_placement(pod: Mapping) -> bool:
    """A live pod that waits for Thrifty to bind it."""
    spec = pod.get("spec", {})
    return (spec.get("schedulerName") == SCHEDULER_NAME and not spec.get("nodeName")
            and not is_finished(pod) and not is_terminating(pod))


def controller_uid(obj: Mapping) -> str | None:
    """UID of the object's controller (the ownerReference with ``controller: true``)."""
    for ref in obj.get("metadata", {}).get("ownerReferences", []) or []:
        if ref.get("controller"):
            return ref.get("uid")
    return None


def container_resources(container: Mapping) -> ContainerResources:
    """Requests (0 when absent) and limits (inf when absent) of one container spec."""
    resources = container.get("resources") or {}
    requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
    return ContainerResources(
        cpu_request_millicores=cpu_millicores(requests["cpu"]) if "cpu" in requests else 0.0,
        cpu_limit_millicores=cpu_millicores(limits["cpu"]) if "cpu" in limits else math.inf,
        memory_request_bytes=memory_bytes(requests["memory"]) if "memory" in requests else 0.0,
        memory_limit_bytes=memory_bytes(limits["memory"]) if "memory" in limits else math.inf,
    )


def pod_requests(pod: Mapping) -> tuple[float, float]:
    """CPU millicores and memory bytes the scheduler reserves for the pod.

    As kube-scheduler computes it: app containers and restartable init containers (sidecars) run
    together and add up; an ordinary init container runs alone (beside the sidecars), so the pod
    needs the larger of the two; the runtime class's overhead comes on top.
    """
    spec = pod.get("spec", {})
    running = [container_resources(c) for c in spec.get("containers", [])]
    sidecars = [container_resources(c) for c in spec.get("initContainers", []) or []
                if c.get("restartPolicy") == "Always"]
    inits = [container_resources(c) for c in spec.get("initContainers", []) or []
             if c.get("restartPolicy") != "Always"]
    sidecar_cpu = sum(r.cpu_request_millicores for r in sidecars)
    sidecar_memory = sum(r.memory_request_bytes for r in sidecars)
    cpu = sum(r.cpu_request_millicores for r in running) + sidecar_cpu
    memory = sum(r.memory_request_bytes for r in running) + sidecar_memory
    for init in inits:
        cpu = max(cpu, init.cpu_request_millicores + sidecar_cpu)
        memory = max(memory, init.memory_request_bytes + sidecar_memory)
    overhead = spec.get("overhead") or {}
    cpu += cpu_millicores(overhead["cpu"]) if "cpu" in overhead else 0.0
    memory += memory_bytes(overhead["memory"]) if "memory" in overhead else 0.0
    return cpu, memory


# --- RLWorkload --------------------------------------------------------------------------------

@dataclass(frozen=True)
class ContainerBounds:
    """Vertical bounds of one container from ``spec.containers``; NaN where the spec names none
    (that resource is then not resized)."""

    cpu_min_millicores: float
    cpu_max_millicores: float
    memory_min_bytes: float
    memory_max_bytes: float


@dataclass(frozen=True)
class WorkloadSpec:
    """What Thrifty reads from one RLWorkload object."""

    key: str
    """``namespace/name``."""
    namespace: str
    name: str
    uid: str
    generation: int
    template: Mapping
    """``spec.template`` (a PodTemplateSpec)."""
    replicas_min: int
    replicas_max: int
    replicas_initial: int
    """Pods to start with: ``spec.replicas.initial``, else ``min``, at least 1."""
    replicas_desired: int | None
    """``spec.replicas.desired``, the scale subresource's count (None until Thrifty or
    ``kubectl scale`` sets it)."""
    slo_latency_p95_seconds: float
    """``spec.slo.latencyP95Milliseconds`` in seconds; NaN for a workload without ``spec.slo``."""
    latency_query: str | None
    energy_weight: float
    dependencies: tuple[tuple[str, float], ...]
    """``(namespace/name, weight)`` of each dependency."""
    container_bounds: Mapping[str, ContainerBounds]
    """By container name; containers not listed are never resized."""
    mode: str
    """``Auto`` or ``Recommend``."""
    policy_name: str
    status: Mapping
    """The object's current status (empty before Thrifty first wrote it)."""


def _bounds(entry: Mapping) -> ContainerBounds:
    cpu, memory = entry.get("cpu") or {}, entry.get("memory") or {}
    return ContainerBounds(
        cpu_min_millicores=cpu_millicores(cpu["min"]) if cpu else math.nan,
        cpu_max_millicores=cpu_millicores(cpu["max"]) if cpu else math.nan,
        memory_min_bytes=memory_bytes(memory["min"]) if memory else math.nan,
        memory_max_bytes=memory_bytes(memory["max"]) if memory else math.nan,
    )


def parse_workload(obj: Mapping) -> WorkloadSpec:
    """An RLWorkload object as :class:`WorkloadSpec`, with the CRD's defaults for absent fields.

    Raises ``ValueError`` (naming the field) for what the CRD's schema should have refused.
    """
    meta, spec = obj.get("metadata", {}), obj.get("spec", {})
    namespace, name = meta.get("namespace", ""), meta.get("name", "")
    replicas = spec.get("replicas") or {}
    minimum, maximum = int(replicas.get("min", 1)), int(replicas.get("max", 1))
    if not 0 <= minimum <= maximum:
        raise ValueError(f"{namespace}/{name}: spec.replicas: need 0 <= min <= max, got min {minimum}, max {maximum}")
    initial = int(replicas.get("initial", max(minimum, 1)))
    desired = replicas.get("desired")
    if desired is not None and not 0 <= int(desired) <= 1000:
        raise ValueError(f"{namespace}/{name}: spec.replicas.desired: must lie in [0, 1000], got {desired}")
    slo = spec.get("slo")
    latency_ms = math.nan  # no SLO: sizing follows utilisation and usage only
    if slo is not None:
        latency_ms = float(slo.get("latencyP95Milliseconds", math.nan))
        if not latency_ms > 0:
            raise ValueError(f"{namespace}/{name}: spec.slo.latencyP95Milliseconds: must be > 0, got {latency_ms}")
    slo = slo or {}
    policy = spec.get("policy") or {}
    mode = policy.get("mode", RECOMMEND)
    if mode not in (AUTO, RECOMMEND):
        raise ValueError(f"{namespace}/{name}: spec.policy.mode: must be Auto or Recommend, got {mode!r}")
    try:
        bounds = {entry["name"]: _bounds(entry) for entry in spec.get("containers") or []}
    except (KeyError, QuantityError) as error:
        raise ValueError(f"{namespace}/{name}: spec.containers: {error}") from error
    return WorkloadSpec(
        key=f"{namespace}/{name}", namespace=namespace, name=name, uid=meta.get("uid", ""),
        generation=int(meta.get("generation", 0)),
        template=spec.get("template") or {},
        replicas_min=minimum, replicas_max=maximum,
        replicas_initial=int(np.clip(initial, minimum, maximum)),
        replicas_desired=None if desired is None else int(desired),
        slo_latency_p95_seconds=latency_ms / 1000.0,
        latency_query=(slo.get("latencyQuery") or "").strip() or None,
        energy_weight=float((spec.get("objective") or {}).get("energyWeight", 0.5)),
        dependencies=tuple((f"{namespace}/{d['workload']}", float(d.get("weight", 1.0)))
                           for d in spec.get("dependencies") or []),
        container_bounds=bounds,
        mode=mode,
        policy_name=policy.get("name", "default"),
        status=obj.get("status") or {},
    )


def owns(workload: WorkloadSpec, pod: Mapping) -> bool:
    """The pod is one of the workload's: its label names the workload and its controller
    ownerReference is the workload's UID (a same-named, recreated workload gets a new UID)."""
    labels = pod.get("metadata", {}).get("labels") or {}
    return (pod.get("metadata", {}).get("namespace") == workload.namespace
            and labels.get(WORKLOAD_LABEL) == workload.name
            and controller_uid(pod) == workload.uid)


def pod_selector(workload: WorkloadSpec) -> str:
    """The label selector of the workload's pods, as ``status.selector`` (the scale
    subresource's) reports it."""
    return f"{WORKLOAD_LABEL}={workload.name}"


def finished_pods(workload: WorkloadSpec, pods: Sequence[Mapping]) -> list[Mapping]:
    """The workload's pods that ended (Failed, among them those the kubelet evicted, or
    Succeeded) and are not being deleted yet: they hold no resources and serve nothing, so they
    are removed and replaced."""
    return [p for p in pods if owns(workload, p) and is_finished(p) and not is_terminating(p)]


def finished_reason(pod: Mapping) -> str:
    """Why a finished pod ended, for an Event: its phase, and the kubelet's reason and message."""
    status = pod.get("status", {})
    why = status.get("phase", "Unknown")
    if status.get("reason"):
        why += f", reason {status['reason']}"
    if status.get("message"):
        why += f": {status['message']}"
    return why


# --- metrics.k8s.io ----------------------------------------------------------------------------

def node_usage(node_metrics: Sequence[Mapping]) -> dict[str, tuple[float, float]]:
    """``NodeMetrics`` items as ``{node: (cpu millicores, memory bytes)}``."""
    usage = {}
    for item in node_metrics:
        values = item.get("usage") or {}
        usage[item["metadata"]["name"]] = (
            cpu_millicores(values["cpu"]) if "cpu" in values else math.nan,
            memory_bytes(values["memory"]) if "memory" in values else math.nan,
        )
    return usage


def container_usage(pod_metrics: Sequence[Mapping]) -> dict[ContainerKey, tuple[float, float]]:
    """``PodMetrics`` items as ``{(namespace/pod, container): (cpu millicores, memory bytes)}``."""
    usage = {}
    for item in pod_metrics:
        pod = object_key(item)
        for container in item.get("containers") or []:
            values = container.get("usage") or {}
            usage[(pod, container["name"])] = (
                cpu_millicores(values["cpu"]) if "cpu" in values else math.nan,
                memory_bytes(values["memory"]) if "memory" in values else math.nan,
            )
    return usage


def usage_by_uid(pod_metrics: Sequence[Mapping], pods: Sequence[Mapping]) -> dict[ContainerKey, tuple[float, float]]:
    """``PodMetrics`` items as ``{(pod UID, container): (cpu millicores, memory bytes)}``.

    PodMetrics name a pod, not its UID: each is matched to the live pod of that name. A sample
    whose window ended before that pod was created measured an earlier pod of the same name and
    is dropped, so a re-created pod never inherits its predecessor's usage.
    """
    by_key = {object_key(p): p for p in pods}
    usage = {}
    for item in pod_metrics:
        pod = by_key.get(object_key(item))
        if pod is None or not pod_uid(pod):
            continue
        uid = pod_uid(pod)
        if parse_time(item.get("timestamp")) < parse_time(pod["metadata"].get("creationTimestamp")):
            continue
        for (_, container), sample in container_usage([item]).items():
            usage[(uid, container)] = sample
    return usage


# --- The snapshot ------------------------------------------------------------------------------

def node_schedulable(node: Mapping) -> bool:
    ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                for c in node.get("status", {}).get("conditions", []))
    return ready and not node.get("spec", {}).get("unschedulable", False)


def oom_killed(pod: Mapping, container: str) -> float:
    for status in pod.get("status", {}).get("containerStatuses") or []:
        if status.get("name") == container:
            terminated = (status.get("lastState") or {}).get("terminated") or {}
            return 1.0 if terminated.get("reason") == "OOMKilled" else 0.0
    return 0.0


def pinned_bounds(bounds: ContainerBounds | None, current: ContainerResources) -> tuple[float, float, float, float]:
    """Bounds for the core: a resource the spec does not name is pinned to its current value,
    so the safety pipeline can never move it."""
    if bounds is None:
        bounds = ContainerBounds(math.nan, math.nan, math.nan, math.nan)
    cpu_named, memory_named = not math.isnan(bounds.cpu_min_millicores), not math.isnan(bounds.memory_min_bytes)
    return (
        bounds.cpu_min_millicores if cpu_named else current.cpu_request_millicores,
        bounds.cpu_max_millicores if cpu_named else current.cpu_request_millicores,
        bounds.memory_min_bytes if memory_named else current.memory_request_bytes,
        bounds.memory_max_bytes if memory_named else current.memory_request_bytes,
    )


def build_snapshot(
    *,
    time_seconds: float,
    nodes: Sequence[Mapping],
    pods: Sequence[Mapping],
    workloads: Sequence[WorkloadSpec],
    history: UsageHistory,
    node_usage_now: Mapping[str, tuple[float, float]] | None = None,
    container_usage_now: Mapping[ContainerKey, tuple[float, float]] | None = None,
    latency_seconds: Mapping[str, float] | None = None,
    include_pending: Callable[[Mapping], bool] | None = None,
) -> ClusterSnapshot:
    """The cluster as one :class:`ClusterSnapshot`.

    Args:
        time_seconds: Unix time of the observation.
        nodes, pods: the API objects.
        workloads: parsed RLWorkloads (their order is the snapshot's workload order).
        history: usage windows per container (already holding this observation), by pod UID.
        node_usage_now: metrics.k8s.io usage by node; absent means unknown (NaN).
        container_usage_now: metrics.k8s.io usage by ``(pod UID, container)`` (:func:`usage_by_uid`).
        latency_seconds: measured p95 by workload key; absent means unknown.
        include_pending: which unbound pods to include; default: those Thrifty places and those
            of an RLWorkload.
    """
    node_usage_now = node_usage_now or {}
    container_usage_now = container_usage_now or {}
    latency_seconds = latency_seconds or {}
    node_names = tuple(n["metadata"]["name"] for n in nodes)
    node_row = {name: i for i, name in enumerate(node_names)}
    workload_row = {w.key: i for i, w in enumerate(workloads)}
    by_uid = {w.uid: w for w in workloads}

    def belongs_to(pod: Mapping) -> int:
        workload = by_uid.get(controller_uid(pod) or "")
        if workload is None or is_terminating(pod) or not owns(workload, pod):
            return NO_WORKLOAD
        return workload_row[workload.key]

    include_pending = include_pending or (lambda p: needs_placement(p) or belongs_to(p) != NO_WORKLOAD)
    chosen = []
    for pod in pods:
        if is_finished(pod):
            continue
        node = pod.get("spec", {}).get("nodeName")
        if node:
            if node in node_row:  # a pod on a deleted node is garbage collected; it holds nothing
                chosen.append(pod)
        elif not is_terminating(pod) and include_pending(pod):
            chosen.append(pod)
    # Oldest first and stable: the core takes a workload's first container row as its current size.
    chosen.sort(key=lambda p: (parse_time(p["metadata"].get("creationTimestamp")), object_key(p)))

    n_pods = len(chosen)
    pod_names = tuple(object_key(p) for p in chosen)
    pod_workload = np.array([belongs_to(p) for p in chosen], dtype=np.int64)
    pod_node = np.array([node_row.get(p["spec"].get("nodeName") or "", UNBOUND) for p in chosen], dtype=np.int64)
    requests = np.array([pod_requests(p) for p in chosen], dtype=float).reshape(n_pods, 2)
    created = np.array([parse_time(p["metadata"].get("creationTimestamp")) for p in chosen], dtype=float)

    # Containers: one row per app container of each pod.
    c_pod, c_names, c_resources, c_bounds, c_usage, c_cpu_history, c_memory_history, c_oom = ([] for _ in range(8))
    for row, pod in enumerate(chosen):
        workload = workloads[pod_workload[row]] if pod_workload[row] >= 0 else None
        for container in pod["spec"].get("containers", []):
            name = container["name"]
            resources = container_resources(container)
            key = (pod_uid(pod), name)
            cpu_window, memory_window = history.window(key, time_seconds)
            c_pod.append(row)
            c_names.append(name)
            c_resources.append(resources)
            c_bounds.append(pinned_bounds(workload.container_bounds.get(name) if workload else None, resources))
            c_usage.append(container_usage_now.get(key, (math.nan, math.nan)))
            c_cpu_history.append(cpu_window)
            c_memory_history.append(memory_window)
            c_oom.append(oom_killed(pod, name))
    n_containers = len(c_names)
    c_pod_index = np.array(c_pod, dtype=np.int64)
    resources_array = np.array([[r.cpu_request_millicores, r.cpu_limit_millicores, r.memory_request_bytes,
                                 r.memory_limit_bytes] for r in c_resources], dtype=float).reshape(n_containers, 4)
    usage_array = np.array(c_usage, dtype=float).reshape(n_containers, 2)
    bounds_array = np.array(c_bounds, dtype=float).reshape(n_containers, 4)

    def per_pod(values: np.ndarray, empty: float) -> np.ndarray:
        """Sum of a container column per pod; ``empty`` where no container knows it."""
        known = ~np.isnan(values)
        total = np.bincount(c_pod_index[known], weights=values[known], minlength=n_pods)
        any_known = np.bincount(c_pod_index[known], minlength=n_pods) > 0
        return np.where(any_known, total, empty)

    pod_cpu_usage = per_pod(usage_array[:, 0], math.nan)
    pod_memory_usage = per_pod(usage_array[:, 1], math.nan)
    bound = pod_node >= 0
    requested_cpu = np.bincount(pod_node[bound], weights=requests[bound, 0], minlength=len(nodes))
    requested_memory = np.bincount(pod_node[bound], weights=requests[bound, 1], minlength=len(nodes))
    pods_on_node = np.bincount(pod_node[bound], minlength=len(nodes))

    def quantity(values: Mapping, field: str, parse: Callable[[str], float]) -> float:
        return parse(values[field]) if field in values else 0.0

    allocatable = [n.get("status", {}).get("allocatable") or {} for n in nodes]
    cpu_capacity = np.array([quantity(a, "cpu", cpu_millicores) for a in allocatable], dtype=float)
    schedulable = np.array([node_schedulable(n) for n in nodes], dtype=bool)
    standby_marked = np.array([(n["metadata"].get("labels") or {}).get(STANDBY_LABEL) == "true"
                               for n in nodes], dtype=bool)
    node_table = NodeTable(
        names=node_names,
        cpu_capacity_millicores=cpu_capacity,
        memory_capacity_bytes=np.array([quantity(a, "memory", memory_bytes) for a in allocatable], dtype=float),
        cpu_requested_millicores=requested_cpu,
        memory_requested_bytes=requested_memory,
        cpu_usage_millicores=np.array([node_usage_now.get(n, (math.nan,) * 2)[0] for n in node_names], dtype=float),
        memory_usage_bytes=np.array([node_usage_now.get(n, (math.nan,) * 2)[1] for n in node_names], dtype=float),
        power_class=tuple((n["metadata"].get("labels") or {}).get(POWER_CLASS_LABEL) or power_class_for_cpu(c)
                          for n, c in zip(nodes, cpu_capacity, strict=True)),
        schedulable=schedulable,
        standby=standby_marked & (pods_on_node == 0),
    )
    pod_table = PodTable(
        names=pod_names,
        workload_index=pod_workload,
        node_index=pod_node,
        cpu_request_millicores=requests[:, 0].copy(),
        cpu_limit_millicores=per_pod(resources_array[:, 1], math.inf),
        memory_request_bytes=requests[:, 1].copy(),
        memory_limit_bytes=per_pod(resources_array[:, 3], math.inf),
        cpu_usage_millicores=pod_cpu_usage,
        memory_usage_bytes=pod_memory_usage,
        age_seconds=np.nan_to_num(time_seconds - created, nan=0.0),
    )
    container_table = ContainerTable(
        pod_index=c_pod_index,
        names=tuple(c_names),
        workload_index=pod_workload[c_pod_index] if n_containers else np.zeros(0, dtype=np.int64),
        cpu_request_millicores=resources_array[:, 0].copy(),
        cpu_limit_millicores=resources_array[:, 1].copy(),
        memory_request_bytes=resources_array[:, 2].copy(),
        memory_limit_bytes=resources_array[:, 3].copy(),
        cpu_history_millicores=np.array(c_cpu_history, dtype=float).reshape(n_containers, history.window_samples),
        memory_history_bytes=np.array(c_memory_history, dtype=float).reshape(n_containers, history.window_samples),
        history_step_seconds=history.step_seconds,
        # metrics.k8s.io carries no CFS throttling counters; cAdvisor via Prometheus would.
        throttled_periods_total=np.zeros(n_containers),
        oom_kills_total=np.array(c_oom, dtype=float),
        cpu_min_millicores=bounds_array[:, 0].copy(),
        cpu_max_millicores=bounds_array[:, 1].copy(),
        memory_min_bytes=bounds_array[:, 2].copy(),
        memory_max_bytes=bounds_array[:, 3].copy(),
    )
    return ClusterSnapshot(
        time_seconds=time_seconds, nodes=node_table, pods=pod_table, containers=container_table,
        workloads=workload_table(workloads, pod_workload, latency_seconds),
        dependencies=dependency_table(workloads, workload_row),
    )


def workload_table(workloads: Sequence[WorkloadSpec], pod_workload: np.ndarray,
                   latency_seconds: Mapping[str, float]) -> WorkloadTable:
    """The RLWorkloads as a table; ``pod_workload`` (each pod row's workload) counts replicas."""
    nan_bounds = ContainerBounds(math.nan, math.nan, math.nan, math.nan)
    primary = [next(iter(w.container_bounds.values()), nan_bounds) for w in workloads]
    return WorkloadTable(
        names=tuple(w.key for w in workloads),
        replicas=np.bincount(pod_workload[pod_workload >= 0], minlength=len(workloads)).astype(np.int64),
        replicas_min=np.array([w.replicas_min for w in workloads], dtype=np.int64),
        replicas_max=np.array([w.replicas_max for w in workloads], dtype=np.int64),
        cpu_min_millicores=np.array([b.cpu_min_millicores for b in primary], dtype=float),
        cpu_max_millicores=np.array([b.cpu_max_millicores for b in primary], dtype=float),
        memory_min_bytes=np.array([b.memory_min_bytes for b in primary], dtype=float),
        memory_max_bytes=np.array([b.memory_max_bytes for b in primary], dtype=float),
        slo_latency_p95_seconds=np.array([w.slo_latency_p95_seconds for w in workloads], dtype=float),
        energy_weight=np.array([w.energy_weight for w in workloads], dtype=float),
        request_rate_per_second=np.full(len(workloads), math.nan),
        latency_p95_seconds=np.array([latency_seconds.get(w.key, math.nan) for w in workloads], dtype=float),
    )


def dependency_table(workloads: Sequence[WorkloadSpec], row: Mapping[str, int]) -> DependencyTable:
    """Edges to the dependencies that exist now (a dependency may be created later)."""
    edges = [(row[w.key], row[target], weight) for w in workloads for target, weight in w.dependencies
             if target in row and target != w.key]
    if not edges:
        return empty_dependencies()
    source, target, weight = zip(*edges, strict=True)
    return DependencyTable(source=np.array(source, dtype=np.int64), target=np.array(target, dtype=np.int64),
                           weight=np.array(weight, dtype=float))
