"""Workload rows for sizing: how many replicas, and how large?

One row per RLWorkload, for the horizontal and vertical decisions that one policy takes in one
step: load and latency against the SLO, where the replica count sits between its bounds, how
much of the requested CPU and memory is used, the workload's throttling and OOM history, its
energy, and the mean behaviour of its containers.
"""

from __future__ import annotations

import numpy as np

from thrifty.energy import PowerModel
from thrifty.features.columns import stack
from thrifty.features.container import FEATURE_NAMES, SLACK_FLOOR, container_features
from thrifty.features.context import SERVICE_FEATURE_NAMES, ContainerFeatures, from_snapshot, service_columns
from thrifty.snapshot import ClusterSnapshot, WorkloadTable

WORKLOAD_FEATURE_NAMES: tuple[str, ...] = (
    SERVICE_FEATURE_NAMES
    + (
        "replicas",
        "replicas_position",
        "at_min_replicas",
        "at_max_replicas",
        "cpu_request_utilisation",
        "memory_request_utilisation",
        "usage_known",
        "throttled_periods_per_hour",
        "oom_kills_per_hour",
        "watts",
        "watts_per_replica",
        "container_count",
        "history_fraction",
    )
    + tuple(f"container_mean_{name}" for name in FEATURE_NAMES)
)
"""Columns of :func:`workload_features`."""


def workload_features(
    snapshot: ClusterSnapshot,
    power_model: PowerModel | None = None,
    containers_features: ContainerFeatures | None = None,
) -> np.ndarray:
    """(workloads, len(WORKLOAD_FEATURE_NAMES)) float64, finite: one row per RLWorkload.

    Args:
        snapshot: the cluster now.
        power_model: for the attributed ``watts``; the default classes when None.
        containers_features: ``from_snapshot(snapshot)`` when the caller already has it.
    """
    workloads = snapshot.workloads
    observed = from_snapshot(snapshot) if containers_features is None else containers_features
    columns = service_columns(workloads, snapshot.dependencies, np.arange(len(workloads)))
    columns.update(_replica_columns(workloads))
    columns.update(_request_utilisation(snapshot))
    columns.update(_container_columns(snapshot, observed))
    watts = (power_model or PowerModel()).workload_watts(snapshot)
    columns["watts"] = watts
    columns["watts_per_replica"] = watts / np.maximum(workloads.replicas, 1.0)
    return stack(columns, WORKLOAD_FEATURE_NAMES, len(workloads))


def _replica_columns(workloads: WorkloadTable) -> dict[str, np.ndarray]:
    """The replica count and where it sits between its bounds."""
    replicas = workloads.replicas.astype(float)
    low, high = workloads.replicas_min.astype(float), workloads.replicas_max.astype(float)
    span = high - low
    return {
        "replicas": replicas,
        # 0 when min == max: there is nothing to choose.
        "replicas_position": np.where(
            span > 0, np.clip((replicas - low) / np.where(span > 0, span, 1.0), 0.0, 1.0), 0.0
        ),
        "at_min_replicas": (replicas <= low).astype(float),
        "at_max_replicas": (replicas >= high).astype(float),
    }


def _container_columns(snapshot: ClusterSnapshot, observed: ContainerFeatures) -> dict[str, np.ndarray]:
    """Throttle and OOM totals, container counts, and the mean behaviour of each workload's containers."""
    n_workloads = len(snapshot.workloads)
    in_workload = snapshot.containers.workload_index >= 0
    owner = snapshot.containers.workload_index[in_workload]

    def total(name: str) -> np.ndarray:
        return np.bincount(owner, weights=observed.column(name)[in_workload], minlength=n_workloads)

    count = np.bincount(owner, minlength=n_workloads).astype(float)
    # New replicas have no history yet; averaging their defaults in would dilute the others.
    informed = observed.has_history[in_workload]
    informed_count = np.bincount(owner[informed], minlength=n_workloads).astype(float)
    columns = {
        "throttled_periods_per_hour": total("cpu_throttled_periods_per_hour"),
        "oom_kills_per_hour": total("oom_kills_per_hour"),
        "container_count": count,
        "history_fraction": np.where(count > 0, informed_count / np.maximum(count, 1.0), 0.0),
    }
    means = _mean_behaviour(observed.behaviour[in_workload][informed], owner[informed], informed_count)
    for position, name in enumerate(FEATURE_NAMES):
        columns[f"container_mean_{name}"] = means[:, position]
    return columns


def _request_utilisation(snapshot: ClusterSnapshot) -> dict[str, np.ndarray]:
    """Current usage over requests, summed over each workload's pods whose usage is known.

    The ratio HPA scales on. No known usage: 1, "as requested", which asks for no change;
    ``usage_known`` (the fraction of pods with known CPU and memory usage) flags it.
    """
    pods, n_workloads = snapshot.pods, len(snapshot.workloads)
    known = np.isfinite(pods.cpu_usage_millicores) & np.isfinite(pods.memory_usage_bytes)
    member = pods.workload_index >= 0
    counted = member & known
    owner = pods.workload_index[counted]

    def total(values: np.ndarray) -> np.ndarray:
        return np.bincount(owner, weights=values[counted], minlength=n_workloads)

    pod_count = np.bincount(pods.workload_index[member], minlength=n_workloads)
    known_count = np.bincount(owner, minlength=n_workloads)
    any_known = known_count > 0
    return {
        "cpu_request_utilisation": np.where(
            any_known, _utilisation(total(pods.cpu_usage_millicores), total(pods.cpu_request_millicores)), 1.0
        ),
        "memory_request_utilisation": np.where(
            any_known, _utilisation(total(pods.memory_usage_bytes), total(pods.memory_request_bytes)), 1.0
        ),
        "usage_known": np.where(pod_count > 0, known_count / np.maximum(pod_count, 1), 0.0),
    }


def _utilisation(usage: np.ndarray, request: np.ndarray) -> np.ndarray:
    """usage / request in [0, 1 - SLACK_FLOOR], the mirror of the containers' slack.

    No request: the cap if anything is used (BestEffort), 0 if not.
    """
    positive = request > 0
    ratio = usage / np.where(positive, request, 1.0)
    unrequested = np.where(usage > 0, 1.0 - SLACK_FLOOR, 0.0)
    return np.clip(np.where(positive, ratio, unrequested), 0.0, 1.0 - SLACK_FLOOR)


def _mean_behaviour(behaviour: np.ndarray, owner: np.ndarray, count: np.ndarray) -> np.ndarray:
    """(workloads, len(FEATURE_NAMES)) mean of the given container rows per workload.

    A workload without rows (scaled to zero, or no history yet) gets the row of a container
    with no history, no request and no limit: the documented defaults.
    """
    sums = np.zeros((len(count), behaviour.shape[1]))
    np.add.at(sums, owner, behaviour)
    no_history = container_features(np.zeros((1, 0)), np.zeros((1, 0)), 1.0, np.nan, np.inf, np.nan, np.inf)[
        0
    ]
    has_containers = count > 0
    return np.where(has_containers[:, None], sums / np.maximum(count, 1.0)[:, None], no_history)
