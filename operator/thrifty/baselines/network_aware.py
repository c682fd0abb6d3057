"""Dependency-aware co-location, in the spirit of scheduler-plugins' NetworkOverhead.

Upstream: ``kubernetes-sigs/scheduler-plugins`` ``pkg/networkaware/networkoverhead/
networkoverhead.go`` (with the AppGroup and NetworkTopology CRDs). For each node it accumulates
a network cost over the already placed pods of the workloads the pod depends on: 0 for a pod on
the same node, the zone-to-zone cost otherwise, and ``MaxCost`` (100) when nodes carry no
zone or region labels, as in the simulator. ``NormalizeScore`` turns costs into scores over the
candidate nodes, lowest cost best::

    score = 100 - int(100 * (cost - min cost) / (max cost - min cost))

The example deployment adds the plugin with weight 5 to the default profile, so the total is
LeastAllocated + BalancedAllocation + ``network_weight`` x NetworkOverhead.

Adapted to Thrifty's model: a dependency's cost is multiplied by its weight from
``RLWorkload.spec.dependencies`` (AppGroup dependencies have no weight), and dependencies count
in both directions, because a call's traffic flows both ways. The plugin's Filter (drop a node
where more dependencies are violated than satisfied by ``maxNetworkCost``) is not modelled:
without zones every remote dependency violates it, which would leave most pods unschedulable.
"""

from __future__ import annotations

import numpy as np

from thrifty import __version__
from thrifty.baselines.kube_scheduler import KubeDefaultScoring
from thrifty.baselines.scoring import MAX_NODE_SCORE, KeepsSizes, as_generator, break_ties
from thrifty.policy.base import PolicyInfo
from thrifty.safety import feasible_nodes
from thrifty.snapshot import ClusterSnapshot

MAX_COST = 100
"""``networkawareutil.MaxCost``: cost of a dependency on another node without zone labels."""
DEFAULT_NETWORK_WEIGHT = 5
"""Weight of NetworkOverhead in the upstream example scheduler configuration."""


def dependency_costs(snapshot: ClusterSnapshot, pod: int) -> np.ndarray:
    """(nodes,) accumulated network cost of placing ``pod`` on each node (0: no dependency)."""
    workload = snapshot.pods.workload_index[pod]
    if workload < 0 or len(snapshot.dependencies) == 0:
        return np.zeros(len(snapshot.nodes))
    weights = snapshot.dependencies.adjacency(len(snapshot.workloads))[workload]
    per_node = snapshot.workload_pods_per_node()
    remote = per_node.sum(axis=1, keepdims=True) - per_node
    return MAX_COST * (weights @ remote)


def normalised_network_score(costs: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """int64 (nodes,): ``NormalizeScore`` over the candidate nodes (others get 0)."""
    scores = np.zeros(len(costs), dtype=np.int64)
    if not candidates.any():
        return scores
    low, high = costs[candidates].min(), costs[candidates].max()
    if low == 0 and high == 0:
        return scores
    if high == low:
        scores[candidates] = MAX_NODE_SCORE - (costs[candidates] - low).astype(np.int64)
    else:
        scaled = np.trunc(MAX_NODE_SCORE * (costs[candidates] - low) / (high - low))
        scores[candidates] = MAX_NODE_SCORE - scaled.astype(np.int64)
    return scores


class NetworkAwareScoring(KeepsSizes):
    """Default profile + ``network_weight`` x NetworkOverhead; proposes no sizing change."""

    def __init__(self, rng: np.random.Generator | int | None = None, *,
                 network_weight: int = DEFAULT_NETWORK_WEIGHT) -> None:
        if network_weight < 0:
            raise ValueError(f"NetworkAwareScoring.network_weight: must be >= 0, got {network_weight!r}")
        self.rng = as_generator(rng)
        self.network_weight = network_weight
        self.default_profile = KubeDefaultScoring(self.rng)
        self.info = PolicyInfo(name="network-aware", version=__version__, backend="baseline")

    def raw_scores(self, snapshot: ClusterSnapshot, pod: int) -> np.ndarray:
        """int64 (nodes,): the summed plugin scores, before tie-breaking."""
        pods = snapshot.pods
        candidates = feasible_nodes(snapshot, pods.cpu_request_millicores[pod], pods.memory_request_bytes[pod])
        network = normalised_network_score(dependency_costs(snapshot, pod), candidates)
        return self.default_profile.raw_scores(snapshot, pod) + self.network_weight * network

    def score_nodes(self, snapshot: ClusterSnapshot, pod: int) -> np.ndarray:
        return break_ties(self.raw_scores(snapshot, pod), self.rng)

