"""The gymnasium environments: API conformance, determinism and pickling."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from thrifty.config import ScenarioConfig
from thrifty.datasets import load_split
from thrifty.envs import PlacementEnv, SizingEnv
from thrifty.envs.episode import EpisodeConfig
from thrifty.envs.placement import decision_regret
from thrifty.features import PAIR_FEATURE_NAMES

CONFIG = EpisodeConfig(scenario=ScenarioConfig(n_nodes=6, n_applications=2), episode_steps=12)


def make_sizing() -> SizingEnv:
    return SizingEnv(traces=load_split("train"), config=CONFIG, max_workloads=24)


def make_placement() -> PlacementEnv:
    return PlacementEnv(traces=load_split("train"), config=CONFIG, max_nodes=8)


KEEP_STEPS = 10
"""Steps of the keep-action test: long enough for any resize to have taken effect."""

ENVS = [pytest.param(make_sizing, id="sizing"), pytest.param(make_placement, id="placement")]


def rollout(env, seed: int, steps: int = 12) -> list[tuple]:
    """Observations, rewards and flags of a rollout whose actions come from a seeded RNG."""
    observation, _ = env.reset(seed=seed)
    env.action_space.seed(seed)
    trajectory = [tuple(np.asarray(v).tobytes() for v in observation.values())]
    for _ in range(steps):
        observation, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        trajectory.append((tuple(np.asarray(v).tobytes() for v in observation.values()), reward, terminated, truncated))
        if terminated or truncated:
            break
    return trajectory


@pytest.mark.parametrize("make", ENVS)
def test_check_env_passes(make):
    """Gymnasium's checker, with each of its warnings an error (it warns rather than fails on
    many API breaches: unbounded spaces, wrong dtypes, non-deterministic resets)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(make(), skip_render_check=True)


@pytest.mark.parametrize("make", ENVS)
def test_same_seed_same_rollout(make):
    assert rollout(make(), seed=7) == rollout(make(), seed=7)


@pytest.mark.parametrize("make", ENVS)
def test_different_seed_different_rollout(make):
    assert rollout(make(), seed=7) != rollout(make(), seed=8)


@pytest.mark.parametrize("make", ENVS)
def test_pickle_round_trip_mid_episode(make):
    env = make()
    env.reset(seed=3)
    env.action_space.seed(3)
    for _ in range(3):
        env.step(env.action_space.sample())
    clone = pickle.loads(pickle.dumps(env))
    env.action_space.seed(11)
    clone.action_space.seed(11)
    for _ in range(4):
        action = env.action_space.sample()
        assert clone.action_space.sample().tolist() == np.asarray(action).tolist()
        a = env.step(action)
        b = clone.step(action)
        assert a[1] == b[1]
        for key in a[0]:
            np.testing.assert_array_equal(a[0][key], b[0][key])
        if a[3]:
            break


def test_sizing_observation_is_finite_and_padding_is_zero():
    env = make_sizing()
    observation, _ = env.reset(seed=0)
    n = len(env._harness.simulator.workload_names)
    assert np.all(np.isfinite(observation["workloads"]))
    assert observation["mask"].tolist() == [1] * n + [0] * (env.max_workloads - n)
    assert not observation["workloads"][n:].any()


def test_placement_observation_is_finite_and_padding_is_masked():
    env = make_placement()
    observation, _ = env.reset(seed=0)
    n = CONFIG.scenario.n_nodes
    assert np.all(np.isfinite(observation["nodes"]))
    assert observation["mask"][:n].any()
    assert not observation["mask"][n:].any()
    assert not observation["nodes"][n:].any()


def test_placement_refused_node_costs_exactly_the_penalty():
    """A masked node is refused and the heuristic places the pod: same outcome, minus the penalty."""
    env = make_placement()
    observation, _ = env.reset(seed=0)
    clone = pickle.loads(pickle.dumps(env))
    snapshot = clone._harness.simulator.snapshot()
    heuristic_node = int(np.argmax(np.where(observation["mask"][: len(snapshot.nodes)] == 1,
                                            clone._fallback.score_nodes(snapshot, clone._pod_row), -np.inf)))
    _, feasible_reward, _, _, feasible_info = clone.step(heuristic_node)
    _, refused_reward, _, _, refused_info = env.step(env.max_nodes - 1)
    assert feasible_info["refused"] is False
    assert refused_info["refused"] is True
    assert refused_reward == pytest.approx(feasible_reward - env.invalid_action_penalty)


