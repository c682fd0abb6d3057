"""Train Thrifty's placement and sizing policies with RLlib PPO on the trace-driven simulator.

CleanRL-style: one readable script, every knob in :class:`Args`, a named run. For each task
(placement, then sizing) it:

1. rolls out the heuristic on the training split to fit the observation normaliser and to
   record the heuristic's actions and the returns they earned;
2. pre-trains the policy network on those actions (behaviour cloning), so PPO starts from the
   heuristic rather than from random placements that no SLO survives, and the value network on
   those returns, so PPO's first advantages are not noise that drags the cloned policy away;
3. runs PPO (RLlib, new API stack) from there, with a progress bar showing the return, episode
   length, power and SLO violations, and writes the metrics to CSV. Placement is one agent
   placing one pod per step; sizing is one agent per workload sharing one network
   (:mod:`thrifty.training.workload_agents`), so each workload's choices earn its own reward;
4. scores the cloned start and every ``validate_every`` iterations on validation scenarios of
   the training split and keeps the best iterate (:mod:`thrifty.training.validation`);
5. saves that iterate's RLlib module checkpoint and exports its weights to ``policies/<name>/``.

Evaluation is separate (``thrifty bench --policies rl:policies/<name>``) and never reuses the
training run's numbers.

Run: ``thrifty train --name default`` (local Ray) or ``--address ray://host:10001``.
"""

from __future__ import annotations

import csv
import dataclasses
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from thrifty.envs import PlacementEnv, SizingEnv
from thrifty.features import PLACEMENT_ROW_NAMES, SCHEMA_VERSION, WORKLOAD_FEATURE_NAMES, RunningNormaliser
from thrifty.policy.heuristic import HeuristicPolicy
from thrifty.training.args import TASKS, Args
from thrifty.training.workload_agents import WorkloadAgentsEnv


def make_env(task: str, args: Args, split: str = "train"):
    """The gymnasium environment of ``task`` on the shipped slices of ``split``."""
    from thrifty.datasets import load_split

    traces = load_split(split)
    if task == "placement":
        return PlacementEnv(traces=traces, config=args.episode_config(), max_nodes=args.max_nodes)
    return SizingEnv(traces=traces, config=args.episode_config(), max_workloads=args.max_workloads)


def make_rllib_env(task: str, args: Args):
    """What RLlib samples: the placement env, or the sizing env with one agent per workload."""
    env = make_env(task, args)
    return env if task == "placement" else WorkloadAgentsEnv(env)


@dataclass
class TeacherData:
    """The heuristic's rollouts, in the shape the task's module reads."""

    observations: dict[str, np.ndarray]
    """Placement: ``nodes`` and ``mask`` stacked per decision; sizing: ``rows``, one per
    workload and step."""
    actions: np.ndarray
    """The heuristic's action per observation."""
    returns: np.ndarray
    """Discounted return (``Args.gamma``) from each observation to the end of its episode, of
    the reward the agent of that observation gets in training."""
    normaliser: RunningNormaliser


def discounted_returns(rewards: np.ndarray, gamma: float) -> np.ndarray:
    """Returns along axis 0 of (steps, ...) rewards, to the end of the episode."""
    returns = np.zeros_like(rewards, dtype=float)
    running = np.zeros(rewards.shape[1:])
    for t in range(len(rewards) - 1, -1, -1):
        running = rewards[t] + gamma * running
        returns[t] = running
    return returns


def record_teacher(task: str, args: Args) -> TeacherData:
    """Heuristic rollouts of ``Args.teacher_steps`` steps, and the normaliser fitted on them."""
    env = make_env(task, args)
    teacher = HeuristicPolicy()
    placement = task == "placement"
    normaliser = RunningNormaliser.new(PLACEMENT_ROW_NAMES if placement else WORKLOAD_FEATURE_NAMES, SCHEMA_VERSION)
    observations, actions = [], []
    returns: list[float] = []
    episode_rewards: list[np.ndarray] = []
    observation, _ = env.reset(seed=args.seed)
    episode = 0
    for step in range(args.teacher_steps):
        action = env.policy_action(teacher)
        mask = observation["mask"] > 0
        if placement:
            normaliser.update(observation["nodes"][mask])
            observations.append(observation)
            actions.append(int(action))
        else:
            normaliser.update(observation["workloads"][mask])
            observations.append(observation["workloads"][mask])
            actions.append(np.asarray(action).reshape(-1, 3)[mask])
        observation, reward, terminated, truncated, info = env.step(action)
        # The reward of this observation's agent: the placement agent's, or each workload's.
        episode_rewards.append(np.array(reward) if placement else reward + info["workload_rewards"])
        if terminated or truncated or step == args.teacher_steps - 1:
            returns.extend(discounted_returns(np.stack(episode_rewards), args.gamma))
            episode_rewards = []
            episode += 1
            observation, _ = env.reset(seed=args.seed + episode)
    if placement:
        stacked = {key: np.stack([o[key] for o in observations]) for key in ("nodes", "mask")}
        return TeacherData(stacked, np.asarray(actions), np.asarray(returns, dtype=float), normaliser)
    return TeacherData({"rows": np.concatenate(observations)}, np.concatenate(actions),
                       np.concatenate(returns), normaliser)


