"""The sizing environment: replicas and container requests of every workload, in one action."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import gymnasium as gym
import numpy as np

from thrifty.actions import KEEP_ACTION, SIZING_ACTION_DIMS, SizingProposal, decode_sizing
from thrifty.energy import PowerModel
from thrifty.envs.episode import DEFAULT_EPISODE_CONFIG, FINITE_FLOAT32, EpisodeConfig, new_simulator, step_reward
from thrifty.features import WORKLOAD_FEATURE_NAMES, workload_features
from thrifty.harness import Harness
from thrifty.policy.base import Policy, PolicyInfo
from thrifty.policy.heuristic import HeuristicPolicy
from thrifty.safety import SafetyConfig
from thrifty.snapshot import ClusterSnapshot
from thrifty.traces.model import Trace

_DEFAULT_SAFETY = SafetyConfig()


class DiscreteSizingPolicy(Protocol):
    """A policy that also gives its sizing as discrete actions, such as the heuristic."""

    def actions(self, snapshot: ClusterSnapshot) -> np.ndarray:
        """(workloads, 3) indices into the sizing sub-actions (see :mod:`thrifty.actions`)."""
        ...


@dataclass
class _Proposed:
    """A policy that proposes what the agent chose this step."""

    proposal: SizingProposal | None = None
    info: PolicyInfo = field(default_factory=lambda: PolicyInfo(name="agent", version="training", backend="gym"))

    def size(self, snapshot: ClusterSnapshot) -> SizingProposal:
        if self.proposal is None:
            raise RuntimeError("the sizing agent has not chosen an action yet")
        return self.proposal

    def score_nodes(self, snapshot: ClusterSnapshot, pod: int) -> np.ndarray:
        raise NotImplementedError("the sizing agent does not place pods")


class SizingEnv(gym.Env):
    """Vertical and horizontal sizing of every workload of a trace-driven cluster.

    Each step is one simulator step (``SimulatorConfig.step_seconds``, 60 s by default). The
    agent sizes every workload at once; its action passes through the operator's safety pipeline
    (bounds, step limits, cooldowns, capacity) and Pending pods are placed by
    ``placement_policy`` (the heuristic by default) before the simulator advances.

    **Observation** (``Dict``):

    ==============  ==========================================  ===================================
    key             shape                                       content
    ==============  ==========================================  ===================================
    ``workloads``   (max_workloads, len(WORKLOAD_FEATURE_NAMES))  :func:`thrifty.features.workload_features`,
                                                                 one row per workload, zero padding
    ``mask``        (max_workloads,) int8                       1 for a real workload, 0 for padding
    ==============  ==========================================  ===================================

    Rows are raw (finite, unnormalised) features; the policy normalises them, and stores the
    normalisation with its weights.

    **Action** (``MultiDiscrete``, ``3 * max_workloads``): for workload ``i``, entries
    ``3i, 3i+1, 3i+2`` index :data:`thrifty.actions.REPLICA_DELTAS`,
    :data:`~thrifty.actions.CPU_HEADROOMS` and :data:`~thrifty.actions.MEMORY_HEADROOMS`.
    Entries of padding rows are ignored.

    **Reward**: :func:`thrifty.reward.cluster_reward` of the step: minus the energy term (cluster
    power over its all-idle power), minus the SLO term, minus disruption (OOM kills,
    throttling, evictions, churn), traded by the workloads' ``energyWeight``.

    **Episode end**: never terminated (a cluster runs on); truncated after
    ``EpisodeConfig.episode_steps`` steps.

    **Seeding**: only through ``reset(seed=...)``. The seed picks the scenario (nodes,
    applications, trace windows) and the simulator's arrivals; the same seed replays the same
    episode for the same actions.

    ``info`` carries ``cluster_watts``, ``energy_joules``, ``slo_violations``, ``oom_kills``,
    ``powered_on_nodes``, ``pending_pods``, ``fallbacks``, and ``workload_rewards`` (float64
    (workloads,): each workload's own reward, :func:`thrifty.reward.workload_rewards`).
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
        *,
        traces: Sequence[Trace],
        config: EpisodeConfig = DEFAULT_EPISODE_CONFIG,
        max_workloads: int = 32,
        placement_policy: Policy | None = None,
        safety: SafetyConfig = _DEFAULT_SAFETY,
    ) -> None:
        if max_workloads < 1:
            raise ValueError(f"SizingEnv.max_workloads: must be >= 1, got {max_workloads}")
        self.traces = tuple(traces)
        self.config = config
        self.max_workloads = max_workloads
        self.placement_policy = placement_policy or HeuristicPolicy()
        self.safety = safety
        self.power = PowerModel()
        features = len(WORKLOAD_FEATURE_NAMES)
        self.observation_space = gym.spaces.Dict({
            "workloads": gym.spaces.Box(-FINITE_FLOAT32, FINITE_FLOAT32, shape=(max_workloads, features),
                                        dtype=np.float32),
            "mask": gym.spaces.Box(0, 1, shape=(max_workloads,), dtype=np.int8),
        })
        self.action_space = gym.spaces.MultiDiscrete(np.tile(SIZING_ACTION_DIMS, max_workloads))
        self._agent = _Proposed()
        self._harness: Harness | None = None

    def _observe(self, snapshot: ClusterSnapshot) -> dict[str, np.ndarray]:
        rows = workload_features(snapshot, self.power)
        padded = np.zeros((self.max_workloads, rows.shape[1]), dtype=np.float32)
        padded[: len(rows)] = rows
        mask = np.zeros(self.max_workloads, dtype=np.int8)
        mask[: len(rows)] = 1
        return {"workloads": padded, "mask": mask}

    def current_snapshot(self) -> ClusterSnapshot:
        """The simulated cluster now, as the operator would observe it."""
        if self._harness is None:
            raise RuntimeError("SizingEnv.current_snapshot called before reset")
        return self._harness.simulator.snapshot()

    def policy_action(self, policy: DiscreteSizingPolicy) -> np.ndarray:
        """The action a discrete-action policy (one with ``actions(snapshot)``, such as the
        heuristic) takes now, padded to this env's action shape: the teacher for behaviour
        cloning."""
        if self._harness is None:
            raise RuntimeError("SizingEnv.policy_action called before reset")
        action = np.tile(KEEP_ACTION, (self.max_workloads, 1))
        chosen = policy.actions(self.current_snapshot())
        action[: len(chosen)] = chosen
        return action.reshape(-1)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        episode_seed = int(self.np_random.integers(2**31 - 1))
        simulator = new_simulator(self.traces, self.config, episode_seed, self.power)
        n = len(simulator.workload_names)
        if n > self.max_workloads:
            raise ValueError(
                f"SizingEnv.max_workloads: the scenario has {n} workloads, more than {self.max_workloads}"
            )
        self._harness = Harness(simulator, placement_policy=self.placement_policy, sizing_policy=self._agent,
                                safety=self.safety)
        self._harness.place_pending()
        return self._observe(simulator.snapshot()), {}

    def step(self, action):
        if self._harness is None:
            raise RuntimeError("SizingEnv.step called before reset")
        simulator = self._harness.simulator
        snapshot = simulator.snapshot()
        n = len(snapshot.workloads)
        actions = np.asarray(action, dtype=np.int64).reshape(self.max_workloads, 3)[:n]
        self._agent.proposal = decode_sizing(snapshot, actions)
        step = self._harness.step()
        after = simulator.snapshot()
        reward, info = step_reward(step.result, after, self.power, self.config.reward)
        info["fallbacks"] = step.fallbacks
        truncated = simulator.step_index >= self.config.episode_steps
        return self._observe(after), float(reward), False, truncated, info
