"""RLlib modules that score rows with one shared network, mirroring :mod:`thrifty.policy.network`.

The layer names (``placement.trunk.0``, ``sizing.replicas``, ...) are the array names of the
exported artefact, so :mod:`thrifty.training.export` copies ``state_dict()`` entries as they are.

* :class:`PlacementModule` (``PlacementEnv``): one logit per node row; masked nodes get
  RLlib's ``FLOAT_MIN`` so they are never sampled. The value is a linear read-out of the masked
  mean of the rows' hidden features (permutation-invariant, any node count).
* :class:`SizingModule` (``SizingEnv``): three heads per workload row. Padding rows are forced
  to the "keep" action (every other logit ``FLOAT_MIN``), so they add nothing to the loss.
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

from thrifty.actions import KEEP_ACTION, SIZING_ACTION_DIMS
from thrifty.policy.network import SIZING_HEADS


def _trunk(inputs: int, hidden: int, layers: int) -> nn.Sequential:
    parts: list[nn.Module] = []
    for i in range(layers):
        parts += [nn.Linear(inputs if i == 0 else hidden, hidden), nn.Tanh()]
    return nn.Sequential(*parts)


class _RowModule(TorchRLModule, ValueFunctionAPI):
    """Shared pieces: normalisation buffers, trunk construction, masked mean pooling.

    ``model_config``: ``hidden`` (units), ``layers`` (hidden layers), ``mean`` and ``std``
    (the observation normaliser, one entry per feature column), ``clip``, and optionally
    ``initial_state`` (a ``state_dict`` to start from, e.g. behaviour cloning).
    """

    rows_key: str

    def _setup_rows(self, features: int) -> None:
        config = self.model_config
        self.register_buffer("obs_mean", torch.as_tensor(np.asarray(config["mean"]), dtype=torch.float32))
        self.register_buffer("obs_std", torch.as_tensor(np.asarray(config["std"]), dtype=torch.float32))
        self.clip = float(config.get("clip", 10.0))
        self.hidden, self.layers = int(config["hidden"]), int(config["layers"])
        if self.obs_mean.shape != (features,):
            raise ValueError(f"model_config.mean: expected {features} entries, got {tuple(self.obs_mean.shape)}")
        self.value_head = nn.Linear(self.hidden, 1)

    def _load_initial_state(self) -> None:
        initial = self.model_config.get("initial_state")
        if initial is not None:
            self.load_state_dict({k: torch.as_tensor(v) for k, v in initial.items()}, strict=False)

    def _normalise(self, rows: torch.Tensor) -> torch.Tensor:
        return torch.clamp((rows - self.obs_mean) / self.obs_std, -self.clip, self.clip)

    def _hidden(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        observation = batch[Columns.OBS]
        rows = observation[self.rows_key].float()
        mask = observation["mask"].float()
        return self.trunk_of()(self._normalise(rows)), mask

    def trunk_of(self) -> nn.Sequential:
        raise NotImplementedError

    def compute_values(self, batch, embeddings=None):
        hidden, mask = self._hidden(batch)
        pooled = (hidden * mask.unsqueeze(-1)).sum(-2) / mask.sum(-1, keepdim=True).clamp(min=1.0)
        return self.value_head(pooled).squeeze(-1)


class PlacementModule(_RowModule):
    rows_key = "nodes"

    def setup(self):
        features = self.observation_space["nodes"].shape[-1]
        self._setup_rows(features)
        self.placement = nn.ModuleDict({
            "trunk": _trunk(features, self.hidden, self.layers),
            "score": nn.Linear(self.hidden, 1),
        })
        self._load_initial_state()

    def trunk_of(self) -> nn.Sequential:
        return self.placement["trunk"]

    def _forward(self, batch, **kwargs):
        hidden, mask = self._hidden(batch)
        logits = self.placement["score"](hidden).squeeze(-1)
        logits = logits + torch.clamp(torch.log(mask), min=FLOAT_MIN)
        return {Columns.ACTION_DIST_INPUTS: logits}


class SizingModule(_RowModule):
    rows_key = "workloads"

    def setup(self):
        features = self.observation_space["workloads"].shape[-1]
        self._setup_rows(features)
        self.sizing = nn.ModuleDict({"trunk": _trunk(features, self.hidden, self.layers)})
        for head, size in zip(SIZING_HEADS, SIZING_ACTION_DIMS):
            self.sizing[head] = nn.Linear(self.hidden, size)
        # Logits that force "keep" on padding rows: 0 for the keep entry, FLOAT_MIN elsewhere.
        keep = torch.full((sum(SIZING_ACTION_DIMS),), FLOAT_MIN)
        offsets = np.cumsum((0,) + SIZING_ACTION_DIMS[:-1])
        keep[torch.as_tensor(offsets + KEEP_ACTION)] = 0.0
        self.register_buffer("padding_logits", keep)
        self.action_dist_cls = TorchMultiCategorical.get_partial_dist_cls(
            space=self.action_space, input_lens=list(self.action_space.nvec)
        )
        self._load_initial_state()

    def trunk_of(self) -> nn.Sequential:
        return self.sizing["trunk"]

    def _forward(self, batch, **kwargs):
        hidden, mask = self._hidden(batch)
        logits = torch.cat([self.sizing[head](hidden) for head in SIZING_HEADS], dim=-1)
        logits = torch.where(mask.unsqueeze(-1) > 0, logits, self.padding_logits)
        return {Columns.ACTION_DIST_INPUTS: logits.flatten(start_dim=-2)}
