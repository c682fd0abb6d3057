"""``--policy-backend rllib``: serve the RLlib module checkpoints of an artefact directly.

Needs ray and torch (the ``train`` extra). It exists to prove, and let users check, that the
numpy export acts exactly as the trained modules do: both backends read the same features and
take the greedy action.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from thrifty.actions import SIZING_ACTION_DIMS
from thrifty.energy import PowerModel
from thrifty.policy.artefact import RLLIB_DIR, load_artefact
from thrifty.policy.base import PolicyError, PolicyInfo
from thrifty.policy.network import MASKED_LOGIT, greedy_sizing_actions, snap_ties
from thrifty.policy.rows import RowPolicy


class RLlibPolicy(RowPolicy):
    """Greedy actions of the RLlib modules saved in ``<artefact>/rllib/{placement,sizing}``."""

    def __init__(self, directory: str | Path, power_model: PowerModel | None = None) -> None:
        try:
            import torch
            from ray.rllib.core.rl_module.torch import TorchRLModule
        except ImportError as error:
            raise PolicyError(
                f"--policy-backend rllib needs ray and torch (pip install 'thrifty[train]'): {error}"
            ) from None
        artefact = load_artefact(directory)
        self._torch = torch
        self.modules: dict[str, TorchRLModule] = {}
        for task in ("placement", "sizing"):
            path = Path(directory) / RLLIB_DIR / task
            try:
                # The training modules are TorchRLModules (thrifty.training.rlmodule); loading
                # through that class types them as such (eval(), no_grad inference).
                self.modules[task] = TorchRLModule.from_checkpoint(str(path.resolve()))
            except Exception as error:  # RLlib raises many kinds on a bad checkpoint
                raise PolicyError(f"{path}: cannot load the RLlib checkpoint: {error}") from None
            self.modules[task].eval()
        self.power = power_model or PowerModel()
        self.info = PolicyInfo(name=artefact.name, version=artefact.version, backend="rllib",
                               feature_schema_version=int(artefact.metadata["feature_schema_version"]))

    def _logits(self, task: str, observation) -> np.ndarray:
        from ray.rllib.core.columns import Columns

        with self._torch.no_grad():
            out = self.modules[task].forward_inference({Columns.OBS: observation})
        return out[Columns.ACTION_DIST_INPUTS].numpy().astype(float)

    def placement_logits(self, rows: np.ndarray, mask: np.ndarray) -> np.ndarray:
        # The module scores rows, so any node count works without padding: one observation of
        # all the nodes.
        torch = self._torch
        observation = {"nodes": torch.as_tensor(rows[None], dtype=torch.float32),
                       "mask": torch.as_tensor(mask[None], dtype=torch.float32)}
        logits = self._logits("placement", observation)[0]
        return snap_ties(np.where(mask, logits, MASKED_LOGIT))

    def sizing_actions(self, rows: np.ndarray) -> np.ndarray:
        # One agent per workload: the rows are a batch of observations.
        logits = self._logits("sizing", self._torch.as_tensor(rows, dtype=self._torch.float32))
        return greedy_sizing_actions(tuple(np.split(logits, np.cumsum(SIZING_ACTION_DIMS)[:-1], axis=1)))
