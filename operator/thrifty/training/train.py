"""Train Thrifty's placement and sizing policies with RLlib PPO on the trace-driven simulator.

CleanRL-style: one readable script, every knob in :class:`Args`, a named run. For each task
(placement, then sizing) it:

1. rolls out the heuristic on the training split to fit the observation normaliser and to
   record the heuristic's actions;
2. pre-trains the policy network on those actions (behaviour cloning), so PPO starts from the
   heuristic rather than from random placements that no SLO survives;
3. runs PPO (RLlib, new API stack) from there, with a progress bar showing the return, episode
   length, power and SLO violations, and writes the metrics to CSV;
4. saves the RLlib module checkpoint and exports the weights to ``policies/<name>/``.

Evaluation is separate (``thrifty bench --policies rl:policies/<name>``) and never reuses the
training run's numbers.

Run: ``thrifty train --name default`` (local Ray) or ``--address ray://host:10001``.
"""

from __future__ import annotations

import csv
import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from thrifty.config import ScenarioConfig
from thrifty.envs import PlacementEnv, SizingEnv
from thrifty.envs.episode import EpisodeConfig
from thrifty.features import PLACEMENT_ROW_NAMES, SCHEMA_VERSION, WORKLOAD_FEATURE_NAMES, RunningNormaliser
from thrifty.policy.heuristic import HeuristicPolicy

TASKS = ("placement", "sizing")


@dataclass
class Args:
    """Every setting of a training run (``thrifty train --help`` lists them as flags)."""

    name: str = "default"
    """Policy name: the artefact goes to ``<out>/<name>/``."""
    run_name: str = ""
    """Name of this run in logs and metrics; default ``<name>-s<seed>-<unix time>``."""
    out: str = "policies"
    """Directory holding policy artefacts."""
    seed: int = 1
    """Seeds scenarios, networks and PPO sampling."""
    iterations: int = 10
    """PPO iterations per task."""
    n_nodes: int = 12
    """Nodes per training scenario."""
    n_applications: int = 2
    """Call-graph applications per training scenario."""
    episode_steps: int = 60
    """Simulator steps (60 s each) per episode."""
    max_nodes: int = 16
    """Padding of the placement observation (>= n_nodes)."""
    max_workloads: int = 32
    """Padding of the sizing observation (>= workloads per scenario)."""
    hidden: int = 64
    """Units per hidden layer."""
    layers: int = 2
    """Hidden layers of the shared row network."""
    lr: float = 3e-4
    """PPO learning rate."""
    gamma: float = 0.99
    """Discount factor."""
    train_batch: int = 1024
    """Environment steps per PPO iteration."""
    minibatch: int = 256
    """SGD minibatch size."""
    epochs: int = 4
    """SGD passes over each batch."""
    entropy_coeff: float = 0.005
    """Entropy bonus (small: the behaviour-cloned start is already good)."""
    clip_param: float = 0.1
    """PPO clip; tight, to stay near the cloned policy early on."""
    teacher_steps: int = 2000
    """Heuristic environment steps recorded per task for the normaliser and cloning."""
    clone_epochs: int = 30
    """Behaviour-cloning passes over the recorded steps (0 disables cloning)."""
    num_env_runners: int = 0
    """Remote sampling workers (0 samples in the driver: best on a 2-core machine)."""
    address: str = ""
    """Ray address of an existing cluster; empty starts a local Ray."""
    num_cpus: int = 0
    """CPUs for a local Ray (0: all)."""
    progress: bool = True
    """Show a progress bar."""

    def __post_init__(self) -> None:
        if self.max_nodes < self.n_nodes:
            raise ValueError(f"--max-nodes ({self.max_nodes}) must be >= --n-nodes ({self.n_nodes})")
        for name in ("iterations", "n_nodes", "n_applications", "episode_steps", "hidden", "layers",
                     "train_batch", "minibatch", "epochs", "teacher_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')}: must be >= 1, got {getattr(self, name)}")
        if not self.run_name:
            self.run_name = f"{self.name}-s{self.seed}-{int(time.time())}"

    def episode_config(self) -> EpisodeConfig:
        return EpisodeConfig(
            scenario=ScenarioConfig(n_nodes=self.n_nodes, n_applications=self.n_applications),
            episode_steps=self.episode_steps,
        )


