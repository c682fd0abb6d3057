"""The placement environment: one Pending pod placed per step, node scores from shared rows."""

from __future__ import annotations

from collections.abc import Sequence

import gymnasium as gym
import numpy as np

from thrifty.energy import PowerModel
from thrifty.envs.episode import (
    DEFAULT_EPISODE_CONFIG,
    FINITE_FLOAT32,
    EpisodeConfig,
    StepInfo,
    new_simulator,
    step_reward,
)
from thrifty.features import PAIR_FEATURE_NAMES, PLACEMENT_ROW_NAMES, node_features, placement_observation
from thrifty.harness import Harness
from thrifty.policy.base import Policy
from thrifty.policy.heuristic import HeuristicPolicy
from thrifty.safety import SafetyConfig, choose_node, feasible_nodes
from thrifty.snapshot import ClusterSnapshot
from thrifty.traces.model import Trace

_DEFAULT_SAFETY = SafetyConfig()


def decision_regret(pair: np.ndarray, mask: np.ndarray, *, watts_weight: float, traffic_weight: float) -> np.ndarray:
    """(nodes,) what placing the pod on each node costs at once, against the best feasible node.

    ``pair`` holds :data:`thrifty.features.PAIR_FEATURE_NAMES` columns. The cost is
    ``watts_weight`` x the added power share beyond the least a feasible node adds, plus
    ``traffic_weight`` x the dependency traffic fraction the most co-located feasible node
    would keep local and this one does not. Unitless; 0 everywhere when no node is feasible.
    """
    if not mask.any():
        return np.zeros(len(mask))
    watts = pair[:, PAIR_FEATURE_NAMES.index("placement_watts_share")]
    traffic = pair[:, PAIR_FEATURE_NAMES.index("dependency_traffic_fraction")]
    return watts_weight * (watts - watts[mask].min()) + traffic_weight * (traffic[mask].max() - traffic)


