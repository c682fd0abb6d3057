"""The training smoke run, the exported artefact, and the two serving backends agreeing."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest

from thrifty.config import ScenarioConfig
from thrifty.datasets import load_split
from thrifty.envs import PlacementEnv, SizingEnv
from thrifty.envs.episode import EpisodeConfig
from thrifty.features import SCHEMA_VERSION, workload_features
from thrifty.policy.artefact import METADATA_FILE, WEIGHTS_FILE
from thrifty.policy.base import PolicyError
from thrifty.policy.numpy_policy import NumpyPolicy
from thrifty.policy.rllib_policy import RLlibPolicy

OBSERVATIONS = 1000


def test_smoke_run_writes_a_complete_artefact(trained_policy):
    metadata = json.loads((trained_policy / METADATA_FILE).read_text())
    assert metadata["feature_schema_version"] == SCHEMA_VERSION
    assert metadata["training"]["args"]["seed"] == 3
    assert set(metadata["normalisation"]) == {"placement", "sizing"}
    with np.load(trained_policy / WEIGHTS_FILE) as weights:
        assert "placement.score.weight" in weights.files and "sizing.replicas.weight" in weights.files
        assert not any(name.startswith("value.") for name in weights.files)
    with (trained_policy / "training_metrics.csv").open() as metrics:
        rows = list(csv.DictReader(metrics))
    # Iteration 0 is the cloned start, validated before PPO.
    assert [(row["task"], row["iteration"]) for row in rows] == [
        ("placement", "0"), ("placement", "1"), ("sizing", "0"), ("sizing", "1")]
    assert all(int(row["env_steps"]) > 0 for row in rows if row["iteration"] != "0")
    assert all(float(row["validation_energy_kwh"]) > 0 for row in rows)
    training = metadata["training"]
    for task in ("placement", "sizing"):
        assert training["kept_iteration"][task] in (0, 1)
        validation = training["validation"][task]
        assert validation["seeds"] == [100, 101, 102, 103] and validation["steps"] == 10
        assert validation["kept"]["energy_kwh"] > 0 and validation["heuristic"]["energy_kwh"] > 0


def _placement_observations(count: int) -> list[dict]:
    env = PlacementEnv(traces=load_split("heldout"), max_nodes=12,
                       config=EpisodeConfig(scenario=ScenarioConfig(n_nodes=10, n_applications=2), episode_steps=40))
    observations, seed = [], 0
    observation, _ = env.reset(seed=seed)
    env.action_space.seed(0)
    while len(observations) < count:
        observations.append(observation)
        action = int(np.flatnonzero(observation["mask"])[0]) if observation["mask"].any() else 0
        observation, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            seed += 1
            observation, _ = env.reset(seed=seed)
    return observations


def test_numpy_and_rllib_backends_place_identically(trained_policy):
    numpy_policy, rllib_policy = NumpyPolicy.load(trained_policy), RLlibPolicy(trained_policy)
    observations = _placement_observations(OBSERVATIONS)
    for observation in observations:
        n = int(np.max(np.flatnonzero(observation["nodes"].any(axis=1)), initial=-1)) + 1
        rows, mask = observation["nodes"][:n].astype(float), observation["mask"][:n].astype(bool)
        a = numpy_policy.placement_logits(rows, mask)
        b = rllib_policy.placement_logits(rows, mask)
        np.testing.assert_allclose(a[mask], b[mask], rtol=1e-4, atol=1e-4)
        assert np.argmax(a) == np.argmax(b)


def test_numpy_and_rllib_backends_size_identically(trained_policy):
    numpy_policy, rllib_policy = NumpyPolicy.load(trained_policy), RLlibPolicy(trained_policy)
    env = SizingEnv(traces=load_split("heldout"), max_workloads=64,
                    config=EpisodeConfig(scenario=ScenarioConfig(n_nodes=10, n_applications=2), episode_steps=30))
    compared, seed = 0, 0
    env.reset(seed=seed)
    env.action_space.seed(0)
    while compared < OBSERVATIONS:
        rows = workload_features(env.current_snapshot())
        np.testing.assert_array_equal(numpy_policy.sizing_actions(rows), rllib_policy.sizing_actions(rows))
        compared += len(rows)
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            seed += 1
            env.reset(seed=seed)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        pytest.param(lambda d: (d / WEIGHTS_FILE).unlink(), "weights.npz: missing", id="weights-missing"),
        pytest.param(lambda d: (d / WEIGHTS_FILE).write_bytes(b"not an npz"), "unreadable", id="weights-corrupt"),
        pytest.param(lambda d: (d / METADATA_FILE).write_text("{"), "policy.json: unreadable", id="metadata-corrupt"),
        pytest.param(lambda d: _edit_metadata(d, feature_schema_version=SCHEMA_VERSION + 1),
                     "feature schema", id="schema-newer"),
        pytest.param(lambda d: _edit_metadata(d, feature_fingerprint="0" * 16), "fingerprint", id="columns-changed"),
        pytest.param(lambda d: _edit_metadata(d, hidden_layers=5), "missing", id="layers-mismatch"),
    ],
)
def test_damaged_artefact_is_refused_with_the_file_named(trained_policy, tmp_path, damage, message):
    copy = tmp_path / "policy"
    shutil.copytree(trained_policy, copy)
    damage(copy)
    with pytest.raises(PolicyError, match=message):
        NumpyPolicy.load(copy)


def _edit_metadata(directory, **changes) -> None:
    metadata = json.loads((directory / METADATA_FILE).read_text())
    metadata.update(changes)
    (directory / METADATA_FILE).write_text(json.dumps(metadata))
