"""RLlib modules that score rows with one shared network, mirroring :mod:`thrifty.policy.network`.

The policy layers' names (``placement.trunk.0``, ``sizing.replicas``, ...) are the array names of
the exported artefact, so :mod:`thrifty.training.export` copies ``state_dict()`` entries as they
are. The value function has its own trunk (``value.*``): a critic that shares the policy's layers
would pull the behaviour-cloned policy around with its much larger regression loss.

* :class:`PlacementModule` (``PlacementEnv``): one logit per node row; masked nodes get
  RLlib's ``FLOAT_MIN`` so they are never sampled. The value is a linear read-out of the masked
  mean of the rows' value features (permutation-invariant, any node count).
* :class:`SizingModule` (one agent per workload, :class:`thrifty.training.workload_agents.
  WorkloadAgentsEnv`): one workload row in, the logits of the three sizing heads out. Every
  workload's agent runs this same module (parameter sharing).
"""

from __future__ import annotations

import numpy as np
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.distribution.torch.torch_distribution import TorchMultiCategorical
from ray.rllib.core.rl_module.apis.value_function_api import ValueFunctionAPI
from ray.rllib.core.rl_module.torch import TorchRLModule
from ray.rllib.utils.torch_utils import FLOAT_MIN
from torch import nn

from thrifty.actions import SIZING_ACTION_DIMS
from thrifty.policy.network import SIZING_HEADS


def _trunk(inputs: int, hidden: int, layers: int) -> nn.Sequential:
    parts: list[nn.Module] = []
    for i in range(layers):
        parts += [nn.Linear(inputs if i == 0 else hidden, hidden), nn.Tanh()]
    return nn.Sequential(*parts)


class _RowModule(TorchRLModule, ValueFunctionAPI):
    """Shared pieces: normalisation buffers, the value network, loading an initial state.

    ``model_config``: ``hidden`` (units), ``layers`` (hidden layers), ``mean`` and ``std``
    (the observation normaliser, one entry per feature column), ``clip``, and optionally
    ``initial_state`` (a ``state_dict`` to start from, e.g. behaviour cloning).
    """

    def _config(self) -> dict:
        """``model_config``, which these modules are always given as a dict (RLlib also allows a
        ``DefaultModelConfig`` or none)."""
        config = self.model_config
        if not isinstance(config, dict):
            raise TypeError(f"{type(self).__name__}: model_config must be a dict, got {type(config).__name__}")
        return config

    def _setup_rows(self, features: int) -> None:
        config = self._config()
        self.register_buffer("obs_mean", torch.as_tensor(np.asarray(config["mean"]), dtype=torch.float32))
        self.register_buffer("obs_std", torch.as_tensor(np.asarray(config["std"]), dtype=torch.float32))
        self.clip = float(config.get("clip", 10.0))
        self.hidden, self.layers = int(config["hidden"]), int(config["layers"])
        if self.obs_mean.shape != (features,):
            raise ValueError(f"model_config.mean: expected {features} entries, got {tuple(self.obs_mean.shape)}")
        self.value = nn.ModuleDict({"trunk": _trunk(features, self.hidden, self.layers),
                                    "head": nn.Linear(self.hidden, 1)})

    def _load_initial_state(self) -> None:
        initial = self._config().get("initial_state")
        if initial is not None:
            self.load_state_dict({k: torch.as_tensor(v) for k, v in initial.items()}, strict=False)

    def _normalise(self, rows: torch.Tensor) -> torch.Tensor:
        return torch.clamp((rows.float() - self.obs_mean) / self.obs_std, -self.clip, self.clip)


class PlacementModule(_RowModule):
    def setup(self):
        features = self.observation_space["nodes"].shape[-1]
        self._setup_rows(features)
        self.placement = nn.ModuleDict({
            "trunk": _trunk(features, self.hidden, self.layers),
            "score": nn.Linear(self.hidden, 1),
        })
        self._load_initial_state()

    def _forward(self, batch, **kwargs):
        observation = batch[Columns.OBS]
        hidden = self.placement["trunk"](self._normalise(observation["nodes"]))
        logits = self.placement["score"](hidden).squeeze(-1)
        logits = logits + torch.clamp(torch.log(observation["mask"].float()), min=FLOAT_MIN)
        return {Columns.ACTION_DIST_INPUTS: logits}

    def compute_values(self, batch, embeddings=None):
        observation = batch[Columns.OBS]
        hidden = self.value["trunk"](self._normalise(observation["nodes"]))
        mask = observation["mask"].float().unsqueeze(-1)
        pooled = (hidden * mask).sum(-2) / mask.sum(-2).clamp(min=1.0)
        return self.value["head"](pooled).squeeze(-1)


class SizingModule(_RowModule):
    def setup(self):
        features = self.observation_space.shape[-1]
        self._setup_rows(features)
        self.sizing = nn.ModuleDict({"trunk": _trunk(features, self.hidden, self.layers)})
        for head, size in zip(SIZING_HEADS, SIZING_ACTION_DIMS, strict=True):
            self.sizing[head] = nn.Linear(self.hidden, size)
        self.action_dist_cls = TorchMultiCategorical.get_partial_dist_cls(
            space=self.action_space, input_lens=list(SIZING_ACTION_DIMS)
        )
        self._load_initial_state()

    def _forward(self, batch, **kwargs):
        hidden = self.sizing["trunk"](self._normalise(batch[Columns.OBS]))
        return {Columns.ACTION_DIST_INPUTS: torch.cat([self.sizing[head](hidden) for head in SIZING_HEADS], dim=-1)}

    def compute_values(self, batch, embeddings=None):
        return self.value["head"](self.value["trunk"](self._normalise(batch[Columns.OBS]))).squeeze(-1)
