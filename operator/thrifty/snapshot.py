"""The one snapshot model that the live operator and the simulator both produce.

Everything after `observe` in the reconcile data flow (features, policy, safety, reward, energy)
reads a :class:`ClusterSnapshot` and nothing else, so training and serving run the same code.

The snapshot is columnar: one numpy array per attribute, indexed by node, pod, container or
workload position. That keeps a 1,000-node, 10,000-pod step a handful of vector operations, and
it is what the feature module and the policy networks consume directly.

Conventions (all arrays are float64 unless stated):

* CPU is in millicores, memory in bytes, time in seconds, power in watts.
* An unknown measurement is NaN (for example usage when the metrics source is down).
* ``node_index == -1`` means the pod is not bound (Pending).
* ``workload_index == -1`` means the pod or container belongs to no RLWorkload (any pod whose
  ``schedulerName`` is ``thrifty`` is placed, RLWorkload or not).

This module imports neither kopf nor a Kubernetes client.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

UNBOUND = -1
"""Index stored in ``PodTable.node_index`` for a pod that is not bound to a node."""

NO_WORKLOAD = -1
"""Index stored in ``workload_index`` for a pod that belongs to no RLWorkload."""


def _check_lengths(table: object, names: tuple[str, ...], columns: Mapping[str, np.ndarray | tuple[str, ...]]) -> None:
    n = len(names)
    for column, values in columns.items():
        # len() of a tuple of names, rather than np.shape, which would copy it into an array.
        rows = (len(values),) if isinstance(values, tuple) else np.shape(values)[:1]
        if rows != (n,):
            raise ValueError(
                f"{type(table).__name__}.{column}: expected {n} rows (one per name), "
                f"got shape {np.shape(values)}"
            )


@dataclass(frozen=True)
class NodeTable:
    """One row per node."""

    names: tuple[str, ...]
    """Node names, unique."""
    cpu_capacity_millicores: np.ndarray
    """Allocatable CPU."""
    memory_capacity_bytes: np.ndarray
    """Allocatable memory."""
    cpu_requested_millicores: np.ndarray
    """Sum of the CPU requests of the pods bound to the node."""
    memory_requested_bytes: np.ndarray
    """Sum of the memory requests of the pods bound to the node."""
    cpu_usage_millicores: np.ndarray
    """Measured CPU usage of the node (NaN when unknown)."""
    memory_usage_bytes: np.ndarray
    """Measured memory usage of the node (NaN when unknown)."""
    power_class: tuple[str, ...]
    """Name of the node's power profile (see :mod:`thrifty.energy`)."""
    schedulable: np.ndarray
    """bool: the node accepts new pods (Ready and not cordoned)."""
    standby: np.ndarray
    """bool: the node is empty and marked for standby, so it draws standby power."""

    def __post_init__(self) -> None:
        _check_lengths(
            self,
            self.names,
            {
                "cpu_capacity_millicores": self.cpu_capacity_millicores,
                "memory_capacity_bytes": self.memory_capacity_bytes,
                "cpu_requested_millicores": self.cpu_requested_millicores,
                "memory_requested_bytes": self.memory_requested_bytes,
                "cpu_usage_millicores": self.cpu_usage_millicores,
                "memory_usage_bytes": self.memory_usage_bytes,
                "power_class": self.power_class,
                "schedulable": self.schedulable,
                "standby": self.standby,
            },
        )

    def __len__(self) -> int:
        return len(self.names)

    @property
    def cpu_free_millicores(self) -> np.ndarray:
        """Allocatable CPU not yet requested (what the scheduler's fit check uses)."""
        return self.cpu_capacity_millicores - self.cpu_requested_millicores

    @property
    def memory_free_bytes(self) -> np.ndarray:
        """Allocatable memory not yet requested."""
        return self.memory_capacity_bytes - self.memory_requested_bytes


@dataclass(frozen=True)
class PodTable:
    """One row per pod. Requests, limits and usage are summed over the pod's containers."""

    names: tuple[str, ...]
    """Pod names as ``namespace/name``, unique."""
    workload_index: np.ndarray
    """int64: row in :class:`WorkloadTable`, or ``NO_WORKLOAD``."""
    node_index: np.ndarray
    """int64: row in :class:`NodeTable`, or ``UNBOUND`` for a Pending pod."""
    cpu_request_millicores: np.ndarray
    cpu_limit_millicores: np.ndarray
    """CPU limit (inf when the pod sets none)."""
    memory_request_bytes: np.ndarray
    memory_limit_bytes: np.ndarray
    """Memory limit (inf when the pod sets none)."""
    cpu_usage_millicores: np.ndarray
    """Measured CPU usage (NaN when unknown)."""
    memory_usage_bytes: np.ndarray
    """Measured memory usage (NaN when unknown)."""
    age_seconds: np.ndarray
    """Seconds since the pod was created; used to prefer young pods on scale-in."""

    def __post_init__(self) -> None:
        _check_lengths(
            self,
            self.names,
            {
                "workload_index": self.workload_index,
                "node_index": self.node_index,
                "cpu_request_millicores": self.cpu_request_millicores,
                "cpu_limit_millicores": self.cpu_limit_millicores,
                "memory_request_bytes": self.memory_request_bytes,
                "memory_limit_bytes": self.memory_limit_bytes,
                "cpu_usage_millicores": self.cpu_usage_millicores,
                "memory_usage_bytes": self.memory_usage_bytes,
                "age_seconds": self.age_seconds,
            },
        )

    def __len__(self) -> int:
        return len(self.names)


