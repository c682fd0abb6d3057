#!/usr/bin/env python3
"""Training throughput: environment steps per second of RLlib PPO, against raw env stepping.

Prints ``name: value unit`` lines::

    training_throughput_placement: 40.0 env-steps/s
    env_throughput_placement: 300.0 env-steps/s      (baseline: the env alone, random actions)
    training_vs_env_placement: 0.13 x

and the same for sizing. PPO's figure covers sampling and learning (cloning excluded), with
the settings below: a small cluster and 3 iterations of 512 steps per task.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np

from thrifty.training.args import TASKS, Args
from thrifty.training.train import main, make_env

ARGS = dict(iterations=3, teacher_steps=200, clone_epochs=1, train_batch=512, minibatch=128, epochs=2,
            n_nodes=8, n_applications=2, episode_steps=30, max_nodes=8, max_workloads=32, progress=False,
            validate_every=0)


def env_throughput(task: str, args: Args, steps: int = 400) -> float:
    env = make_env(task, args)
    env.action_space.seed(0)
    observation, _ = env.reset(seed=0)
    started = time.perf_counter()
    for i in range(steps):
        if task == "placement":
            action = int(np.flatnonzero(observation["mask"])[0]) if observation["mask"].any() else 0
        else:
            action = env.action_space.sample()
        observation, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            observation, _ = env.reset(seed=i)
    return steps / (time.perf_counter() - started)


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as out:
        args = Args(name="bench", out=out, **ARGS)
        raw = {task: env_throughput(task, args) for task in TASKS}
        artefact = main(args, command="hack/perf/train_bench.py")
        trained = json.loads((Path(artefact) / "policy.json").read_text())["training"]["ppo_env_steps_per_second"]
    for task in TASKS:
        print(f"env_throughput_{task}: {raw[task]:.1f} env-steps/s")
        print(f"training_vs_env_{task}: {trained[task] / raw[task]:.2f} x")
