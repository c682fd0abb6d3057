"""Node rows for placement: where should this pod go?

The placement policy scores every node with one small shared network, so that it does not
depend on the number or the order of nodes. :func:`placement_observation` therefore gives one
row per node that holds everything the score needs::

    node_rows[n] = [ node_features[n]  |  pod_features  |  pair_features[n] ]
                     NODE_FEATURE_NAMES   POD_FEATURE_NAMES  PAIR_FEATURE_NAMES
                     (the node alone)     (same every row)   (this pod on this node)

and a boolean ``mask`` of the nodes the pod may go to. Column names, in order, are
:data:`PLACEMENT_ROW_NAMES`.

Watts come from :class:`thrifty.energy.PowerModel` through its public methods, so the marginal
cost seen here is exactly the energy the simulator and the operator charge afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from thrifty.energy import PowerModel
from thrifty.features.columns import stack
from thrifty.features.context import (
    CONTAINER_OBSERVATION_NAMES,
    ContainerFeatures,
    PodFeatureCache,
    neighbour_weights,
    pod_features,
)
from thrifty.snapshot import NO_WORKLOAD, ClusterSnapshot, NodeTable

FIT_CAP = 10.0
"""Largest request / free-capacity ratio reported (a pod 10 times the free room)."""

_MARGINAL_STEP = 0.01
"""Utilisation step of the finite difference behind ``marginal_watts_per_core``."""

NODE_FEATURE_NAMES: tuple[str, ...] = (
    "cpu_requested_fraction",
    "memory_requested_fraction",
    "cpu_used_fraction",
    "memory_used_fraction",
    "usage_known",
    "cpu_free_share",
    "memory_free_share",
    "cpu_capacity_share",
    "memory_capacity_share",
    "pod_count",
    "empty",
    "schedulable",
    "standby",
    "idle_watts_share",
    "peak_watts_share",
    "standby_watts_share",
    "wake_watts_share",
    "current_watts_share",
    "marginal_watts_per_core",
    "peak_watts_per_core",
)
"""Columns of :func:`node_features`."""

POD_FEATURE_NAMES: tuple[str, ...] = (
    "pod_cpu_request_share",
    "pod_memory_request_share",
    "pod_features_from_siblings",
) + tuple(f"pod_{name}" for name in CONTAINER_OBSERVATION_NAMES)
"""Columns of the pod's own vector in :func:`placement_observation`."""

PAIR_FEATURE_NAMES: tuple[str, ...] = (
    "dependency_traffic",
    "dependency_traffic_fraction",
    "cpu_fit_fraction",
    "memory_fit_fraction",
    "placement_watts_share",
)
"""Columns that depend on both the pod and the node."""

PLACEMENT_ROW_NAMES: tuple[str, ...] = NODE_FEATURE_NAMES + POD_FEATURE_NAMES + PAIR_FEATURE_NAMES
"""Columns of ``node_rows`` in :func:`placement_observation`."""


@dataclass(frozen=True)
class _NodeEnergy:
    """Watts of each node in the states placement cares about."""

    current: np.ndarray
    """Now (standby power for a node in standby)."""
    idle: np.ndarray
    """Awake and idle."""
    peak: np.ndarray
    """Awake at 100 % CPU."""
    standby: np.ndarray
    """In standby."""
    reference: float
    """The largest peak in the cluster: the unit of every ``*_watts_share`` column."""


def _estimated_cpu_usage(nodes: NodeTable) -> np.ndarray:
    """Measured CPU usage, or the requested CPU where unknown (as :mod:`thrifty.energy` does)."""
    usage = nodes.cpu_usage_millicores
    return np.where(np.isnan(usage), nodes.cpu_requested_millicores, usage)


def _node_energy(nodes: NodeTable, power: PowerModel) -> _NodeEnergy:
    awake = replace(nodes, standby=np.zeros(len(nodes), dtype=bool))
    asleep = replace(nodes, standby=np.ones(len(nodes), dtype=bool))
    capacity = nodes.cpu_capacity_millicores
    # A zero-capacity node counts as fully used under any load (see PowerModel.node_watts).
    full = np.where(capacity > 0, capacity, 1.0)
    peak = power.node_watts(awake, full)
    return _NodeEnergy(
        current=power.node_watts(nodes),
        idle=power.idle_watts(awake),
        peak=peak,
        standby=power.idle_watts(asleep),
        reference=_largest(peak),
    )


