"""The Cluster Autoscaler next to the baseline schedulers: node removal and scale-up.

Baseline clusters do not pay for idle nodes either. Upstream ``kubernetes/autoscaler``
``cluster-autoscaler/core/scaledown/`` (``eligibility/eligibility.go``,
``unneeded/nodes.go``, ``planner/planner.go``) and ``simulator/``, with the default flags:

* **Scale-down.** Every loop, a node whose requested CPU and memory are both below
  ``utilisation_threshold`` (50 %, ``--scale-down-utilization-threshold``; the larger of the two
  ratios counts) is *unneeded* if every pod on it is managed by a controller and fits, by its
  requests, on another node that stays; after ``unneeded_seconds`` (10 min,
  ``--scale-down-unneeded-time``) it is drained: tainted ``ToBeDeletedByClusterAutoscaler`` so
  nothing new lands there, its pods evicted and recreated by their ReplicaSet, then removed (in
  the simulator: tainted until it enters standby, 10 min after emptying, which costs the
  baseline those 10 minutes of idle power that upstream's immediate deletion saves). At
  most ``max_drain_parallelism`` (1) non-empty node drains at a time, none within
  ``delay_after_scale_up_seconds`` (10 min) of a scale-up. An empty node is removed after the
  same 10 minutes, which the simulator does by itself (``standby_after_idle_seconds``).
* **Scale-up.** A removed node (standby in the simulator) is not a scheduling candidate; when
  no remaining node fits a pod it stays Pending and the autoscaler adds a node back.
  :class:`ClusterAutoscalerNodes` gives a placement baseline that view by scoring standby and
  tainted nodes far below the others.

Pods without a controller (the background pods of the pod stream) block a node's removal, as
upstream by default. The autoscaler's own simulation of where pods would go is first-fit by
requests, not a full scheduler run.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from thrifty.actions import SizingProposal
from thrifty.policy.base import Policy
from thrifty.snapshot import ClusterSnapshot

STANDBY_PENALTY = 1e6
"""Taken off a removed (standby) node's score: more than any baseline's score range (a few
hundred points), so remaining nodes always come first."""
TAINTED_PENALTY = 2 * STANDBY_PENALTY
"""Taken off a node being drained: after standby nodes, as a NoSchedule taint keeps pods off."""


@dataclass
class ClusterAutoscaler:
    """Scale-down decisions from snapshots; the caller evicts the pods it names."""

    utilisation_threshold: float = 0.5
    unneeded_seconds: float = 600.0
    delay_after_scale_up_seconds: float = 600.0
    max_drain_parallelism: int = 1
    unneeded_since: dict[str, float] = field(default_factory=dict)
    tainted: set[str] = field(default_factory=set)
    last_scale_up: float = -np.inf

    def record_scale_up(self, time_seconds: float) -> None:
        """A pod went to a removed node: the autoscaler brought it back."""
        self.last_scale_up = time_seconds

    def tainted_mask(self, snapshot: ClusterSnapshot) -> np.ndarray:
        """bool (nodes,): nodes being drained."""
        return np.array([name in self.tainted for name in snapshot.nodes.names], dtype=bool)

    def _movable(self, snapshot: ClusterSnapshot, node: int, stays: np.ndarray) -> bool:
        """Whether every pod on ``node`` has a controller and fits, first-fit, on a staying node."""
        pods, nodes = snapshot.pods, snapshot.nodes
        mine = np.flatnonzero(pods.node_index == node)
        if np.any(pods.workload_index[mine] < 0):
            return False
        free_cpu = np.where(stays, nodes.cpu_free_millicores, -np.inf)
        free_memory = np.where(stays, nodes.memory_free_bytes, -np.inf)
        for p in mine[np.argsort(-pods.cpu_request_millicores[mine], kind="stable")]:
            fits = np.flatnonzero(
                (free_cpu >= pods.cpu_request_millicores[p]) & (free_memory >= pods.memory_request_bytes[p]))
            if len(fits) == 0:
                return False
            free_cpu[fits[0]] -= pods.cpu_request_millicores[p]
            free_memory[fits[0]] -= pods.memory_request_bytes[p]
        return True

    def plan(self, snapshot: ClusterSnapshot) -> tuple[int, ...]:
        """Pod rows to evict now (the pods of the node whose drain starts); usually none."""
        nodes, now = snapshot.nodes, snapshot.time_seconds
        occupied = snapshot.pods_per_node() > 0
        # A drained node is removed once empty (standby here); until then its taint keeps pods off.
        self.tainted = {n for n, off in zip(nodes.names, nodes.standby, strict=True) if n in self.tainted and not off}
        tainted = self.tainted_mask(snapshot)
        awake = nodes.schedulable & ~nodes.standby & (nodes.cpu_capacity_millicores > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            utilisation = np.maximum(nodes.cpu_requested_millicores / nodes.cpu_capacity_millicores,
                                     nodes.memory_requested_bytes / nodes.memory_capacity_bytes)
        candidates = awake & occupied & ~tainted & (utilisation < self.utilisation_threshold)
        stays = awake & ~tainted
        unneeded = set()
        for node in np.flatnonzero(candidates).tolist():
            others = stays.copy()
            others[node] = False
            if self._movable(snapshot, node, others):
                unneeded.add(nodes.names[node])
        self.unneeded_since = {n: self.unneeded_since.get(n, now) for n in unneeded}
        if now - self.last_scale_up < self.delay_after_scale_up_seconds:
            return ()
        if np.count_nonzero(tainted & occupied) >= self.max_drain_parallelism:
            return ()
        ripe = self._ripe(snapshot, self.unneeded_since)
        if not ripe:
            return ()
        position = {name: i for i, name in enumerate(nodes.names)}
        chosen = min(ripe, key=lambda n: self._disruption_key(snapshot, utilisation, position[n]))
        self.tainted.add(chosen)
        del self.unneeded_since[chosen]
        return tuple(np.flatnonzero(snapshot.pods.node_index == position[chosen]).tolist())


    def _ripe(self, snapshot: ClusterSnapshot, unneeded: dict[str, float]) -> list[str]:
        """Unneeded nodes that may be drained now: unneeded for ``unneeded_seconds``."""
        return [n for n, since in unneeded.items() if snapshot.time_seconds - since >= self.unneeded_seconds]

    def _disruption_key(self, snapshot: ClusterSnapshot, utilisation: np.ndarray, node: int) -> tuple[float, str]:
        """Order among ripe nodes, least first: the least utilised."""
        return float(utilisation[node]), snapshot.nodes.names[node]


class ClusterAutoscalerNodes:
    """``placement``, restricted to the nodes the Cluster Autoscaler keeps while one fits."""

    def __init__(self, placement: Policy, autoscaler: ClusterAutoscaler | None = None) -> None:
        self.placement = placement
        self.autoscaler = autoscaler
        self.info = placement.info

    def score_nodes(self, snapshot: ClusterSnapshot, pod: int) -> np.ndarray:
        scores = np.asarray(self.placement.score_nodes(snapshot, pod), dtype=float)
        scores = scores - STANDBY_PENALTY * snapshot.nodes.standby
        if self.autoscaler is not None:
            scores = scores - TAINTED_PENALTY * self.autoscaler.tainted_mask(snapshot)
        return scores

    def size(self, snapshot: ClusterSnapshot) -> SizingProposal:
        return self.placement.size(snapshot)
