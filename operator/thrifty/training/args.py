"""The settings of a training run, as one dataclass (CleanRL's ``Args``).

Kept apart from :mod:`thrifty.training.train` so that ``thrifty train --help`` (which builds its
flags from these fields) imports neither ray, torch nor gymnasium: the operator's image has none
of them, and ``thrifty run`` must start there.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from thrifty.envs.episode import EpisodeConfig

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
    n_nodes: int = 16
    """Nodes per training scenario."""
    n_applications: int = 4
    """Call-graph applications per training scenario."""
    episode_steps: int = 120
    """Simulator steps (60 s each) per episode."""
    max_nodes: int = 16
    """Padding of the placement observation (>= n_nodes)."""
    max_workloads: int = 64
    """Most workloads a scenario may have (one agent each; 4 applications of up to 16)."""
    hidden: int = 64
    """Units per hidden layer."""
    layers: int = 2
    """Hidden layers of the shared row network."""
    lr: float = 1e-4
    """PPO learning rate."""
    gamma: float = 0.95
    """Discount factor: an effective horizon of about 20 decisions, as long as a sizing change
    takes to show in latency and power."""
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
    vf_clip_param: float = 1000.0
    """Clip of the value loss; loose, since returns are tens of reward units and the value
    network has its own layers."""
    teacher_steps: int = 2000
    """Heuristic environment steps recorded per task for the normaliser and cloning."""
    clone_epochs: int = 30
    """Behaviour-cloning passes over the recorded steps (0 disables cloning, and the value
    pre-training with it)."""
    num_env_runners: int = 0
    """Remote sampling workers (0 samples in the driver: best on a 2-core machine)."""
    address: str = ""
    """Ray address of an existing cluster; empty starts a local Ray."""
    num_cpus: int = 0
    """CPUs for a local Ray (0: all)."""
    progress: bool = True
    """Show a progress bar."""
    validate_every: int = 5
    """Score the policy on validation scenarios every this many iterations and keep the best
    iterate (:mod:`thrifty.training.validation`); 0 keeps the last iterate instead."""
    validation_steps: int = 360
    """Simulator steps (60 s each) of each validation scenario."""

    def __post_init__(self) -> None:
        if self.max_nodes < self.n_nodes:
            raise ValueError(f"--max-nodes ({self.max_nodes}) must be >= --n-nodes ({self.n_nodes})")
        for name in ("iterations", "n_nodes", "n_applications", "episode_steps", "hidden", "layers",
                     "train_batch", "minibatch", "epochs", "teacher_steps", "validation_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')}: must be >= 1, got {getattr(self, name)}")
        if self.validate_every < 0:
            raise ValueError(f"--validate-every: must be >= 0, got {self.validate_every}")
        if not self.run_name:
            self.run_name = f"{self.name}-s{self.seed}-{int(time.time())}"

    def episode_config(self) -> EpisodeConfig:
        # Imported here: thrifty.envs imports gymnasium (see the module docstring).
        from thrifty.config import ScenarioConfig
        from thrifty.envs.episode import EpisodeConfig

        return EpisodeConfig(
            scenario=ScenarioConfig(n_nodes=self.n_nodes, n_applications=self.n_applications),
            episode_steps=self.episode_steps,
        )
