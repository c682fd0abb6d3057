"""kube-scheduler's resource scoring: the default profile and MostAllocated bin-packing.

Upstream: ``kubernetes/kubernetes`` ``pkg/scheduler/framework/plugins/noderesources/``
(``least_allocated.go``, ``most_allocated.go``, ``balanced_allocation.go``,
``resource_allocation.go``). Per node, with ``requested`` the node's requests *including the
pod being placed* and ``allocatable`` its capacity, integers throughout as upstream::

    LeastAllocated   per resource  (allocatable - requested) * 100 // allocatable   (0 if over)
    MostAllocated    per resource  min(requested, allocatable) * 100 // allocatable
    NodeResourcesFit               weighted mean of the per-resource scores (CPU 1, memory 1), //
    BalancedAllocation             int((1 - |f_cpu - f_memory| / 2) * 100),  f = min(requested / allocatable, 1)

The default profile sums NodeResourcesFit (LeastAllocated) and BalancedAllocation with weights
1 and 1. Bin-packing is the same profile with NodeResourcesFit's ``scoringStrategy`` set to
MostAllocated; BalancedAllocation stays enabled, as it does upstream unless disabled by hand.

Left out: the other default score plugins (ImageLocality, TaintToleration, NodeAffinity,
InterPodAffinity) have nothing to act on in the simulator; PodTopologySpread's default
constraints (spread a ReplicaSet's pods over hostnames) are omitted, which can only make the
default profile pack tighter than upstream, so it favours the baseline on energy.
"""

from __future__ import annotations

import numpy as np

from thrifty import __version__
from thrifty.baselines.scoring import (
    MAX_NODE_SCORE,
    KeepsSizes,
    allocatable,
    as_generator,
    break_ties,
    node_requests_with_pod,
    weighted_resource_score,
)
from thrifty.policy.base import PolicyInfo
from thrifty.snapshot import ClusterSnapshot


def least_allocated_score(requested: np.ndarray, capacity: np.ndarray) -> np.ndarray:
    """int64: ``(capacity - requested) * 100 // capacity``; 0 when over capacity or no capacity."""
    over = (requested > capacity) | (capacity <= 0)
    return np.where(over, 0, (capacity - requested) * MAX_NODE_SCORE // np.maximum(capacity, 1))


def most_allocated_score(requested: np.ndarray, capacity: np.ndarray) -> np.ndarray:
    """int64: ``min(requested, capacity) * 100 // capacity``; 0 without capacity."""
    return np.where(capacity > 0, np.minimum(requested, capacity) * MAX_NODE_SCORE // np.maximum(capacity, 1), 0)


def balanced_allocation_score(cpu_requested: np.ndarray, cpu_capacity: np.ndarray,
                              memory_requested: np.ndarray, memory_capacity: np.ndarray) -> np.ndarray:
    """int64: ``int((1 - std) * 100)`` with std of the CPU and memory fractions (capped at 1).

    A node without one of the two resources has a single fraction, so std 0 and score 100.
    """
    cpu_fraction = np.minimum(cpu_requested / np.maximum(cpu_capacity, 1), 1.0)
    memory_fraction = np.minimum(memory_requested / np.maximum(memory_capacity, 1), 1.0)
    both = (cpu_capacity > 0) & (memory_capacity > 0)
    std = np.where(both, np.abs(cpu_fraction - memory_fraction) / 2, 0.0)
    return np.trunc((1.0 - std) * MAX_NODE_SCORE).astype(np.int64)


def _fit_and_balance(snapshot: ClusterSnapshot, pod: int, fit_scorer, cpu_weight: int, memory_weight: int,
                     fit_weight: int, balanced_weight: int) -> np.ndarray:
    cpu_capacity, memory_capacity = allocatable(snapshot)
    cpu, memory = node_requests_with_pod(snapshot, pod, non_zero=True)
    fit = weighted_resource_score(
        [fit_scorer(cpu, cpu_capacity), fit_scorer(memory, memory_capacity)],
        [cpu_capacity, memory_capacity], [cpu_weight, memory_weight])
    plain_cpu, plain_memory = node_requests_with_pod(snapshot, pod, non_zero=False)
    balanced = balanced_allocation_score(plain_cpu, cpu_capacity, plain_memory, memory_capacity)
    return fit_weight * fit + balanced_weight * balanced


class KubeDefaultScoring(KeepsSizes):
    """kube-scheduler's default scoring: NodeResourcesFit (LeastAllocated) + BalancedAllocation.

    Spreads pods onto the least requested nodes. ``rng`` breaks ties between equal scores.
    Proposes no sizing change.
    """

    def __init__(self, rng: np.random.Generator | int | None = None, *, fit_weight: int = 1,
                 balanced_weight: int = 1, cpu_weight: int = 1, memory_weight: int = 1) -> None:
        self.rng = as_generator(rng)
        self.fit_weight, self.balanced_weight = fit_weight, balanced_weight
        self.cpu_weight, self.memory_weight = cpu_weight, memory_weight
        self.info = PolicyInfo(name="kube-default", version=__version__, backend="baseline")

    def raw_scores(self, snapshot: ClusterSnapshot, pod: int) -> np.ndarray:
        """int64 (nodes,): the summed plugin scores, before tie-breaking (0 to 200)."""
        return _fit_and_balance(snapshot, pod, least_allocated_score, self.cpu_weight, self.memory_weight,
                                self.fit_weight, self.balanced_weight)

    def score_nodes(self, snapshot: ClusterSnapshot, pod: int) -> np.ndarray:
        return break_ties(self.raw_scores(snapshot, pod), self.rng)


class MostAllocatedScoring(KeepsSizes):
    """Bin-packing: NodeResourcesFit with the MostAllocated strategy + BalancedAllocation.

    Packs pods onto the most requested nodes that still fit them. Proposes no sizing change.
    """

    def __init__(self, rng: np.random.Generator | int | None = None, *, fit_weight: int = 1,
                 balanced_weight: int = 1, cpu_weight: int = 1, memory_weight: int = 1) -> None:
        self.rng = as_generator(rng)
        self.fit_weight, self.balanced_weight = fit_weight, balanced_weight
        self.cpu_weight, self.memory_weight = cpu_weight, memory_weight
        self.info = PolicyInfo(name="most-allocated", version=__version__, backend="baseline")

    def raw_scores(self, snapshot: ClusterSnapshot, pod: int) -> np.ndarray:
        """int64 (nodes,): the summed plugin scores, before tie-breaking (0 to 200)."""
        return _fit_and_balance(snapshot, pod, most_allocated_score, self.cpu_weight, self.memory_weight,
                                self.fit_weight, self.balanced_weight)

    def score_nodes(self, snapshot: ClusterSnapshot, pod: int) -> np.ndarray:
        return break_ties(self.raw_scores(snapshot, pod), self.rng)


class PlacedByKubeScheduler:
    """Mixin for sizing-only baselines (HPA, VPA): their pods are placed by the default
    kube-scheduler profile, as they are in a cluster that runs them."""

    placement: KubeDefaultScoring

    def score_nodes(self, snapshot: ClusterSnapshot, pod: int) -> np.ndarray:
        return self.placement.score_nodes(snapshot, pod)