def model_config(args: Args, normaliser: RunningNormaliser, initial_state: dict | None) -> dict:
    return {
        "hidden": args.hidden,
        "layers": args.layers,
        "mean": normaliser.mean.tolist(),
        "std": normaliser.std.tolist(),
        "clip": normaliser.clip,
        "initial_state": initial_state,
    }


def module_spaces(task: str, args: Args):
    """Observation and action space of one agent of ``task`` (what its RLModule is built on)."""
    env = make_rllib_env(task, args)
    if task == "placement":
        return env.observation_space, env.action_space
    agent = env.possible_agents[0]
    return env.observation_spaces[agent], env.action_spaces[agent]


def clone_teacher(task: str, args: Args, data: TeacherData) -> dict:
    """Behaviour cloning of the heuristic's actions (cross-entropy) for the policy layers, and
    regression on the heuristic's returns (squared error) for the value layers."""
    import torch
    from ray.rllib.core.columns import Columns

    from thrifty.training.rlmodule import PlacementModule, SizingModule

    torch.manual_seed(args.seed)
    module_class = PlacementModule if task == "placement" else SizingModule
    observation_space, action_space = module_spaces(task, args)
    module = module_class(observation_space=observation_space, action_space=action_space,
                          model_config=model_config(args, data.normaliser, None))
    observations = {key: torch.as_tensor(value) for key, value in data.observations.items()}
    actions, returns = torch.as_tensor(data.actions), torch.as_tensor(data.returns, dtype=torch.float32)
    optimiser = torch.optim.Adam(module.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(args.seed)
    for _ in range(args.clone_epochs):
        order = torch.randperm(len(actions), generator=generator)
        for start in range(0, len(order), args.minibatch):
            index = order[start:start + args.minibatch]
            batch = {Columns.OBS: observations["rows"][index] if task == "sizing"
                     else {k: v[index] for k, v in observations.items()}}
            logits = module.forward_train(batch)[Columns.ACTION_DIST_INPUTS]
            distribution = module.get_train_action_dist_cls().from_logits(logits)
            # The policy and value layers are disjoint, so one summed loss trains both.
            loss = (-distribution.logp(actions[index]).mean()
                    + torch.nn.functional.mse_loss(module.compute_values(batch), returns[index]))
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    return {k: v.detach().cpu().numpy() for k, v in module.state_dict().items()}


def ppo_config(task: str, args: Args, normaliser: RunningNormaliser, initial_state: dict | None):
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.core.rl_module.multi_rl_module import MultiRLModuleSpec
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec
    from ray.tune.registry import register_env

    from thrifty.training.callbacks import EpisodeFigures
    from thrifty.training.rlmodule import PlacementModule, SizingModule

    env_name = f"thrifty-{task}"
    register_env(env_name, lambda _: make_rllib_env(task, args))
    module_class = PlacementModule if task == "placement" else SizingModule
    spec = RLModuleSpec(module_class=module_class, model_config=model_config(args, normaliser, initial_state))
    config = (
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
            vf_clip_param=args.vf_clip_param,
        )
        .callbacks(EpisodeFigures)
        .debugging(seed=args.seed)
    )
    if task == "placement":
        return config.rl_module(rl_module_spec=spec)
    # Every workload's agent maps to the one sizing module.
    return (config
            .multi_agent(policies={task}, policy_mapping_fn=lambda agent, episode, **kwargs: task)
            .rl_module(rl_module_spec=MultiRLModuleSpec(rl_module_specs={task: spec})))


def module_id(task: str) -> str:
    """The RLlib module of ``task`` in its algorithm."""
    from ray.rllib.core import DEFAULT_MODULE_ID

    return DEFAULT_MODULE_ID if task == "placement" else task


def _module_state(algorithm, task: str) -> dict[str, np.ndarray]:
    module = algorithm.get_module(module_id(task))
    return {k: v.detach().cpu().numpy().copy() for k, v in module.state_dict().items()}


def _save_checkpoint(algorithm, task: str, artefact_dir: Path) -> None:
    checkpoint = (artefact_dir / "rllib" / task).resolve()
    shutil.rmtree(checkpoint, ignore_errors=True)
    algorithm.get_module(module_id(task)).save_to_path(str(checkpoint))


