"""What both serving backends of a trained policy share: features in, greedy actions out.

A backend supplies the two network evaluations; the features, the masking and the decoding of
sizing actions are the same code for both, so they can only differ in the networks' arithmetic.
"""

from __future__ import annotations

import numpy as np

from thrifty.actions import SizingProposal, decode_sizing
from thrifty.energy import PowerModel
from thrifty.features import PodFeatureCache, node_features, placement_observation, workload_features
from thrifty.policy.base import PolicyInfo
from thrifty.snapshot import ClusterSnapshot


class RowPolicy:
    """A policy whose networks score node rows and workload rows (see :mod:`thrifty.policy.network`)."""

    info: PolicyInfo
    power: PowerModel

    def placement_logits(self, rows: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """(nodes,) logits for placement observation rows."""
        raise NotImplementedError

    def sizing_actions(self, rows: np.ndarray) -> np.ndarray:
        """(workloads, 3) greedy sizing actions for workload feature rows."""
        raise NotImplementedError

    _pod_cache: PodFeatureCache | None = None

    def score_nodes(self, snapshot: ClusterSnapshot, pod: int) -> np.ndarray:
        if self._pod_cache is None:
            self._pod_cache = PodFeatureCache()
        observation = placement_observation(
            snapshot, pod, power_model=self.power, node_feature_matrix=node_features(snapshot, self.power),
            pod_cache=self._pod_cache)
        return self.placement_logits(observation["node_rows"], observation["mask"])

    def size(self, snapshot: ClusterSnapshot) -> SizingProposal:
        return decode_sizing(snapshot, self.sizing_actions(workload_features(snapshot, self.power)))