def make_env(task: str, args: Args, split: str = "train"):
    """The environment of ``task`` on the shipped slices of ``split``."""
    from thrifty.datasets import load_split

    traces = load_split(split)
    if task == "placement":
        return PlacementEnv(traces=traces, config=args.episode_config(), max_nodes=args.max_nodes)
    return SizingEnv(traces=traces, config=args.episode_config(), max_workloads=args.max_workloads)


def record_teacher(task: str, args: Args) -> tuple[list[dict], list[np.ndarray], RunningNormaliser]:
    """Heuristic rollouts: observations, the heuristic's actions, and the fitted normaliser."""
    env = make_env(task, args)
    teacher = HeuristicPolicy()
    names = PLACEMENT_ROW_NAMES if task == "placement" else WORKLOAD_FEATURE_NAMES
    rows_key = "nodes" if task == "placement" else "workloads"
    normaliser = RunningNormaliser.new(names, SCHEMA_VERSION)
    observations, actions = [], []
    observation, _ = env.reset(seed=args.seed)
    episode = 0
    for _ in range(args.teacher_steps):
        action = env.policy_action(teacher)
        normaliser.update(observation[rows_key][observation["mask"] > 0])
        observations.append(observation)
        actions.append(np.asarray(action))
        observation, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            episode += 1
            observation, _ = env.reset(seed=args.seed + episode)
    return observations, actions, normaliser


def model_config(args: Args, normaliser: RunningNormaliser, initial_state: dict | None) -> dict:
    return {
        "hidden": args.hidden,
        "layers": args.layers,
        "mean": normaliser.mean.tolist(),
        "std": normaliser.std.tolist(),
        "clip": normaliser.clip,
        "initial_state": initial_state,
    }


