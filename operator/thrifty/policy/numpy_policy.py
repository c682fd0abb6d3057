"""The trained policy served in-process with numpy: no ray, no torch at run time."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from thrifty.actions import SizingProposal, decode_sizing
from thrifty.energy import PowerModel
from thrifty.features import node_features, placement_observation, workload_features
from thrifty.policy.artefact import Artefact, load_artefact
from thrifty.policy.base import PolicyInfo
from thrifty.policy.network import greedy_sizing_actions, placement_logits, sizing_logits
from thrifty.snapshot import ClusterSnapshot


class NumpyPolicy:
    """Greedy actions of a trained artefact (see :mod:`thrifty.policy.artefact`)."""

    def __init__(self, artefact: Artefact, power_model: PowerModel | None = None) -> None:
        self.artefact = artefact
        self.power = power_model or PowerModel()
        self.info = PolicyInfo(
            name=artefact.name,
            version=artefact.version,
            backend="numpy",
            feature_schema_version=int(artefact.metadata["feature_schema_version"]),
        )

    @classmethod
    def load(cls, directory: str | Path) -> NumpyPolicy:
        """Load and validate an artefact directory (raises PolicyError)."""
        return cls(load_artefact(directory))

    def placement_logits(self, rows: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """(nodes,) logits for placement observation rows."""
        a = self.artefact
        return placement_logits(a.weights, a.hidden_layers, a.normalisers["placement"], rows, mask)

    def sizing_actions(self, rows: np.ndarray) -> np.ndarray:
        """(workloads, 3) greedy sizing actions for workload feature rows."""
        a = self.artefact
        return greedy_sizing_actions(sizing_logits(a.weights, a.hidden_layers, a.normalisers["sizing"], rows))

    def score_nodes(self, snapshot: ClusterSnapshot, pod: int) -> np.ndarray:
        observation = placement_observation(
            snapshot, pod, power_model=self.power, node_feature_matrix=node_features(snapshot, self.power)
        )
        return self.placement_logits(observation["node_rows"], observation["mask"])

    def size(self, snapshot: ClusterSnapshot) -> SizingProposal:
        return decode_sizing(snapshot, self.sizing_actions(workload_features(snapshot, self.power)))
