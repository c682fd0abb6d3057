"""A tiny training run shared by the training tests (about a minute on two cores)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def trained_policy(tmp_path_factory) -> Path:
    """An artefact directory from a real, tiny RLlib run: cloning, one PPO iteration per task,
    validated."""
    from thrifty.training.args import Args
    from thrifty.training.train import main

    out = tmp_path_factory.mktemp("policies")
    args = Args(
        name="smoke", out=str(out), seed=3, iterations=1, teacher_steps=120, clone_epochs=2,
        train_batch=128, minibatch=64, epochs=1, n_nodes=6, n_applications=1, episode_steps=10,
        max_nodes=8, max_workloads=32, hidden=32, num_cpus=2, progress=False, validate_every=1,
        validation_steps=10,
    )
    return main(args, command="pytest tests/train (smoke)")