def clone_teacher(task: str, args: Args, env, observations: list[dict], actions: list[np.ndarray],
                  normaliser: RunningNormaliser) -> dict:
    """Behaviour cloning: fit the policy logits to the heuristic's actions (cross-entropy)."""
    import torch
    from ray.rllib.core.columns import Columns

    from thrifty.training.rlmodule import PlacementModule, SizingModule

    torch.manual_seed(args.seed)
    module_class = PlacementModule if task == "placement" else SizingModule
    module = module_class(observation_space=env.observation_space, action_space=env.action_space,
                          model_config=model_config(args, normaliser, None))
    batch_obs = {key: torch.as_tensor(np.stack([o[key] for o in observations])) for key in observations[0]}
    batch_actions = torch.as_tensor(np.stack(actions))
    optimiser = torch.optim.Adam(module.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(args.seed)
    for _ in range(args.clone_epochs):
        order = torch.randperm(len(batch_actions), generator=generator)
        for start in range(0, len(order), args.minibatch):
            index = order[start:start + args.minibatch]
            logits = module.forward_train({Columns.OBS: {k: v[index] for k, v in batch_obs.items()}})[
                Columns.ACTION_DIST_INPUTS]
            distribution = module.get_train_action_dist_cls().from_logits(logits)
            loss = -distribution.logp(batch_actions[index]).mean()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    return {k: v.detach().cpu().numpy() for k, v in module.state_dict().items()}


def ppo_config(task: str, args: Args, normaliser: RunningNormaliser, initial_state: dict | None):
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec
    from ray.tune.registry import register_env

    from thrifty.training.callbacks import EpisodeFigures
    from thrifty.training.rlmodule import PlacementModule, SizingModule

    env_name = f"thrifty-{task}"
    register_env(env_name, lambda _: make_env(task, args))
    module_class = PlacementModule if task == "placement" else SizingModule
    return (
        PPOConfig()
        .environment(env_name)
        .framework("torch")
        .env_runners(num_env_runners=args.num_env_runners, rollout_fragment_length="auto")
        .training(
            lr=args.lr,
            gamma=args.gamma,
            train_batch_size_per_learner=args.train_batch,
            minibatch_size=args.minibatch,
            num_epochs=args.epochs,
            entropy_coeff=args.entropy_coeff,
            clip_param=args.clip_param,
        )
        .rl_module(rl_module_spec=RLModuleSpec(
            module_class=module_class, model_config=model_config(args, normaliser, initial_state)))
        .callbacks(EpisodeFigures)
        .debugging(seed=args.seed)
    )


def train_task(task: str, args: Args, writer: csv.DictWriter, artefact_dir: Path) -> dict:
    """Clone, then PPO, for one task; returns what the exporter needs."""
    from tqdm import tqdm

    started = time.perf_counter()
    env = make_env(task, args)
    observations, actions, normaliser = record_teacher(task, args)
    initial = clone_teacher(task, args, env, observations, actions, normaliser) if args.clone_epochs else None
    algorithm = ppo_config(task, args, normaliser, initial).build_algo()
    ppo_started = time.perf_counter()
    bar = tqdm(range(args.iterations), desc=f"{args.run_name} {task}", disable=not args.progress)
    env_steps = 0
    for iteration in bar:
        result = algorithm.train()
        runners = result.get("env_runners", {})
        env_steps = int(runners.get("num_env_steps_sampled_lifetime", env_steps))
        row = {
            "run": args.run_name,
            "task": task,
            "iteration": iteration + 1,
            "env_steps": env_steps,
            "seconds": round(time.perf_counter() - started, 2),
            "episode_return_mean": runners.get("episode_return_mean", float("nan")),
            "episode_len_mean": runners.get("episode_len_mean", float("nan")),
            "cluster_watts_mean": runners.get("cluster_watts", float("nan")),
            "slo_violations_mean": runners.get("slo_violations", float("nan")),
        }
        writer.writerow(row)
        bar.set_postfix(ret=f"{row['episode_return_mean']:.2f}", len=f"{row['episode_len_mean']:.0f}",
                        W=f"{row['cluster_watts_mean']:.0f}", slo=f"{row['slo_violations_mean']:.2f}")
    module = algorithm.get_module()
    checkpoint = artefact_dir / "rllib" / task
    module.save_to_path(str(checkpoint.resolve()))
    state = {k: v.detach().cpu().numpy() for k, v in module.state_dict().items()}
    algorithm.stop()
    ppo_seconds = time.perf_counter() - ppo_started
    return {"state": state, "normaliser": normaliser, "seconds": time.perf_counter() - started,
            "env_steps": env_steps, "steps_per_second": env_steps / ppo_seconds}


def main(args: Args, command: str) -> Path:
    import ray

    from thrifty.training.export import write_artefact

    artefact_dir = Path(args.out) / args.name
    artefact_dir.mkdir(parents=True, exist_ok=True)
    if args.address:
        ray.init(address=args.address)
    else:
        ray.init(num_cpus=args.num_cpus or None, include_dashboard=False, log_to_driver=False)
    results = {}
    metrics_path = artefact_dir / "training_metrics.csv"
    with metrics_path.open("w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=[
            "run", "task", "iteration", "env_steps", "seconds", "episode_return_mean", "episode_len_mean",
            "cluster_watts_mean", "slo_violations_mean"])
        writer.writeheader()
        for task in TASKS:
            results[task] = train_task(task, args, writer, artefact_dir)
    ray.shutdown()
    write_artefact(artefact_dir, args=dataclasses.asdict(args), results=results, command=command)
    for task, result in results.items():
        print(f"training_throughput_{task}: {result['steps_per_second']:.1f} env-steps/s")
    print(artefact_dir)
    return artefact_dir