def train_task(task: str, args: Args, log: Callable[[dict], None], artefact_dir: Path) -> dict:
    """Clone, then PPO, for one task, keeping the best validated iterate; returns what the
    exporter needs. ``log`` receives one metrics row per iteration."""
    from tqdm import tqdm

    from thrifty.training.validation import Validator, better, numpy_policy

    started = time.perf_counter()
    teacher = record_teacher(task, args)
    initial = clone_teacher(task, args, teacher) if args.clone_epochs else None
    algorithm = ppo_config(task, args, teacher.normaliser, initial).build_algo()
    ppo_started = time.perf_counter()
    validator = Validator(n_nodes=args.n_nodes, steps=args.validation_steps) if args.validate_every else None
    heuristic = HeuristicPolicy()
    validation_seconds = 0.0

    def validate(state: dict[str, np.ndarray]):
        nonlocal validation_seconds
        assert validator is not None, "validation runs only with a validator"
        began = time.perf_counter()
        trained = numpy_policy(task, state, teacher.normaliser, args.layers)
        # The other task's decisions stay the heuristic's, so the score is this network's alone.
        score = validator.score(trained, heuristic) if task == "placement" else validator.score(heuristic, trained)
        validation_seconds += time.perf_counter() - began
        return score

    if validator is not None:
        reference = validator.score(heuristic, heuristic)
        state = _module_state(algorithm, task)
        kept = {"iteration": 0, "state": state, "score": validate(state)}
        _save_checkpoint(algorithm, task, artefact_dir)
        log({"run": args.run_name, "task": task, "iteration": 0, "env_steps": 0,
             "seconds": round(time.perf_counter() - started, 2),
             "validation_energy_kwh": round(kept["score"].energy_kwh, 4),
             "validation_slo_violation_rate": round(kept["score"].slo_violation_rate, 5)})
    bar = tqdm(range(1, args.iterations + 1), desc=f"{args.run_name} {task}", disable=not args.progress)
    env_steps = 0
    for iteration in bar:
        result = algorithm.train()
        runners = result.get("env_runners", {})
        env_steps = int(runners.get("num_env_steps_sampled_lifetime", env_steps))
        row = {
            "run": args.run_name,
            "task": task,
            "iteration": iteration,
            "env_steps": env_steps,
            "seconds": round(time.perf_counter() - started, 2),
            "episode_return_mean": runners.get("episode_return_mean", float("nan")),
            "episode_len_mean": runners.get("episode_len_mean", float("nan")),
            "cluster_watts_mean": runners.get("cluster_watts", float("nan")),
            "slo_violations_mean": runners.get("slo_violations", float("nan")),
        }
        if validator is not None and (iteration % args.validate_every == 0 or iteration == args.iterations):
            state = _module_state(algorithm, task)
            score = validate(state)
            row["validation_energy_kwh"] = round(score.energy_kwh, 4)
            row["validation_slo_violation_rate"] = round(score.slo_violation_rate, 5)
            if better(score, kept["score"], reference):
                kept = {"iteration": iteration, "state": state, "score": score}
                _save_checkpoint(algorithm, task, artefact_dir)
        log(row)
        bar.set_postfix(ret=f"{row['episode_return_mean']:.2f}", len=f"{row['episode_len_mean']:.0f}",
                        W=f"{row['cluster_watts_mean']:.0f}", slo=f"{row['slo_violations_mean']:.2f}")
    if validator is None:
        kept = {"iteration": args.iterations, "state": _module_state(algorithm, task)}
        _save_checkpoint(algorithm, task, artefact_dir)
    algorithm.stop()
    ppo_seconds = time.perf_counter() - ppo_started - validation_seconds
    validation = None
    if validator is not None:
        validation = {"seeds": list(validator.seeds), "steps": validator.steps,
                      "heuristic": dataclasses.asdict(reference), "kept": dataclasses.asdict(kept["score"])}
    return {"state": kept["state"], "normaliser": teacher.normaliser, "seconds": time.perf_counter() - started,
            "env_steps": env_steps, "steps_per_second": env_steps / ppo_seconds,
            "kept_iteration": kept["iteration"], "validation": validation}


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
            "cluster_watts_mean", "slo_violations_mean", "validation_energy_kwh", "validation_slo_violation_rate"])
        writer.writeheader()

        def log(row: dict) -> None:
            writer.writerow(row)
            stream.flush()  # so that a long run can be watched as it goes

        for task in TASKS:
            results[task] = train_task(task, args, log, artefact_dir)
    ray.shutdown()
    write_artefact(artefact_dir, args=dataclasses.asdict(args), results=results, command=command)
    for task, result in results.items():
        print(f"training_throughput_{task}: {result['steps_per_second']:.1f} env-steps/s")
    print(artefact_dir)
    return artefact_dir
