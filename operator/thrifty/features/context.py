"""Container and pod features from a :class:`~thrifty.snapshot.ClusterSnapshot`.

:func:`from_snapshot` gives every container its behaviour features (:mod:`.container`) followed
by the context of the workload it belongs to: load and latency against the SLO from the
:class:`~thrifty.snapshot.WorkloadTable`, and the workload's degree and weight in the
dependency graph. :func:`pod_features` does the same for whole pods, treating a pod as one
container whose usage is the sum of its containers' (what a node sees when the pod lands).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from thrifty.features.columns import stack
from thrifty.features.container import FEATURE_NAMES, container_features
from thrifty.snapshot import ClusterSnapshot, DependencyTable, WorkloadTable

LATENCY_RATIO_CAP = 10.0
"""Largest latency / SLO ratio reported: past 10 times the target the size of the miss no
longer changes the decision, and a bound keeps the input well scaled."""

DEFAULT_ENERGY_WEIGHT = 0.5
"""Energy weight of a container outside any RLWorkload (the CRD's default trade-off)."""

SERVICE_FEATURE_NAMES: tuple[str, ...] = (
    "request_rate_per_second",
    "request_rate_per_replica",
    "load_known",
    "latency_slo_ratio",
    "slo_slack",
    "latency_known",
    "energy_weight",
    "dependency_degree",
    "dependency_weight",
)
"""Workload-level columns shared by :data:`CONTEXT_FEATURE_NAMES` and the workload features."""

CONTEXT_FEATURE_NAMES: tuple[str, ...] = ("workload_known",) + SERVICE_FEATURE_NAMES
"""Columns that :func:`from_snapshot` appends to :data:`FEATURE_NAMES` for each container."""

CONTAINER_OBSERVATION_NAMES: tuple[str, ...] = FEATURE_NAMES + CONTEXT_FEATURE_NAMES
"""Columns of :attr:`ContainerFeatures.matrix`: behaviour, then workload context."""


@dataclass(frozen=True)
class ContainerFeatures:
    """Feature rows for containers (from :func:`from_snapshot`) or pods (:func:`pod_features`)."""

    matrix: np.ndarray
    """float64 (rows, len(CONTAINER_OBSERVATION_NAMES)), finite."""
    names: tuple[str, ...] = CONTAINER_OBSERVATION_NAMES
    """Column names of ``matrix``."""

    def __len__(self) -> int:
        return int(self.matrix.shape[0])

    def column(self, name: str) -> np.ndarray:
        """(rows,) view of the named column."""
        return self.matrix[:, self.names.index(name)]

    @property
    def has_history(self) -> np.ndarray:
        """(rows,) bool: the row has at least one CPU or memory usage sample."""
        return (self.column("cpu_has_data") > 0) | (self.column("memory_has_data") > 0)

    @property
    def behaviour(self) -> np.ndarray:
        """(rows, len(FEATURE_NAMES)) view: the columns :func:`container_features` computes."""
        return self.matrix[:, : len(FEATURE_NAMES)]


def from_snapshot(snapshot: ClusterSnapshot) -> ContainerFeatures:
    """Behaviour and workload context of every container, one row per ``snapshot.containers`` row."""
    containers = snapshot.containers
    behaviour = container_features(
        containers.cpu_history_millicores,
        containers.memory_history_bytes,
        containers.history_step_seconds,
        containers.cpu_request_millicores,
        containers.cpu_limit_millicores,
        containers.memory_request_bytes,
        containers.memory_limit_bytes,
        containers.throttled_periods_total,
        containers.oom_kills_total,
    )
    context = workload_context(snapshot, containers.workload_index)
    return ContainerFeatures(np.hstack([behaviour, context]))


def pod_features(snapshot: ClusterSnapshot, pod_rows: np.ndarray | None = None) -> ContainerFeatures:
    """Features of pods, each seen as one container: one row per entry of ``pod_rows``.

    A pod's usage at each sample is the sum of its containers' samples that are present (NaN
    when none is); its requests and limits are the ``PodTable`` sums, and its throttle and OOM
    counts add up over its containers. ``pod_rows`` defaults to every pod; computing only the
    pods needed keeps a single placement cheap.
    """
    containers, pods = snapshot.containers, snapshot.pods
    rows = np.arange(len(pods)) if pod_rows is None else np.asarray(pod_rows, dtype=np.int64)
    unique_rows, position = np.unique(rows, return_inverse=True)
    slot = np.full(len(pods), -1, dtype=np.int64)
    slot[unique_rows] = np.arange(len(unique_rows))
    container_slot = slot[containers.pod_index]
    selected = container_slot >= 0
    target = container_slot[selected]

    shape = (len(unique_rows), containers.cpu_history_millicores.shape[1])
    cpu = _sum_present(containers.cpu_history_millicores[selected], target, shape)
    memory = _sum_present(containers.memory_history_bytes[selected], target, shape)

    def counts(values: np.ndarray) -> np.ndarray:
        present = np.where(np.isfinite(values[selected]), values[selected], 0.0)
        return np.bincount(target, weights=present, minlength=len(unique_rows))

    behaviour = container_features(
        cpu,
        memory,
        containers.history_step_seconds,
        pods.cpu_request_millicores[unique_rows],
        pods.cpu_limit_millicores[unique_rows],
        pods.memory_request_bytes[unique_rows],
        pods.memory_limit_bytes[unique_rows],
        counts(containers.throttled_periods_total),
        counts(containers.oom_kills_total),
    )
    context = workload_context(snapshot, pods.workload_index[unique_rows])
    return ContainerFeatures(np.hstack([behaviour, context])[position])


def _sum_present(history: np.ndarray, target: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Row sums by ``target`` over present samples; NaN where no row had a sample."""
    present = np.isfinite(history)
    # One flat bincount: np.add.at over 2-D rows is an order of magnitude slower.
    cells = (target[:, None] * shape[1] + np.arange(shape[1])).ravel()
    size = shape[0] * shape[1]
    total = np.bincount(cells, weights=np.where(present, history, 0.0).ravel(), minlength=size)
    seen = np.bincount(cells, weights=present.ravel(), minlength=size)
    return np.where(seen > 0, total, np.nan).reshape(shape)


def workload_context(snapshot: ClusterSnapshot, workload_index: np.ndarray) -> np.ndarray:
    """(rows, len(CONTEXT_FEATURE_NAMES)): the context of the workload each row belongs to.

    ``workload_index`` is a row of ``snapshot.workloads`` or ``NO_WORKLOAD`` (-1), which gets
    ``workload_known`` 0 and the defaults of :func:`service_columns`.
    """
    columns = service_columns(snapshot.workloads, snapshot.dependencies, workload_index)
    columns["workload_known"] = (np.asarray(workload_index) >= 0).astype(float)
    return stack(columns, CONTEXT_FEATURE_NAMES, len(columns["workload_known"]))


def service_columns(
    workloads: WorkloadTable, dependencies: DependencyTable, workload_index: np.ndarray
) -> dict[str, np.ndarray]:
    """The :data:`SERVICE_FEATURE_NAMES` columns for rows of ``workloads`` (-1: no workload).

    Unknown values take neutral defaults with a flag: request rate 0 (``load_known`` 0),
    latency at the SLO (ratio 1, slack 0, ``latency_known`` 0), energy weight 0.5, no
    dependencies.
    """
    index = np.asarray(workload_index, dtype=np.int64)

    def gather(values: np.ndarray, default: float) -> np.ndarray:
        values = np.asarray(values, dtype=float)
        known = index >= 0
        if values.shape[0] == 0:
            return np.full(index.shape, default)
        picked = values[np.where(known, index, 0)]
        return np.where(known & np.isfinite(picked), picked, default)

    rate = gather(workloads.request_rate_per_second, np.nan)
    load_known = np.isfinite(rate) & (rate >= 0)
    rate = np.where(load_known, rate, 0.0)
    replicas = np.maximum(gather(workloads.replicas, 0.0), 1.0)

    latency = gather(workloads.latency_p95_seconds, np.nan)
    target = gather(workloads.slo_latency_p95_seconds, np.nan)
    latency_known = np.isfinite(latency) & (latency >= 0) & np.isfinite(target) & (target > 0)
    ratio = np.where(
        latency_known,
        np.clip(latency / np.where(latency_known, target, 1.0), 0.0, LATENCY_RATIO_CAP),
        1.0,
    )

    degree, weight = dependency_degree_and_weight(dependencies, len(workloads))
    return {
        "request_rate_per_second": rate,
        # A workload scaled to zero would take its load on one replica.
        "request_rate_per_replica": rate / replicas,
        "load_known": load_known.astype(float),
        "latency_slo_ratio": ratio,
        # The resources' slack convention: positive is room left, negative a miss.
        "slo_slack": 1.0 - ratio,
        "latency_known": latency_known.astype(float),
        "energy_weight": np.clip(gather(workloads.energy_weight, DEFAULT_ENERGY_WEIGHT), 0.0, 1.0),
        "dependency_degree": gather(degree, 0.0),
        "dependency_weight": gather(weight, 0.0),
    }


def dependency_degree_and_weight(
    dependencies: DependencyTable, n_workloads: int
) -> tuple[np.ndarray, np.ndarray]:
    """(workloads,) neighbour count and total edge weight in the symmetric dependency graph.

    Equal to ``(adjacency > 0).sum(1)`` and ``adjacency.sum(1)`` of
    :meth:`DependencyTable.adjacency`, computed from the edge list so that 10,000 workloads do
    not need a dense 10,000 x 10,000 matrix. Self-edges are ignored, parallel edges add up.
    """
    source, target, weight = dependencies.source, dependencies.target, dependencies.weight
    between = source != target
    first = np.concatenate([source[between], target[between]])
    second = np.concatenate([target[between], source[between]])
    both = np.concatenate([weight[between], weight[between]])
    total = np.bincount(first, weights=both, minlength=n_workloads)
    pairs, pair_of_edge = np.unique(first * max(n_workloads, 1) + second, return_inverse=True)
    pair_weight = np.bincount(pair_of_edge, weights=both, minlength=len(pairs))
    pair_source = pairs // max(n_workloads, 1)
    degree = np.bincount(pair_source[pair_weight > 0], minlength=n_workloads).astype(float)
    return degree, total


def neighbour_weights(dependencies: DependencyTable, n_workloads: int, workload: int) -> np.ndarray:
    """(workloads,) row ``workload`` of :meth:`DependencyTable.adjacency`, from the edge list."""
    row = np.zeros(n_workloads)
    if workload < 0:
        return row
    source, target, weight = dependencies.source, dependencies.target, dependencies.weight
    np.add.at(row, target[source == workload], weight[source == workload])
    np.add.at(row, source[target == workload], weight[target == workload])
    row[workload] = 0.0
    return row


class PodFeatureCache:
    """Rows of :func:`pod_features`, computed on demand and kept while their inputs are unchanged.

    Placing a burst of pods reads the same rows again and again: every new replica of a workload
    takes the mean of its siblings' rows. A pod's row depends on its containers' usage, its
    requests and limits, and its workload's context, none of which binding a pod changes, so the
    rows stay valid across the snapshots :func:`thrifty.core.plan_placements` derives from one
    observed snapshot. A snapshot with other container, pod-request or workload tables (a new
    observation) empties the cache first.
    """

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._rows: dict[int, np.ndarray] = {}

    def features(self, snapshot: ClusterSnapshot, pod_rows: np.ndarray) -> ContainerFeatures:
        """What ``pod_features(snapshot, pod_rows)`` returns, computing only rows not cached."""
        pods = snapshot.pods
        key = (snapshot.containers, snapshot.workloads, snapshot.dependencies, pods.cpu_request_millicores,
               pods.cpu_limit_millicores, pods.memory_request_bytes, pods.memory_limit_bytes)
        same = self._key is not None and all(a is b for a, b in zip(key, self._key, strict=True))
        # A local reference: a concurrent call that starts a new observation replaces the dict
        # rather than emptying the one read here.
        cached = self._rows if same else {}
        rows = [int(r) for r in pod_rows]
        missing = sorted(set(rows) - cached.keys())
        if missing:
            cached.update(zip(missing, pod_features(snapshot, np.asarray(missing)).matrix, strict=True))
        self._key, self._rows = key, cached
        if not rows:
            return ContainerFeatures(np.zeros((0, len(CONTAINER_OBSERVATION_NAMES))))
        return ContainerFeatures(np.stack([cached[r] for r in rows]))