def _marginal_watts_per_core(nodes: NodeTable, power: PowerModel, usage: np.ndarray) -> np.ndarray:
    """Watts one more core of load adds to an awake node, from the slope of its power curve.

    A forward difference over 1 % of capacity, taken backwards at the top of the curve. The
    curve is concave, so this falls as a node fills: packing onto a busy node is cheaper
    per core than starting an idle one.
    """
    awake = replace(nodes, standby=np.zeros(len(nodes), dtype=bool))
    capacity = nodes.cpu_capacity_millicores
    step = _MARGINAL_STEP * capacity
    start = np.clip(usage, 0.0, np.maximum(capacity - step, 0.0))
    rise = power.node_watts(awake, start + step) - power.node_watts(awake, start)
    has_capacity = capacity > 0
    return np.where(has_capacity, rise / np.where(has_capacity, step / 1000.0, 1.0), 0.0)


def _fraction(part: np.ndarray, whole: np.ndarray) -> np.ndarray:
    """part / whole; 1 (full) where the whole is not positive."""
    positive = whole > 0
    return np.where(positive, part / np.where(positive, whole, 1.0), 1.0)


def _largest(values: np.ndarray) -> float:
    """The largest value, or 1 when there is none positive (a safe unit for shares)."""
    return float(values.max()) if values.size and values.max() > 0 else 1.0


def node_features(snapshot: ClusterSnapshot, power_model: PowerModel | None = None) -> np.ndarray:
    """(nodes, len(NODE_FEATURE_NAMES)) float64, finite: one row per node.

    Fractions are of the node's own allocatable capacity (1 for a zero-capacity node, which
    nothing fits); ``*_share`` columns are relative to the largest node or the largest peak
    wattage in the cluster, so rows compare across node sizes and the policy transfers between
    clusters. Unknown usage counts as the requested amount, as in :mod:`thrifty.energy`.
    """
    nodes = snapshot.nodes
    power = power_model or PowerModel()
    energy = _node_energy(nodes, power)
    cpu_capacity, memory_capacity = nodes.cpu_capacity_millicores, nodes.memory_capacity_bytes
    cpu_usage = _estimated_cpu_usage(nodes)
    memory_usage = np.where(
        np.isnan(nodes.memory_usage_bytes), nodes.memory_requested_bytes, nodes.memory_usage_bytes
    )
    cpu_unit, memory_unit = _largest(cpu_capacity), _largest(memory_capacity)
    pods = snapshot.pods_per_node().astype(float)
    cores = cpu_capacity / 1000.0
    columns = {
        "cpu_requested_fraction": _fraction(nodes.cpu_requested_millicores, cpu_capacity),
        "memory_requested_fraction": _fraction(nodes.memory_requested_bytes, memory_capacity),
        "cpu_used_fraction": _fraction(cpu_usage, cpu_capacity),
        "memory_used_fraction": _fraction(memory_usage, memory_capacity),
        "usage_known": (
            np.isfinite(nodes.cpu_usage_millicores) & np.isfinite(nodes.memory_usage_bytes)
        ).astype(float),
        "cpu_free_share": np.maximum(nodes.cpu_free_millicores, 0.0) / cpu_unit,
        "memory_free_share": np.maximum(nodes.memory_free_bytes, 0.0) / memory_unit,
        "cpu_capacity_share": np.maximum(cpu_capacity, 0.0) / cpu_unit,
        "memory_capacity_share": np.maximum(memory_capacity, 0.0) / memory_unit,
        "pod_count": pods,
        # An empty node can go to standby; the first pod placed there keeps it awake.
        "empty": (pods == 0).astype(float),
        "schedulable": np.asarray(nodes.schedulable, dtype=float),
        "standby": np.asarray(nodes.standby, dtype=float),
        "idle_watts_share": energy.idle / energy.reference,
        "peak_watts_share": energy.peak / energy.reference,
        "standby_watts_share": energy.standby / energy.reference,
        "wake_watts_share": np.where(nodes.standby, energy.idle - energy.standby, 0.0) / energy.reference,
        "current_watts_share": energy.current / energy.reference,
        "marginal_watts_per_core": _marginal_watts_per_core(nodes, power, cpu_usage),
        "peak_watts_per_core": np.where(cores > 0, energy.peak / np.where(cores > 0, cores, 1.0), 0.0),
    }
    return stack(columns, NODE_FEATURE_NAMES, len(nodes))