def test_sizing_rejects_scenario_larger_than_max_workloads():
    env = SizingEnv(traces=load_split("train"), config=CONFIG, max_workloads=1)
    with pytest.raises(ValueError, match="max_workloads"):
        env.reset(seed=0)


def test_sizing_keep_action_changes_no_size():
    env = make_sizing()
    observation, _ = env.reset(seed=2)
    from thrifty.actions import KEEP_ACTION

    before = env._harness.simulator.snapshot()
    # Several steps: a resize the simulator accepts in one step shows in the next snapshot.
    for _ in range(KEEP_STEPS):
        env.step(np.tile(KEEP_ACTION, env.max_workloads))
    after = env._harness.simulator.snapshot()
    np.testing.assert_array_equal(before.workloads.replicas, after.workloads.replicas)
    # Every pod and container keeps its requests and limits (a pod restarted after an OOM kill
    # keeps its size too: the simulator restarts it in place, under the same name).
    assert before.pods.names == after.pods.names
    assert len(before.containers.names) == len(after.containers.names) > 0
    for table in ("pods", "containers"):
        for column in ("cpu_request_millicores", "cpu_limit_millicores", "memory_request_bytes", "memory_limit_bytes"):
            np.testing.assert_array_equal(getattr(getattr(before, table), column),
                                          getattr(getattr(after, table), column),
                                          err_msg=f"{table}.{column} changed under the keep action")


def _pair(watts: list[float], traffic: list[float]) -> np.ndarray:
    pair = np.zeros((len(watts), len(PAIR_FEATURE_NAMES)))
    pair[:, PAIR_FEATURE_NAMES.index("placement_watts_share")] = watts
    pair[:, PAIR_FEATURE_NAMES.index("dependency_traffic_fraction")] = traffic
    return pair


@pytest.mark.parametrize(
    ("watts", "traffic", "mask", "weights", "expected"),
    [
        pytest.param([0.1, 0.5, 0.01], [0.0, 0.8, 1.0], [True, True, False], (1.0, 0.5), [0.4, 0.4, -0.09 + 0.4 - 0.5],
                     id="regret-against-feasible-nodes-only"),
        pytest.param([0.2, 0.2], [0.0, 0.0], [True, True], (1.0, 0.5), [0.0, 0.0], id="equal-nodes-cost-nothing"),
        pytest.param([0.05, 0.45], [0.0, 0.0], [True, True], (2.0, 0.5), [0.0, 0.8], id="waking-a-node-scaled"),
        pytest.param([0.1, 0.3], [0.6, 0.4], [True, True], (0.0, 1.0), [0.0, 0.2], id="traffic-only"),
        pytest.param([0.1, 0.3], [0.6, 0.4], [False, False], (1.0, 1.0), [0.0, 0.0], id="no-feasible-node"),
    ],
)
def test_decision_regret(watts, traffic, mask, weights, expected):
    regret = decision_regret(_pair(watts, traffic), np.asarray(mask),
                             watts_weight=weights[0], traffic_weight=weights[1])
    np.testing.assert_allclose(regret, expected)


def test_placement_reward_carries_the_decision_regret():
    shaped = make_placement()
    plain = PlacementEnv(traces=load_split("train"), config=CONFIG, max_nodes=8,
                         watts_regret_weight=0.0, traffic_regret_weight=0.0)
    observation, _ = shaped.reset(seed=4)
    plain.reset(seed=4)
    costly = int(np.argmax(np.where(observation["mask"][: len(shaped._regret)] == 1, shaped._regret, -np.inf)))
    regret = float(shaped._regret[costly])
    assert regret > 0
    assert shaped.step(costly)[1] == pytest.approx(plain.step(costly)[1] - regret)


@pytest.mark.parametrize("name", ["watts_regret_weight", "traffic_regret_weight"])
def test_placement_rejects_negative_regret_weights(name):
    with pytest.raises(ValueError, match=name):
        PlacementEnv(traces=load_split("train"), config=CONFIG, max_nodes=8, **{name: -1.0})


def test_sizing_info_has_each_workloads_reward():
    env = make_sizing()
    env.reset(seed=1)
    from thrifty.actions import KEEP_ACTION

    _, _, _, _, info = env.step(np.tile(KEEP_ACTION, env.max_workloads))
    rewards = info["workload_rewards"]
    assert rewards.shape == (len(env.current_snapshot().workloads),)
    assert np.all(np.isfinite(rewards)) and np.all(rewards <= 0)