@dataclass(frozen=True)
class ContainerTable:
    """One row per container, with its recent usage history for feature extraction.

    The history is a fixed window of equally spaced samples, oldest first. Missing samples are
    NaN; the feature module ignores them.
    """

    pod_index: np.ndarray
    """int64: row in :class:`PodTable`."""
    names: tuple[str, ...]
    """Container name inside its pod (not unique across pods)."""
    workload_index: np.ndarray
    """int64: row in :class:`WorkloadTable`, or ``NO_WORKLOAD``."""
    cpu_request_millicores: np.ndarray
    cpu_limit_millicores: np.ndarray
    memory_request_bytes: np.ndarray
    memory_limit_bytes: np.ndarray
    cpu_history_millicores: np.ndarray
    """Shape (containers, window): CPU usage samples, oldest first."""
    memory_history_bytes: np.ndarray
    """Shape (containers, window): memory usage samples, oldest first."""
    history_step_seconds: float
    """Seconds between two history samples."""
    throttled_periods_total: np.ndarray
    """Cumulative count of CFS periods in which the container was throttled (over the window)."""
    oom_kills_total: np.ndarray
    """Cumulative count of OOM kills of the container (over the window)."""
    # None (the default) is replaced by a NaN column in __post_init__, so once built these are
    # always arrays; the ignores only let the constructor take None.
    cpu_min_millicores: np.ndarray = None  # type: ignore[assignment]
    """Vertical bound from the RLWorkload's ``spec.containers`` (NaN: unbounded). None fills NaN."""
    cpu_max_millicores: np.ndarray = None  # type: ignore[assignment]
    memory_min_bytes: np.ndarray = None  # type: ignore[assignment]
    memory_max_bytes: np.ndarray = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        for bound in ("cpu_min_millicores", "cpu_max_millicores", "memory_min_bytes", "memory_max_bytes"):
            if getattr(self, bound) is None:
                object.__setattr__(self, bound, np.full(len(self.names), np.nan))
        _check_lengths(
            self,
            self.names,
            {
                "cpu_min_millicores": self.cpu_min_millicores,
                "cpu_max_millicores": self.cpu_max_millicores,
                "memory_min_bytes": self.memory_min_bytes,
                "memory_max_bytes": self.memory_max_bytes,
                "pod_index": self.pod_index,
                "workload_index": self.workload_index,
                "cpu_request_millicores": self.cpu_request_millicores,
                "cpu_limit_millicores": self.cpu_limit_millicores,
                "memory_request_bytes": self.memory_request_bytes,
                "memory_limit_bytes": self.memory_limit_bytes,
                "cpu_history_millicores": self.cpu_history_millicores,
                "memory_history_bytes": self.memory_history_bytes,
                "throttled_periods_total": self.throttled_periods_total,
                "oom_kills_total": self.oom_kills_total,
            },
        )
        if self.cpu_history_millicores.shape != self.memory_history_bytes.shape:
            raise ValueError(
                "ContainerTable.memory_history_bytes: shape "
                f"{self.memory_history_bytes.shape} differs from cpu_history_millicores "
                f"{self.cpu_history_millicores.shape}"
            )

    def __len__(self) -> int:
        return len(self.names)