def placement_observation(
    snapshot: ClusterSnapshot,
    pod_row: int,
    *,
    power_model: PowerModel | None = None,
    node_feature_matrix: np.ndarray | None = None,
    pods_features: ContainerFeatures | None = None,
    pod_cache: PodFeatureCache | None = None,
) -> dict[str, np.ndarray]:
    """Everything the placement policy sees to place pod ``pod_row`` of ``snapshot.pods``.

    Args:
        snapshot: the cluster now. If the pod is already bound, its requests still count on
            its node (this describes moving it as placing a copy).
        pod_row: row of the pod in ``snapshot.pods``.
        power_model: energy model; the default classes when None.
        node_feature_matrix: ``node_features(snapshot, power_model)`` when the caller already
            has it (placing many pods against one snapshot).
        pods_features: ``pod_features(snapshot)`` for all pods, likewise; otherwise only this
            pod and its workload's other pods are computed.
        pod_cache: where those rows are kept between calls (placing a burst of pods one by
            one); ignored when ``pods_features`` is given.

    Returns:
        ``node_rows``: float64 (N, len(PLACEMENT_ROW_NAMES)), finite, one row per node;
        ``mask``: bool (N,), True where the pod may go: the node is schedulable, has
        capacity, and its free (unrequested) CPU and memory hold the pod's requests. A node in
        standby is allowed; waking it shows up in ``placement_watts_share``;
        ``node_features`` (N, F_node), ``pod_features`` (F_pod,) and ``pair_features``
        (N, F_pair): the three blocks of ``node_rows``.
    """
    nodes, pods = snapshot.nodes, snapshot.pods
    if not 0 <= pod_row < len(pods):
        raise IndexError(f"pod_row {pod_row} out of range for {len(pods)} pods")
    power = power_model or PowerModel()
    node_block = node_features(snapshot, power) if node_feature_matrix is None else node_feature_matrix
    expected_shape = (len(nodes), len(NODE_FEATURE_NAMES))
    if node_block.shape != expected_shape:
        raise ValueError(f"node_feature_matrix: expected shape {expected_shape}, got {node_block.shape}")
    pod_vector, expected_cpu = _pod_vector(snapshot, pod_row, pods_features, pod_cache)
    cpu_request = pods.cpu_request_millicores[pod_row]
    memory_request = pods.memory_request_bytes[pod_row]
    pair_block = _pair_features(snapshot, pod_row, expected_cpu, power, _node_energy(nodes, power).reference)
    mask = (
        np.asarray(nodes.schedulable, dtype=bool)
        & (nodes.cpu_capacity_millicores > 0)
        & (nodes.memory_capacity_bytes > 0)
        & (cpu_request <= nodes.cpu_free_millicores)
        & (memory_request <= nodes.memory_free_bytes)
    )
    node_rows = np.hstack(
        [node_block, np.broadcast_to(pod_vector, (len(nodes), len(pod_vector))), pair_block]
    )
    return {
        "node_rows": node_rows,
        "mask": mask,
        "node_features": node_block,
        "pod_features": pod_vector,
        "pair_features": pair_block,
    }


