"""`thrifty train --address` on a real Ray cluster started with `ray start`: a head and one
worker, the env runners on the worker.

The head offers no CPU and an env runner needs one, so RLlib can only place the env runner on the
worker; with ``--num-env-runners 1`` every sample comes from that remote runner (the driver's
local runner does not sample), so the env steps counted below were collected on the worker.
"""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO
from tests.support.ray_cluster import ray_cluster
from thrifty.policy.loader import load_policy

TINY = ["--seed", "3", "--iterations", "1", "--teacher-steps", "120", "--clone-epochs", "2", "--train-batch", "128",
        "--minibatch", "64", "--epochs", "1", "--n-nodes", "6", "--n-applications", "1", "--episode-steps", "10",
        "--max-nodes", "8", "--max-workloads", "32", "--hidden", "32", "--progress", "false",
        "--validate-every", "1", "--validation-steps", "10"]
"""The smoke run of tests/train/conftest.py, as flags."""


def test_training_on_a_ray_cluster_samples_on_the_worker(tmp_path: Path) -> None:
    thrifty = Path(sys.executable).parent / "thrifty"
    with ray_cluster() as cluster:
        proc = subprocess.run([str(thrifty), "train", "--address", cluster.address, "--num-env-runners", "1",
                               "--name", "distributed", "--out", str(tmp_path), *TINY],
                              capture_output=True, text=True, timeout=900, cwd=REPO, env=cluster.env)
        runners = cluster.actor_logs("EnvRunner")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert runners, "no env runner actor ran on the cluster (was --address ignored?)"
    artefact = tmp_path / "distributed"
    with (artefact / "training_metrics.csv").open() as f:
        rows = [r for r in csv.DictReader(f) if r["iteration"] != "0"]
    assert {r["task"] for r in rows} == {"placement", "sizing"}
    assert all(float(r["env_steps"]) > 0 for r in rows), rows
    policy = load_policy(str(artefact))
    assert policy.info.name == "distributed" and policy.info.backend == "numpy"
