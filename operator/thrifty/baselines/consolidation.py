"""Consolidation as platform teams run it: the descheduler and Karpenter.

Both decide, from snapshots, which pods to evict so that nodes can empty; the bench harness
evicts them (their ReplicaSets recreate them Pending and the baseline scheduler places them in
the same step), and an emptied node goes to standby after ``standby_after_idle_seconds``, which
stands for its removal.

* :class:`HighNodeUtilization`: the descheduler's ``HighNodeUtilization`` plugin
  (``kubernetes-sigs/descheduler``, ``pkg/framework/plugins/nodeutilization/
  highnodeutilization.go``). Every ``interval_seconds`` (the descheduler's
  ``--descheduling-interval``), a node whose requested CPU and memory are both below the
  thresholds (fractions of allocatable) is *underutilized*; the others with room are targets.
  Evictable pods (those with a controller: the workloads' pods, not the background's, as the
  default evictor refuses bare pods) of the underutilized nodes are evicted, least utilised node
  first, while the targets' free CPU and memory still hold them (the plugin's
  ``continueEvictionCond``). Meant to run with a ``MostAllocated`` scheduler, which packs the
  evicted pods onto the targets, and the Cluster Autoscaler, which removes what empties.
* :class:`KarpenterConsolidation`: Karpenter's ``consolidationPolicy: WhenEmptyOrUnderutilized``
  (``kubernetes-sigs/karpenter``, ``pkg/controllers/disruption/``), single-node deletion. A node
  is a candidate once ``consolidate_after_seconds`` have passed since a pod last landed on it
  (``consolidateAfter``); unlike the Cluster Autoscaler there is no utilisation threshold: any
  node whose pods all fit on the other nodes is deleted, the cheapest to disrupt first (fewest
  pods), one at a time. A node with a pod without a controller is not a candidate (such a pod
  would not be recreated). The fixed inventory of the simulator has no cheaper node type to
  launch, so replacement and multi-node consolidation are not modelled; pending pods that fit
  nowhere wake a removed node, as Karpenter launches one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from thrifty.baselines.cluster_autoscaler import ClusterAutoscaler
from thrifty.policy.consolidation import requested_fractions as _requested_fractions
from thrifty.snapshot import ClusterSnapshot


@dataclass
class HighNodeUtilization:
    """The descheduler plugin of the module docstring; :meth:`plan` names the pods to evict."""

    cpu_threshold_fraction: float = 0.2
    """Requested CPU / allocatable under which a node is underutilized (the plugin's
    ``thresholds.cpu``, 20 in its documented example)."""
    memory_threshold_fraction: float = 0.2
    """The same for memory (``thresholds.memory``)."""
    interval_seconds: float = 300.0
    """Seconds between two descheduling runs (``--descheduling-interval``)."""
    last_run_seconds: float = field(default=-np.inf)
    """Simulation time of the last run."""

    def plan(self, snapshot: ClusterSnapshot) -> tuple[int, ...]:
        """Pod rows to evict now (none between runs)."""
        now = snapshot.time_seconds
        if now - self.last_run_seconds < self.interval_seconds:
            return ()
        self.last_run_seconds = now
        nodes, pods = snapshot.nodes, snapshot.pods
        cpu, memory = _requested_fractions(snapshot)
        awake = nodes.schedulable & ~nodes.standby & (nodes.cpu_capacity_millicores > 0)
        under = awake & (cpu < self.cpu_threshold_fraction) & (memory < self.memory_threshold_fraction)
        targets = awake & ~under
        room_cpu = float(np.maximum(nodes.cpu_free_millicores[targets], 0.0).sum())
        room_memory = float(np.maximum(nodes.memory_free_bytes[targets], 0.0).sum())
        # Evictable pods of the underutilized nodes, least utilised node first (then by index),
        # in row order within a node; each is evicted while the room left before it holds it.
        # The room left is a running difference in that order (``subtract.accumulate`` is
        # sequential), so it equals the one-pod-at-a-time loop's to the last bit.
        rank = np.full(len(nodes), -1, dtype=np.int64)
        under_nodes = np.flatnonzero(under)
        rank[under_nodes[np.lexsort((under_nodes, np.maximum(cpu, memory)[under_nodes]))]] = np.arange(len(under_nodes))
        evictable = np.flatnonzero((pods.node_index >= 0) & (pods.workload_index >= 0))
        evictable = evictable[rank[pods.node_index[evictable]] >= 0]
        evictable = evictable[np.argsort(rank[pods.node_index[evictable]], kind="stable")]
        need_cpu = pods.cpu_request_millicores[evictable].astype(float)
        need_memory = pods.memory_request_bytes[evictable].astype(float)
        left_cpu = np.subtract.accumulate(np.concatenate([[room_cpu], need_cpu]))[:-1]
        left_memory = np.subtract.accumulate(np.concatenate([[room_memory], need_memory]))[:-1]
        blocked = np.flatnonzero((need_cpu > left_cpu) | (need_memory > left_memory))
        stop = int(blocked[0]) if len(blocked) else len(evictable)
        return tuple(evictable[:stop].tolist())


@dataclass
class KarpenterConsolidation(ClusterAutoscaler):
    """Karpenter's consolidation of the module docstring, in the Cluster Autoscaler's place.

    Reuses the autoscaler's bookkeeping (taints while draining, scale-up on a removed node,
    first-fit check that a node's pods fit elsewhere) with Karpenter's rules: no utilisation
    threshold, ``consolidate_after_seconds`` since the node last received a pod, fewest pods
    first, no delay after a scale-up.
    """

    utilisation_threshold: float = np.inf
    unneeded_seconds: float = 0.0
    delay_after_scale_up_seconds: float = 0.0
    consolidate_after_seconds: float = 0.0
    """Karpenter's ``consolidateAfter``: quiet time (no pod scheduled to the node) before it may
    be consolidated."""
    pods_seen: dict[str, int] = field(default_factory=dict)
    last_pod_added: dict[str, float] = field(default_factory=dict)

    def plan(self, snapshot: ClusterSnapshot) -> tuple[int, ...]:
        now = snapshot.time_seconds
        counts = snapshot.pods_per_node()
        for name, count in zip(snapshot.nodes.names, counts.tolist(), strict=True):
            if count > self.pods_seen.get(name, 0):
                self.last_pod_added[name] = now
            self.pods_seen[name] = count
        return super().plan(snapshot)

    def _ripe(self, snapshot: ClusterSnapshot, unneeded: dict[str, float]) -> list[str]:
        now = snapshot.time_seconds
        return [n for n in unneeded if now - self.last_pod_added.get(n, -np.inf) >= self.consolidate_after_seconds]

    def _disruption_key(self, snapshot: ClusterSnapshot, utilisation: np.ndarray, node: int) -> tuple[float, str]:
        return float(snapshot.pods_per_node()[node]), snapshot.nodes.names[node]