@dataclass(frozen=True)
class WorkloadTable:
    """One row per RLWorkload, with its bounds, SLO and live service figures."""

    names: tuple[str, ...]
    """``namespace/name``, unique."""
    replicas: np.ndarray
    """int64: pods the workload has now."""
    replicas_min: np.ndarray
    """int64."""
    replicas_max: np.ndarray
    """int64."""
    cpu_min_millicores: np.ndarray
    """Lower CPU bound of the workload's first sized container (its primary one). Per-container
    bounds of every container are in :class:`ContainerTable`."""
    cpu_max_millicores: np.ndarray
    memory_min_bytes: np.ndarray
    memory_max_bytes: np.ndarray
    slo_latency_p95_seconds: np.ndarray
    """Target p95 response time."""
    energy_weight: np.ndarray
    """In [0, 1]: 0 optimises performance only, 1 energy only."""
    request_rate_per_second: np.ndarray
    """Arrival rate of requests to the workload (NaN when unknown)."""
    latency_p95_seconds: np.ndarray
    """Measured or modelled p95 latency (NaN when unknown)."""

    def __post_init__(self) -> None:
        _check_lengths(
            self,
            self.names,
            {
                "replicas": self.replicas,
                "replicas_min": self.replicas_min,
                "replicas_max": self.replicas_max,
                "cpu_min_millicores": self.cpu_min_millicores,
                "cpu_max_millicores": self.cpu_max_millicores,
                "memory_min_bytes": self.memory_min_bytes,
                "memory_max_bytes": self.memory_max_bytes,
                "slo_latency_p95_seconds": self.slo_latency_p95_seconds,
                "energy_weight": self.energy_weight,
                "request_rate_per_second": self.request_rate_per_second,
                "latency_p95_seconds": self.latency_p95_seconds,
            },
        )

    def __len__(self) -> int:
        return len(self.names)


@dataclass(frozen=True)
class DependencyTable:
    """Directed, weighted edges between workloads (communication or shared data)."""

    source: np.ndarray
    """int64: row in :class:`WorkloadTable` of the caller."""
    target: np.ndarray
    """int64: row in :class:`WorkloadTable` of the callee."""
    weight: np.ndarray
    """Relative weight in [0, 1]."""

    def __post_init__(self) -> None:
        if not (self.source.shape == self.target.shape == self.weight.shape):
            raise ValueError(
                "DependencyTable: source, target and weight must have one entry per edge, got "
                f"{self.source.shape}, {self.target.shape}, {self.weight.shape}"
            )

    def __len__(self) -> int:
        return int(self.source.shape[0])

    def adjacency(self, n_workloads: int) -> np.ndarray:
        """Symmetric (n, n) matrix of edge weights; parallel edges add up."""
        matrix = np.zeros((n_workloads, n_workloads))
        np.add.at(matrix, (self.source, self.target), self.weight)
        np.add.at(matrix, (self.target, self.source), self.weight)
        np.fill_diagonal(matrix, 0.0)
        return matrix


def empty_dependencies() -> DependencyTable:
    """A dependency table with no edges."""
    return DependencyTable(
        source=np.zeros(0, dtype=np.int64),
        target=np.zeros(0, dtype=np.int64),
        weight=np.zeros(0),
    )


@dataclass(frozen=True)
class ClusterSnapshot:
    """Everything the decision core sees at one instant."""

    time_seconds: float
    """Simulator time, or wall-clock Unix time in the live operator."""
    nodes: NodeTable
    pods: PodTable
    containers: ContainerTable
    workloads: WorkloadTable
    dependencies: DependencyTable = field(default_factory=empty_dependencies)

    def __post_init__(self) -> None:
        n_nodes, n_pods, n_workloads = len(self.nodes), len(self.pods), len(self.workloads)
        bad_node = (self.pods.node_index < UNBOUND) | (self.pods.node_index >= n_nodes)
        if np.any(bad_node):
            raise ValueError(f"PodTable.node_index: values must lie in [-1, {n_nodes})")
        for table, column in ((self.pods, "workload_index"), (self.containers, "workload_index")):
            values = getattr(table, column)
            if np.any((values < NO_WORKLOAD) | (values >= n_workloads)):
                raise ValueError(
                    f"{type(table).__name__}.{column}: values must lie in [-1, {n_workloads})"
                )
        if np.any((self.containers.pod_index < 0) | (self.containers.pod_index >= n_pods)):
            raise ValueError(f"ContainerTable.pod_index: values must lie in [0, {n_pods})")
        for column in ("source", "target"):
            values = getattr(self.dependencies, column)
            if np.any((values < 0) | (values >= n_workloads)):
                raise ValueError(
                    f"DependencyTable.{column}: values must lie in [0, {n_workloads})"
                )

    def pods_per_node(self) -> np.ndarray:
        """int64 (nodes,): how many pods are bound to each node."""
        bound = self.pods.node_index[self.pods.node_index >= 0]
        return np.bincount(bound, minlength=len(self.nodes))

    def workload_pods_per_node(self) -> np.ndarray:
        """int64 (workloads, nodes): how many pods of each workload each node holds."""
        counts = np.zeros((len(self.workloads), len(self.nodes)), dtype=np.int64)
        mask = (self.pods.node_index >= 0) & (self.pods.workload_index >= 0)
        np.add.at(counts, (self.pods.workload_index[mask], self.pods.node_index[mask]), 1)
        return counts
