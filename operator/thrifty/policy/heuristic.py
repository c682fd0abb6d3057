"""The heuristic policy: the default until a trained policy is loaded, and the fallback after.

Placement packs onto powered-on nodes towards a target utilisation (like Trimaran's
TargetLoadPacking), avoids waking nodes in standby, and prefers nodes that already hold the
workload's dependencies. Sizing scales on latency against the SLO when it is known and on CPU
utilisation of requests otherwise (the HPA rule), and sizes requests on usage percentiles with a
fixed headroom, more after throttling or an OOM kill.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from thrifty import __version__
from thrifty.actions import CPU_HEADROOMS, MEMORY_HEADROOMS, REPLICA_DELTAS, SizingProposal, decode_sizing
from thrifty.policy.base import PolicyInfo
from thrifty.snapshot import ClusterSnapshot


@dataclass(frozen=True, kw_only=True)
class HeuristicConfig:
    """Tuning of the heuristic policy."""

    target_cpu_utilisation: float = 0.7
    """Node CPU fraction (requests, or usage where known) that placement packs towards."""
    standby_penalty: float = 0.5
    """Score taken off a node in standby: waking it costs its idle power."""
    dependency_bonus: float = 0.6
    """Score added per unit of dependency weight already on the node."""
    scale_out_latency_ratio: float = 1.0
    """p95 latency / SLO above which a replica is added."""
    scale_out_fast_latency_ratio: float = 1.5
    """p95 latency / SLO above which two replicas are added."""
    scale_in_latency_ratio: float = 0.6
    """p95 latency / SLO below which one replica may go, if CPU utilisation is low too."""
    target_pod_cpu_utilisation: float = 0.7
    """Pod CPU usage / request that the HPA-style rule aims for when latency is unknown."""
    utilisation_tolerance: float = 0.1
    """The HPA's tolerance: no change while usage/target is within 1 +/- this."""
    cpu_headroom: float = 0.15
    """Usual CPU headroom over the p95 (one of ``actions.CPU_HEADROOMS``)."""
    cpu_headroom_throttled: float = 0.3
    """CPU headroom after throttling was seen."""
    memory_headroom: float = 0.2
    """Usual memory headroom over the peak (one of ``actions.MEMORY_HEADROOMS``)."""
    memory_headroom_after_oom: float = 0.6
    """Memory headroom after an OOM kill."""


class HeuristicPolicy:
    """Rule-based placement and sizing; see the module docstring."""

    def __init__(self, config: HeuristicConfig | None = None) -> None:
        self.config = config or HeuristicConfig()
        self.info = PolicyInfo(name="heuristic", version=__version__, backend="heuristic")

    def score_nodes(self, snapshot: ClusterSnapshot, pod: int) -> np.ndarray:
        cfg = self.config
        nodes, pods = snapshot.nodes, snapshot.pods
        capacity = np.maximum(nodes.cpu_capacity_millicores, 1.0)
        load = np.where(
            np.isnan(nodes.cpu_usage_millicores),
            nodes.cpu_requested_millicores,
            np.maximum(nodes.cpu_usage_millicores, nodes.cpu_requested_millicores),
        )
        after = (load + pods.cpu_request_millicores[pod]) / capacity
        # Rises linearly up to the target, then falls steeply: pack, but not into contention.
        packing = np.where(after <= cfg.target_cpu_utilisation, after / cfg.target_cpu_utilisation,
                           1.0 - 3.0 * (after - cfg.target_cpu_utilisation))
        score = packing - cfg.standby_penalty * nodes.standby
        return score + cfg.dependency_bonus * dependency_weight_per_node(snapshot, pod)

    def size(self, snapshot: ClusterSnapshot) -> SizingProposal:
        return decode_sizing(snapshot, self.actions(snapshot))

    def actions(self, snapshot: ClusterSnapshot) -> np.ndarray:
        """(workloads, 3) discrete sizing actions; also the teacher for imitation pre-training."""
        cfg = self.config
        workloads = snapshot.workloads
        n = len(workloads)
        actions = np.zeros((n, 3), dtype=np.int64)
        utilisation = pod_cpu_utilisation(snapshot)
        throttled, oomed = recent_trouble(snapshot)
        ratio = workloads.latency_p95_seconds / workloads.slo_latency_p95_seconds
        for w in range(n):
            actions[w, 0] = REPLICA_DELTAS.index(self._replica_delta(ratio[w], utilisation[w], workloads.replicas[w]))
            actions[w, 1] = CPU_HEADROOMS.index(cfg.cpu_headroom_throttled if throttled[w] else cfg.cpu_headroom)
            actions[w, 2] = MEMORY_HEADROOMS.index(cfg.memory_headroom_after_oom if oomed[w] else cfg.memory_headroom)
        return actions

    def _replica_delta(self, latency_ratio: float, utilisation: float, replicas: int) -> int:
        cfg = self.config
        if np.isfinite(latency_ratio):
            if latency_ratio > cfg.scale_out_fast_latency_ratio:
                return 2
            if latency_ratio > cfg.scale_out_latency_ratio:
                return 1
            if latency_ratio < cfg.scale_in_latency_ratio and (
                not np.isfinite(utilisation) or utilisation < cfg.target_pod_cpu_utilisation
            ):
                return -1
            return 0
        if not np.isfinite(utilisation) or replicas <= 0:
            return 0
        ratio = utilisation / cfg.target_pod_cpu_utilisation
        if abs(ratio - 1.0) <= cfg.utilisation_tolerance:
            return 0
        desired = int(np.ceil(replicas * ratio))
        return int(np.clip(desired - replicas, min(REPLICA_DELTAS), max(REPLICA_DELTAS)))


def dependency_weight_per_node(snapshot: ClusterSnapshot, pod: int) -> np.ndarray:
    """(nodes,) summed dependency weight between the pod's workload and the pods on each node.

    A node holding two pods of a dependency of weight 0.8 scores 1.6. Zero for a pod of no
    RLWorkload.
    """
    workload = snapshot.pods.workload_index[pod]
    if workload < 0 or len(snapshot.dependencies) == 0:
        return np.zeros(len(snapshot.nodes))
    weights = snapshot.dependencies.adjacency(len(snapshot.workloads))[workload]
    return weights @ snapshot.workload_pods_per_node()


def pod_cpu_utilisation(snapshot: ClusterSnapshot) -> np.ndarray:
    """(workloads,) mean CPU usage / request over the workload's pods with known usage (NaN if none)."""
    pods = snapshot.pods
    mask = (pods.workload_index >= 0) & np.isfinite(pods.cpu_usage_millicores) & (pods.cpu_request_millicores > 0)
    n = len(snapshot.workloads)
    usage = np.bincount(pods.workload_index[mask], weights=pods.cpu_usage_millicores[mask], minlength=n)
    request = np.bincount(pods.workload_index[mask], weights=pods.cpu_request_millicores[mask], minlength=n)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(request > 0, usage / request, np.nan)


def recent_trouble(snapshot: ClusterSnapshot) -> tuple[np.ndarray, np.ndarray]:
    """bool (workloads,) twice: any container throttled, any container OOM-killed in the window."""
    containers = snapshot.containers
    n = len(snapshot.workloads)
    mask = containers.workload_index >= 0
    index = containers.workload_index[mask]
    throttled = np.bincount(index, weights=containers.throttled_periods_total[mask], minlength=n) > 0
    oomed = np.bincount(index, weights=containers.oom_kills_total[mask], minlength=n) > 0
    return throttled, oomed
