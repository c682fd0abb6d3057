"""The sizing env as one agent per workload, and the teacher's discounted returns."""

from __future__ import annotations

import numpy as np
import pytest

from thrifty.actions import KEEP_ACTION, SIZING_ACTION_DIMS
from thrifty.config import ScenarioConfig
from thrifty.datasets import load_split
from thrifty.envs import SizingEnv
from thrifty.envs.episode import EpisodeConfig
from thrifty.training.train import discounted_returns
from thrifty.training.workload_agents import WorkloadAgentsEnv, agent_id

CONFIG = EpisodeConfig(scenario=ScenarioConfig(n_nodes=6, n_applications=2), episode_steps=3)


def make_pair() -> tuple[SizingEnv, WorkloadAgentsEnv]:
    """A plain sizing env and a wrapped one on the same episode."""
    plain = SizingEnv(traces=load_split("train"), config=CONFIG, max_workloads=24)
    wrapped = WorkloadAgentsEnv(SizingEnv(traces=load_split("train"), config=CONFIG, max_workloads=24))
    return plain, wrapped


def test_one_agent_per_workload_with_its_own_row():
    plain, wrapped = make_pair()
    observation, _ = plain.reset(seed=5)
    observations, infos = wrapped.reset(seed=5)
    n = int(observation["mask"].sum())
    assert list(observations) == [agent_id(w) for w in range(n)] == wrapped.agents
    for w in range(n):
        np.testing.assert_array_equal(observations[agent_id(w)], observation["workloads"][w])
        assert wrapped.observation_spaces[agent_id(w)].contains(observations[agent_id(w)])
    assert set(infos) == set(observations)


def test_actions_reach_their_workloads_and_rewards_add_the_workloads_own():
    plain, wrapped = make_pair()
    observation, _ = plain.reset(seed=5)
    wrapped.reset(seed=5)
    n = int(observation["mask"].sum())
    rng = np.random.default_rng(0)
    chosen = np.stack([rng.integers(0, size, n) for size in SIZING_ACTION_DIMS], axis=1)
    full = np.tile(KEEP_ACTION, (plain.max_workloads, 1))
    full[:n] = chosen
    _, reward, _, _, info = plain.step(full.reshape(-1))
    observations, rewards, done, cut, infos = wrapped.step({agent_id(w): chosen[w] for w in range(n)})
    for w in range(n):
        assert rewards[agent_id(w)] == pytest.approx(reward + info["workload_rewards"][w])
        assert infos[agent_id(w)]["cluster_watts"] == info["cluster_watts"]
        assert "workload_rewards" not in infos[agent_id(w)]
    assert done["__all__"] is False and cut["__all__"] is False


def test_episode_ends_for_every_agent_at_once():
    _, wrapped = make_pair()
    observations, _ = wrapped.reset(seed=2)
    keep = {agent: KEEP_ACTION for agent in observations}
    for _ in range(CONFIG.episode_steps):
        observations, _, done, cut, _ = wrapped.step(keep)
    assert cut["__all__"] is True and all(cut[agent] for agent in wrapped.agents)
    assert done["__all__"] is False


@pytest.mark.parametrize(
    ("rewards", "gamma", "expected"),
    [
        pytest.param([1.0, 1.0, 1.0], 0.5, [1.75, 1.5, 1.0], id="geometric"),
        pytest.param([0.0, 0.0, -2.0], 1.0, [-2.0, -2.0, -2.0], id="undiscounted"),
        pytest.param([[1.0, -1.0], [2.0, 0.0]], 0.9, [[2.8, -1.0], [2.0, 0.0]], id="one-column-per-agent"),
    ],
)
def test_discounted_returns(rewards, gamma, expected):
    np.testing.assert_allclose(discounted_returns(np.asarray(rewards), gamma), expected)
