"""The sizing environment as one agent per workload, all sharing one policy.

``SizingEnv`` takes every workload's action at once and returns one cluster reward. Trained
that way, PPO cannot tell which of twenty workloads' choices earned a good step: the signal of
one workload's memory headroom drowns in the others' noise. Here each workload is an agent
(FIRM trains one agent per microservice for the same reason) and every agent runs the same
row network, so the trained weights are still the single sizing network the operator serves.

An agent's reward is the cluster reward of the step (energy, mean SLO and disruption: what
consolidation changes) plus its own workload's reward (:func:`thrifty.reward.workload_rewards`:
its attributed power, its SLO, its OOM kills and throttling), so that its own choices show.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from ray.rllib.env.multi_agent_env import MultiAgentEnv
from ray.rllib.utils.typing import AgentID, MultiAgentDict

from thrifty.actions import KEEP_ACTION, SIZING_ACTION_DIMS
from thrifty.envs import SizingEnv
from thrifty.features import WORKLOAD_FEATURE_NAMES


def agent_id(workload: int) -> str:
    """The agent of workload row ``workload``."""
    return f"w{workload}"


def _workload(agent: AgentID) -> int:
    """The workload row of ``agent`` (the inverse of :func:`agent_id`)."""
    return int(str(agent)[1:])


class WorkloadAgentsEnv(MultiAgentEnv):
    """:class:`thrifty.envs.SizingEnv` with one agent per workload (see the module docstring).

    Observation of an agent: its workload's feature row (``Box``, float32). Action: its three
    sizing choices (``MultiDiscrete(SIZING_ACTION_DIMS)``). Every agent acts at every step; the
    episode ends for all at once. Each agent's ``info`` carries the cluster figures of the step.
    """

    def __init__(self, env: SizingEnv) -> None:
        super().__init__()
        self.env = env
        # SizingEnv's rows are workload_features rows.
        row = gym.spaces.Box(-np.inf, np.inf, shape=(len(WORKLOAD_FEATURE_NAMES),), dtype=np.float32)
        action = gym.spaces.MultiDiscrete(list(SIZING_ACTION_DIMS))
        self.possible_agents = [agent_id(w) for w in range(env.max_workloads)]
        self.observation_spaces = {agent: row for agent in self.possible_agents}
        self.action_spaces = {agent: action for agent in self.possible_agents}
        self.agents = []

    def _split(self, observation: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {agent_id(int(w)): observation["workloads"][w] for w in np.flatnonzero(observation["mask"])}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        observation, info = self.env.reset(seed=seed, options=options)
        observations = self._split(observation)
        self.agents = list(observations)
        return observations, {agent: info for agent in self.agents}

    def step(self, action_dict: MultiAgentDict):
        actions = np.tile(KEEP_ACTION, (self.env.max_workloads, 1))
        for agent, action in action_dict.items():
            actions[_workload(agent)] = action
        observation, reward, terminated, truncated, info = self.env.step(actions.reshape(-1))
        own = info["workload_rewards"]
        rewards = {agent: reward + float(own[_workload(agent)]) for agent in self.agents}
        infos = {agent: {k: v for k, v in info.items() if k != "workload_rewards"} for agent in self.agents}
        done = {agent: terminated for agent in self.agents} | {"__all__": terminated}
        cut = {agent: truncated for agent in self.agents} | {"__all__": truncated}
        return self._split(observation), rewards, done, cut, infos