class PlacementEnv(gym.Env):
    """Choosing the node of each Pending pod in a trace-driven cluster.

    Each step places one Pending pod (oldest first). When none is left, the simulator advances,
    with workloads sized by ``sizing_policy`` (the heuristic by default), until pods are Pending
    again (initial pods, scale-outs, restarts, evictions, the background pod stream) or the
    episode ends. Node rows are scored independently, so a policy scores any number of nodes.

    **Observation** (``Dict``):

    ==========  ======================================  ==============================================
    key         shape                                   content
    ==========  ======================================  ==============================================
    ``nodes``   (max_nodes, len(PLACEMENT_ROW_NAMES))   :func:`thrifty.features.placement_observation`
                                                        rows: node features, the pod's features,
                                                        and the pod's dependency traffic to the node;
                                                        zero padding
    ``mask``    (max_nodes,) int8                       1 where the pod fits (schedulable, room for its
                                                        requests), 0 elsewhere and for padding
    ==========  ======================================  ==============================================

    **Action** (``Discrete(max_nodes)``): the node's row. A masked node is refused as the safety
    pipeline refuses it in production: the heuristic places the pod instead, and the step earns
    ``invalid_action_penalty``.

    **Reward**: the cluster reward (:func:`thrifty.reward.cluster_reward`) summed over the
    simulator steps that elapse after this placement and before the next decision, plus the
    penalty for a refused action, plus a per-decision term that tells the agent at once what
    its choice cost (the delayed cluster reward mixes every placement of a step):

    * ``-watts_regret_weight`` x (``placement_watts_share`` of the chosen node minus the least
      over feasible nodes): power added beyond the cheapest choice, waking a node included;
    * ``-traffic_regret_weight`` x (the largest ``dependency_traffic_fraction`` minus the
      chosen node's): dependency traffic sent across nodes that another node would have kept
      local.

    Both are 0 for a pod whose best node is chosen, and the delayed cluster reward still counts
    the SLO cost of packing too tight.

    **Episode end**: never terminated; truncated once ``EpisodeConfig.episode_steps`` simulator
    steps have elapsed. The final observation then has an all-zero mask.

    **Seeding**: only through ``reset(seed=...)``; see :class:`thrifty.envs.SizingEnv`.
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
        *,
        traces: Sequence[Trace],
        config: EpisodeConfig = DEFAULT_EPISODE_CONFIG,
        max_nodes: int = 64,
        sizing_policy: Policy | None = None,
        safety: SafetyConfig = _DEFAULT_SAFETY,
        invalid_action_penalty: float = 1.0,
        watts_regret_weight: float = 1.0,
        traffic_regret_weight: float = 0.5,
    ) -> None:
        if max_nodes < 1:
            raise ValueError(f"PlacementEnv.max_nodes: must be >= 1, got {max_nodes}")
        if config.scenario.n_nodes > max_nodes:
            raise ValueError(
                f"PlacementEnv.max_nodes: {max_nodes} is below the scenario's n_nodes {config.scenario.n_nodes}"
            )
        for name, weight in (("watts_regret_weight", watts_regret_weight),
                             ("traffic_regret_weight", traffic_regret_weight)):
            if not weight >= 0:
                raise ValueError(f"PlacementEnv.{name}: must be >= 0, got {weight}")
        self.traces = tuple(traces)
        self.config = config
        self.max_nodes = max_nodes
        self.sizing_policy = sizing_policy or HeuristicPolicy()
        self.safety = safety
        self.invalid_action_penalty = invalid_action_penalty
        self.watts_regret_weight = watts_regret_weight
        self.traffic_regret_weight = traffic_regret_weight
        self.power = PowerModel()
        self.observation_space = gym.spaces.Dict({
            "nodes": gym.spaces.Box(-FINITE_FLOAT32, FINITE_FLOAT32, shape=(max_nodes, len(PLACEMENT_ROW_NAMES)),
                                    dtype=np.float32),
            "mask": gym.spaces.Box(0, 1, shape=(max_nodes,), dtype=np.int8),
        })
        self.action_space = gym.spaces.Discrete(max_nodes)
        self._fallback = HeuristicPolicy()
        self._harness: Harness | None = None
        self._pod_row = -1
        self._regret = np.zeros(0)

    def _empty_observation(self) -> dict[str, np.ndarray]:
        return {
            "nodes": np.zeros((self.max_nodes, len(PLACEMENT_ROW_NAMES)), dtype=np.float32),
            "mask": np.zeros(self.max_nodes, dtype=np.int8),
        }

    def _running(self) -> Harness:
        """The harness of the episode under way."""
        if self._harness is None:
            raise RuntimeError("PlacementEnv used before reset")
        return self._harness

    def _next_pod(self, snapshot: ClusterSnapshot) -> int:
        """Row of the oldest Pending pod that fits on some node, or -1 when none does."""
        rows = {name: row for row, name in enumerate(snapshot.pods.names)}
        pods = snapshot.pods
        for name in self._running().simulator.pending_pods():
            row = rows[name]
            if feasible_nodes(snapshot, pods.cpu_request_millicores[row], pods.memory_request_bytes[row]).any():
                return row
        return -1

    def _observe(self) -> dict[str, np.ndarray]:
        snapshot = self._running().simulator.snapshot()
        observation = self._empty_observation()
        self._pod_row = self._next_pod(snapshot)
        if self._pod_row < 0:
            return observation
        placed = placement_observation(snapshot, self._pod_row, power_model=self.power,
                                       node_feature_matrix=node_features(snapshot, self.power))
        n = len(snapshot.nodes)
        observation["nodes"][:n] = placed["node_rows"]
        observation["mask"][:n] = placed["mask"]
        self._regret = decision_regret(placed["pair_features"], placed["mask"], watts_weight=self.watts_regret_weight,
                                       traffic_weight=self.traffic_regret_weight)
        return observation

    def _advance_until_placeable(self) -> tuple[float, StepInfo]:
        """Run simulator steps until a Pending pod fits somewhere or the episode ends.

        Returns the summed reward of those steps and the ``info`` of the last one.
        """
        harness = self._running()
        simulator = harness.simulator
        total = 0.0
        info: StepInfo = {}
        while simulator.step_index < self.config.episode_steps:
            step = harness.step(place=False)
            snapshot = simulator.snapshot()
            reward, info = step_reward(step.result, snapshot, self.power, self.config.reward)
            total += reward
            if self._next_pod(snapshot) >= 0:
                break
        return total, info

    def policy_action(self, policy: Policy) -> int:
        """The node ``policy`` chooses for the pod being placed, after the safety pipeline's
        feasibility check: the teacher for behaviour cloning."""
        if self._harness is None or self._pod_row < 0:
            raise RuntimeError("PlacementEnv.policy_action: no pod to place (call reset)")
        snapshot = self._harness.simulator.snapshot()
        return choose_node(snapshot, self._pod_row, policy.score_nodes(snapshot, self._pod_row))

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        episode_seed = int(self.np_random.integers(2**31 - 1))
        simulator = new_simulator(self.traces, self.config, episode_seed, self.power)
        self._harness = Harness(simulator, placement_policy=self._fallback, sizing_policy=self.sizing_policy,
                                safety=self.safety)
        observation = self._observe()
        if self._pod_row < 0:
            self._advance_until_placeable()
            observation = self._observe()
        return observation, {}

    def step(self, action):
        if self._harness is None:
            raise RuntimeError("PlacementEnv.step called before reset")
        if self._pod_row < 0:
            raise RuntimeError("PlacementEnv.step called after the episode ended; call reset")
        simulator = self._harness.simulator
        snapshot = simulator.snapshot()
        pods = snapshot.pods
        row, node = self._pod_row, int(action)
        fits = feasible_nodes(snapshot, pods.cpu_request_millicores[row], pods.memory_request_bytes[row])
        reward, info = 0.0, {"refused": False}
        if not (0 <= node < len(snapshot.nodes) and fits[node]):
            reward -= self.invalid_action_penalty
            info["refused"] = True
            node = choose_node(snapshot, row, self._fallback.score_nodes(snapshot, row))
        reward -= float(self._regret[node])
        simulator.bind(pods.names[row], node)
        if self._next_pod(simulator.snapshot()) < 0:
            elapsed, step_info = self._advance_until_placeable()
            reward += elapsed
            info.update(step_info)
        observation = self._observe()
        truncated = self._pod_row < 0 or simulator.step_index >= self.config.episode_steps
        return observation, float(reward), False, truncated, info
