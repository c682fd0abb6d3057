"""The trained policy served in-process with numpy: no ray, no torch at run time."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from thrifty.energy import PowerModel
from thrifty.policy.artefact import Artefact, load_artefact
from thrifty.policy.base import PolicyInfo
from thrifty.policy.network import greedy_sizing_actions, placement_logits, sizing_logits
from thrifty.policy.rows import RowPolicy


class NumpyPolicy(RowPolicy):
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
        a = self.artefact
        return placement_logits(a.weights, a.hidden_layers, a.normalisers["placement"], rows, mask)

    def sizing_actions(self, rows: np.ndarray) -> np.ndarray:
        a = self.artefact
        return greedy_sizing_actions(sizing_logits(a.weights, a.hidden_layers, a.normalisers["sizing"], rows))