def _pod_vector(
    snapshot: ClusterSnapshot, pod_row: int, pods_features: ContainerFeatures | None,
    pod_cache: PodFeatureCache | None,
) -> tuple[np.ndarray, float]:
    """The pod's own (POD_FEATURE_NAMES,) vector and the CPU (millicores) it is expected to use.

    A new replica has no history yet, but its workload's other pods do, and it will behave as
    they do: without history of its own, the pod takes the mean of its siblings' rows that have
    some (and ``pod_features_from_siblings`` is 1). The expected CPU is the pod's mean usage when
    known, its request otherwise.
    """
    pods = snapshot.pods
    workload = pods.workload_index[pod_row]
    others = np.arange(len(pods)) != pod_row
    siblings: np.ndarray | list[int] = (
        np.flatnonzero((pods.workload_index == workload) & others) if workload != NO_WORKLOAD else []
    )
    rows = np.concatenate([[pod_row], siblings]).astype(np.int64)
    if pods_features is not None:
        chosen = ContainerFeatures(pods_features.matrix[rows])
    elif pod_cache is not None:
        chosen = pod_cache.features(snapshot, rows)
    else:
        chosen = pod_features(snapshot, rows)
    history = chosen.has_history
    informed = chosen.matrix[1:][history[1:]]
    from_siblings = not history[0] and len(informed) > 0
    # Siblings share the pod's workload, so their mean context columns are the pod's own.
    observed = informed.mean(axis=0) if from_siblings else chosen.matrix[0]

    cpu_unit = _largest(snapshot.nodes.cpu_capacity_millicores)
    memory_unit = _largest(snapshot.nodes.memory_capacity_bytes)
    cpu_request = float(pods.cpu_request_millicores[pod_row])
    vector = np.concatenate(
        [
            [
                cpu_request / cpu_unit,
                float(pods.memory_request_bytes[pod_row]) / memory_unit,
                float(from_siblings),
            ],
            observed,
        ]
    )
    cpu_known = observed[CONTAINER_OBSERVATION_NAMES.index("cpu_has_data")] > 0
    expected_cpu = (
        observed[CONTAINER_OBSERVATION_NAMES.index("cpu_mean_millicores")] if cpu_known else cpu_request
    )
    return np.nan_to_num(vector, nan=0.0, posinf=0.0, neginf=0.0), float(np.nan_to_num(expected_cpu))


def _pair_features(
    snapshot: ClusterSnapshot, pod_row: int, expected_cpu: float, power: PowerModel, watts_unit: float
) -> np.ndarray:
    """(nodes, len(PAIR_FEATURE_NAMES)): dependency traffic, fit and energy cost per node."""
    nodes, pods = snapshot.nodes, snapshot.pods
    n_nodes = len(nodes)
    traffic = _dependency_traffic(snapshot, pod_row)
    total_traffic = traffic.sum()
    usage = _estimated_cpu_usage(nodes)
    awake = replace(nodes, standby=np.zeros(n_nodes, dtype=bool))
    # Includes waking a node from standby: current watts are standby watts there.
    added_watts = power.node_watts(awake, usage + max(expected_cpu, 0.0)) - power.node_watts(nodes)
    columns = {
        "dependency_traffic": traffic,
        "dependency_traffic_fraction": traffic / total_traffic if total_traffic > 0 else np.zeros(n_nodes),
        "cpu_fit_fraction": _fit(pods.cpu_request_millicores[pod_row], nodes.cpu_free_millicores),
        "memory_fit_fraction": _fit(pods.memory_request_bytes[pod_row], nodes.memory_free_bytes),
        "placement_watts_share": added_watts / watts_unit,
    }
    return stack(columns, PAIR_FEATURE_NAMES, n_nodes)


def _dependency_traffic(snapshot: ClusterSnapshot, pod_row: int) -> np.ndarray:
    """(nodes,) sum of the dependency weights from the pod's workload to the pods on each node.

    Equals ``adjacency(W)[w] @ snapshot.workload_pods_per_node()`` for the pod's workload w, but
    walks the pods once instead of building two dense workload-sized matrices.
    """
    nodes, pods, workloads = snapshot.nodes, snapshot.pods, snapshot.workloads
    weights = neighbour_weights(snapshot.dependencies, len(workloads), int(pods.workload_index[pod_row]))
    bound = (pods.node_index >= 0) & (pods.workload_index >= 0)
    return np.bincount(
        pods.node_index[bound], weights=weights[pods.workload_index[bound]], minlength=len(nodes)
    ).astype(float)


def _fit(request: float, free: np.ndarray) -> np.ndarray:
    """request / free room in [0, FIT_CAP]: the share of the node's free room the pod takes."""
    if request <= 0:
        return np.zeros(free.shape)
    roomy = free > 0
    return np.where(roomy, np.minimum(request / np.where(roomy, free, 1.0), FIT_CAP), FIT_CAP)
