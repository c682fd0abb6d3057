"""A watch-fed view of the cluster: nodes, pods, RLWorkloads and their usage, kept current by
events and turned into a :class:`ClusterSnapshot` in a few numpy operations.

Pure: :mod:`thrifty.informer` feeds it from the API's watches; nothing here does I/O. The
extender reads it on every ``prioritize`` call, so nothing on that path lists the cluster or
parses a quantity: each pod is parsed once, when its event arrives, into one row of column
arrays (bound pods only; a Pending pod holds nothing). Deleting a row moves the last row into
its place, so every update costs O(1).

Assume. Between kube-scheduler choosing a node for a pod and the pod's binding reaching the
watch, the next pods of a burst would not see it and would pile onto the same node. So the
extender assumes its choice at once (:meth:`ClusterView.assume`): the pod counts on that node
until the watch shows it bound (or gone), or until ``assume_ttl_seconds`` pass without that (its
binding failed and kube-scheduler retries it).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

import numpy as np

from thrifty.energy import power_class_for_cpu
from thrifty.history import UsageHistory
from thrifty.observe import (
    POWER_CLASS_LABEL,
    STANDBY_LABEL,
    WORKLOAD_LABEL,
    WorkloadSpec,
    container_resources,
    controller_uid,
    cpu_millicores,
    dependency_table,
    is_finished,
    memory_bytes,
    node_schedulable,
    object_key,
    oom_killed,
    parse_time,
    pinned_bounds,
    pod_requests,
    pod_uid,
    workload_table,
)
from thrifty.snapshot import NO_WORKLOAD, UNBOUND, ClusterSnapshot, ContainerTable, NodeTable, PodTable

ADDED, MODIFIED, DELETED = "ADDED", "MODIFIED", "DELETED"
"""Watch event types."""


@dataclass(frozen=True)
class _Node:
    cpu_capacity_millicores: float
    memory_capacity_bytes: float
    power_class: str
    ready: bool
    """Ready and not cordoned."""
    standby_marked: bool


def _parse_node(node: Mapping) -> _Node:
    allocatable = node.get("status", {}).get("allocatable") or {}
    cpu = cpu_millicores(allocatable["cpu"]) if "cpu" in allocatable else 0.0
    labels = node["metadata"].get("labels") or {}
    return _Node(cpu, memory_bytes(allocatable["memory"]) if "memory" in allocatable else 0.0,
                 labels.get(POWER_CLASS_LABEL) or power_class_for_cpu(cpu), node_schedulable(node),
                 labels.get(STANDBY_LABEL) == "true")


class ClusterView:
    """Nodes, bound pods, RLWorkloads and usage, updated event by event; see the module docstring."""

    def __init__(self, *, assume_ttl_seconds: float = 30.0, clock: Callable[[], float]) -> None:
        self.assume_ttl_seconds = assume_ttl_seconds
        self._clock = clock
        self._nodes: dict[str, _Node] = {}
        self._node_tables: tuple | None = None
        """Node columns, rebuilt only when a node changes."""
        self._node_row: dict[str, int] = {}
        # Bound pods as rows of columns; capacity doubles when full.
        self._row: dict[str, int] = {}
        self._names: list[str] = []
        self._node_of: list[str] = []
        self._owner: list[tuple[str, str] | None] = []
        """(controller UID, ``namespace/<workload label>``) of a pod that may be an RLWorkload's."""
        self._numbers = np.zeros((0, 5))
        """cpu request, cpu limit, memory request, memory limit, creation time (Unix seconds)."""
        self._node_index = np.zeros(0, dtype=np.int64)
        self._raw: dict[str, Mapping] = {}
        """Pod objects of RLWorkload pods, whose containers the placement features read."""
        self._assumed: dict[str, float] = {}
        """Pod key -> when its assumption expires (clock seconds)."""
        self._usage = np.zeros((0, 2))
        self._usage_key: tuple[int, tuple[str, ...]] | None = None
        self.workloads: dict[str, WorkloadSpec] = {}
        self.node_usage: dict[str, tuple[float, float]] = {}
        self.container_usage: dict[tuple[str, str], tuple[float, float]] = {}

    # --- Nodes -------------------------------------------------------------------------------

    def apply_node(self, event_type: str, node: Mapping) -> None:
        name = node["metadata"]["name"]
        if event_type == DELETED:
            changed = self._nodes.pop(name, None) is not None
        else:
            parsed = _parse_node(node)
            changed = self._nodes.get(name) != parsed
            self._nodes[name] = parsed
        if changed:
            self._node_tables = None

    def replace_nodes(self, nodes: Collection[Mapping]) -> None:
        """The whole node list (after a LIST, when a watch starts or restarts)."""
        self._nodes = {n["metadata"]["name"]: _parse_node(n) for n in nodes}
        self._node_tables = None

    def _tables(self) -> tuple:
        if self._node_tables is None:
            names = tuple(self._nodes)
            rows = [self._nodes[n] for n in names]
            self._node_tables = (
                names,
                np.array([r.cpu_capacity_millicores for r in rows], dtype=float),
                np.array([r.memory_capacity_bytes for r in rows], dtype=float),
                tuple(r.power_class for r in rows),
                np.array([r.ready for r in rows], dtype=bool),
                np.array([r.standby_marked for r in rows], dtype=bool),
            )
            self._node_row = {name: i for i, name in enumerate(names)}
            self._node_index[: len(self._names)] = [self._node_row.get(n, UNBOUND) for n in self._node_of]
        return self._node_tables

    # --- Pods --------------------------------------------------------------------------------

    def apply_pod(self, event_type: str, pod: Mapping) -> None:
        key = object_key(pod)
        node = pod.get("spec", {}).get("nodeName")
        if event_type == DELETED or is_finished(pod):
            self._assumed.pop(key, None)
            self._remove(key)
            return
        if node:
            self._assumed.pop(key, None)
            self._put(key, pod, node)
        elif key not in self._assumed:
            self._remove(key)

    def replace_pods(self, pods: Collection[Mapping]) -> None:
        """The whole pod list (after a LIST). Assumptions not yet confirmed are kept."""
        seen = set()
        for pod in pods:
            self.apply_pod(ADDED, pod)
            seen.add(object_key(pod))
        for key in [k for k in self._row if k not in seen and k not in self._assumed]:
            self._remove(key)

    def assume(self, pod: Mapping, node: str) -> None:
        """Count ``pod`` on ``node`` now, ahead of the watch; see the module docstring."""
        key = object_key(pod)
        self._assumed[key] = self._clock() + self.assume_ttl_seconds
        self._put(key, pod, node)

    def expire_assumed(self) -> None:
        """Drop assumptions whose binding never showed up."""
        now = self._clock()
        for key in [k for k, until in self._assumed.items() if until <= now]:
            del self._assumed[key]
            self._remove(key)

    def bound_node(self, pod_key: str) -> str | None:
        """The node the view counts the pod on (bound or assumed), else None."""
        row = self._row.get(pod_key)
        return None if row is None else self._node_of[row]

    def _put(self, key: str, pod: Mapping, node: str) -> None:
        cpu, memory = pod_requests(pod)
        containers = [container_resources(c) for c in pod.get("spec", {}).get("containers", [])]
        cpu_limit = sum(c.cpu_limit_millicores for c in containers) if containers else math.inf
        memory_limit = sum(c.memory_limit_bytes for c in containers) if containers else math.inf
        meta = pod.get("metadata", {})
        label = (meta.get("labels") or {}).get(WORKLOAD_LABEL)
        uid = controller_uid(pod)
        owner = (uid, f"{meta.get('namespace', '')}/{label}") if uid and label else None
        numbers = (cpu, cpu_limit, memory, memory_limit, parse_time(meta.get("creationTimestamp")))
        self._tables()
        row = self._row.get(key)
        if row is None:
            row = len(self._names)
            if row == len(self._numbers):
                grow = max(64, 2 * row)
                self._numbers = np.concatenate([self._numbers, np.zeros((grow, 5))])
                self._node_index = np.concatenate([self._node_index, np.zeros(grow, dtype=np.int64)])
            self._row[key] = row
            self._names.append(key)
            self._node_of.append(node)
            self._owner.append(owner)
        else:
            self._node_of[row] = node
            self._owner[row] = owner
        self._numbers[row] = numbers
        self._node_index[row] = self._node_row.get(node, UNBOUND)
        if owner:
            self._raw[key] = pod
        else:
            self._raw.pop(key, None)

    def _remove(self, key: str) -> None:
        row = self._row.pop(key, None)
        if row is None:
            return
        self._raw.pop(key, None)
        last = len(self._names) - 1
        if row != last:
            moved = self._names[last]
            self._row[moved] = row
            self._names[row], self._node_of[row], self._owner[row] = (
                self._names[last], self._node_of[last], self._owner[last])
            self._numbers[row] = self._numbers[last]
            self._node_index[row] = self._node_index[last]
        self._names.pop()
        self._node_of.pop()
        self._owner.pop()

    # --- RLWorkloads and usage ---------------------------------------------------------------

    def apply_workload(self, event_type: str, workload: WorkloadSpec) -> None:
        if event_type == DELETED:
            self.workloads.pop(workload.key, None)
        else:
            self.workloads[workload.key] = workload

    def owner_of(self, pod: Mapping) -> WorkloadSpec | None:
        """The RLWorkload whose pod this is (label and controller UID), else None."""
        label = (pod.get("metadata", {}).get("labels") or {}).get(WORKLOAD_LABEL)
        if not label:
            return None
        workload = self.workloads.get(f"{pod['metadata'].get('namespace', '')}/{label}")
        return workload if workload is not None and controller_uid(pod) == workload.uid else None

    # --- The snapshot ------------------------------------------------------------------------

    def snapshot(self, pod: Mapping, candidates: Collection[str], *, time_seconds: float,
                 history: UsageHistory) -> tuple[ClusterSnapshot, int]:
        """The cluster with ``pod`` Pending, as the placement core sees it, and the pod's row.

        Only ``candidates`` (the nodes kube-scheduler's filters left) are schedulable, so the
        core picks among them exactly as the simulator picks among the nodes that fit. If the
        view counts the pod somewhere already (an earlier attempt assumed it), that is undone.
        """
        names, cpu_capacity, memory_capacity, power_class, ready, standby_marked = self._tables()
        n = len(self._names)
        key = object_key(pod)
        rows = slice(0, n)
        pod_names, owners = self._names + [key], self._owner
        if key in self._row:  # rare: only this pod's row goes, so the others need not be copied
            keep = np.ones(n, dtype=bool)
            keep[self._row[key]] = False
            rows = keep  # type: ignore[assignment]
            pod_names = [k for k, k_keep in zip(self._names, keep, strict=True) if k_keep] + [key]
            owners = [o for o, k_keep in zip(self._owner, keep, strict=True) if k_keep]
        node_index = np.append(self._node_index[:n][rows], UNBOUND)
        numbers = np.vstack([self._numbers[:n][rows], self._pod_numbers(pod)])
        workloads = list(self.workloads.values())
        by_owner = {(w.uid, w.key): i for i, w in enumerate(workloads)}
        mine = self.owner_of(pod)
        if by_owner:
            pod_workload = np.array([by_owner.get(o, NO_WORKLOAD) if o else NO_WORKLOAD for o in owners]
                                    + [by_owner[(mine.uid, mine.key)] if mine else NO_WORKLOAD], dtype=np.int64)
        else:
            pod_workload = np.full(len(pod_names), NO_WORKLOAD, dtype=np.int64)
        bound = node_index >= 0
        n_nodes = len(names)
        pods_on_node = np.bincount(node_index[bound], minlength=n_nodes)
        allowed = np.zeros(n_nodes, dtype=bool)
        allowed[[self._node_row[c] for c in candidates if c in self._node_row]] = True
        usage = self._usage_columns(names)
        nodes = NodeTable(
            names=names, cpu_capacity_millicores=cpu_capacity, memory_capacity_bytes=memory_capacity,
            cpu_requested_millicores=np.bincount(node_index[bound], weights=numbers[bound, 0], minlength=n_nodes),
            memory_requested_bytes=np.bincount(node_index[bound], weights=numbers[bound, 2], minlength=n_nodes),
            cpu_usage_millicores=usage[:, 0], memory_usage_bytes=usage[:, 1], power_class=power_class,
            schedulable=ready & allowed, standby=standby_marked & (pods_on_node == 0),
        )
        pods = PodTable(
            names=tuple(pod_names), workload_index=pod_workload, node_index=node_index,
            cpu_request_millicores=numbers[:, 0].copy(), cpu_limit_millicores=numbers[:, 1].copy(),
            memory_request_bytes=numbers[:, 2].copy(), memory_limit_bytes=numbers[:, 3].copy(),
            cpu_usage_millicores=np.full(len(pod_names), math.nan),
            memory_usage_bytes=np.full(len(pod_names), math.nan),
            age_seconds=np.nan_to_num(time_seconds - numbers[:, 4], nan=0.0),
        )
        # Containers of the pod and of its siblings: what the placement features read.
        row = len(pod_names) - 1
        members = [(row, pod)]
        if mine is not None:
            members += [(int(i), self._raw[pod_names[i]])
                        for i in np.flatnonzero(pod_workload[:-1] == pod_workload[-1])]
        containers = self._containers(members, pod_workload, workloads, time_seconds, history)
        w = workload_table(workloads, pod_workload, {})
        return ClusterSnapshot(time_seconds=time_seconds, nodes=nodes, pods=pods, containers=containers,
                               workloads=w, dependencies=dependency_table(workloads, {x.key: i for i, x
                                                                                   in enumerate(workloads)})), row

    def node_row(self) -> Mapping[str, int]:
        """Node name -> its row in the snapshots' node tables."""
        self._tables()
        return self._node_row

    def _usage_columns(self, names: tuple[str, ...]) -> np.ndarray:
        """(nodes, 2) CPU millicores and memory bytes used, NaN where unknown; rebuilt only when
        the usage or the nodes change (once per metrics refresh)."""
        key = (id(self.node_usage), names)
        if self._usage_key is None or self._usage_key[0] != key[0] or self._usage_key[1] is not names:
            self._usage = np.array([self.node_usage.get(name, (math.nan, math.nan)) for name in names],
                                   dtype=float).reshape(len(names), 2)
            self._usage_key = key
        return self._usage

    @staticmethod
    def _pod_numbers(pod: Mapping) -> np.ndarray:
        cpu, memory = pod_requests(pod)
        containers = [container_resources(c) for c in pod.get("spec", {}).get("containers", [])]
        return np.array([cpu, sum(c.cpu_limit_millicores for c in containers) if containers else math.inf,
                         memory, sum(c.memory_limit_bytes for c in containers) if containers else math.inf,
                         parse_time(pod.get("metadata", {}).get("creationTimestamp"))])

    def _containers(self, members: list[tuple[int, Mapping]], pod_workload: np.ndarray,
                    workloads: list[WorkloadSpec], time_seconds: float, history: UsageHistory) -> ContainerTable:
        rows = []
        for pod_row, pod in members:
            workload = workloads[pod_workload[pod_row]] if pod_workload[pod_row] >= 0 else None
            for container in pod.get("spec", {}).get("containers", []):
                name = container["name"]
                size = container_resources(container)
                cpu_window, memory_window = history.window((pod_uid(pod), name), time_seconds)
                pinned = pinned_bounds(workload.container_bounds.get(name) if workload else None, size)
                rows.append((pod_row, name, size, pinned, cpu_window, memory_window, oom_killed(pod, name)))
        n = len(rows)
        sizes = np.array([[r[2].cpu_request_millicores, r[2].cpu_limit_millicores, r[2].memory_request_bytes,
                           r[2].memory_limit_bytes] for r in rows], dtype=float).reshape(n, 4)
        bounds = np.array([r[3] for r in rows], dtype=float).reshape(n, 4)
        pod_index = np.array([r[0] for r in rows], dtype=np.int64)
        return ContainerTable(
            pod_index=pod_index, names=tuple(r[1] for r in rows), workload_index=pod_workload[pod_index],
            cpu_request_millicores=sizes[:, 0].copy(), cpu_limit_millicores=sizes[:, 1].copy(),
            memory_request_bytes=sizes[:, 2].copy(), memory_limit_bytes=sizes[:, 3].copy(),
            cpu_history_millicores=np.array([r[4] for r in rows], dtype=float).reshape(n, history.window_samples),
            memory_history_bytes=np.array([r[5] for r in rows], dtype=float).reshape(n, history.window_samples),
            history_step_seconds=history.step_seconds, throttled_periods_total=np.zeros(n),
            oom_kills_total=np.array([r[6] for r in rows], dtype=float),
            cpu_min_millicores=bounds[:, 0].copy(), cpu_max_millicores=bounds[:, 1].copy(),
            memory_min_bytes=bounds[:, 2].copy(), memory_max_bytes=bounds[:, 3].copy(),
        )
