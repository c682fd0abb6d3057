"""What both environments share: building a simulator per episode and scoring a step."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from thrifty.config import RewardConfig, ScenarioConfig, SimulatorConfig
from thrifty.energy import PowerModel
from thrifty.reward import cluster_reward, workload_rewards
from thrifty.sim import Simulator, StepResult, build_scenario
from thrifty.snapshot import ClusterSnapshot
from thrifty.traces.model import Trace

FINITE_FLOAT32 = float(np.finfo(np.float32).max)
"""Bound of the feature observations: any finite float32. The features (watts, bytes, ratios) have
no natural bound, but they are always finite; an infinite bound would let inf pass as a valid
observation, and Gymnasium's checker rightly warns about it."""

StepInfo = dict[str, float | np.ndarray]
"""An environment step's ``info``: figures of the cluster, and arrays with one entry per workload."""


@dataclass(frozen=True, kw_only=True)
class EpisodeConfig:
    """How an episode is made: which traces, what cluster, how long."""

    scenario: ScenarioConfig = field(default_factory=ScenarioConfig)
    """Cluster size, applications and scales of the scenario built from the traces."""
    simulator: SimulatorConfig = field(default_factory=SimulatorConfig)
    """Dynamics of the simulator."""
    reward: RewardConfig = field(default_factory=RewardConfig)
    """Weights of the reward terms."""
    episode_steps: int = 240
    """Simulator steps per episode (240 steps of 60 s are 4 h)."""

    def __post_init__(self) -> None:
        if self.episode_steps < 1:
            raise ValueError(f"EpisodeConfig.episode_steps: must be >= 1, got {self.episode_steps}")
        if self.scenario.step_seconds != self.simulator.step_seconds:
            raise ValueError(
                "EpisodeConfig.simulator.step_seconds: must equal scenario.step_seconds "
                f"({self.simulator.step_seconds} != {self.scenario.step_seconds})"
            )


DEFAULT_EPISODE_CONFIG = EpisodeConfig()
"""The environments' default episode (one shared instance: the config is frozen)."""


def new_simulator(traces: Sequence[Trace], config: EpisodeConfig, seed: int, power: PowerModel) -> Simulator:
    """A fresh simulator on a scenario drawn from ``traces`` with ``seed``.

    Each episode seed draws its own nodes, applications and trace windows, so an agent sees
    many clusters rather than memorising one.
    """
    scenario = build_scenario(traces, config=config.scenario, seed=seed)
    simulator = Simulator(scenario, config=config.simulator, power_model=power, seed=seed)
    simulator.reset()
    return simulator


def step_reward(
    result: StepResult, snapshot: ClusterSnapshot, power: PowerModel, config: RewardConfig
) -> tuple[float, StepInfo]:
    """The cluster reward of one simulator step and its parts, for ``info``.

    The energy reference is the cluster's power with every node on and idle, so the energy term
    is 1 for an idle, fully powered cluster and falls as nodes go to standby.
    """
    workloads = snapshot.workloads
    watts = power.workload_watts(snapshot) + result.workload_network_watts
    terms = workload_rewards(
        watts=watts,
        latency_p95_seconds=result.workload_latency_p95_seconds,
        slo_latency_p95_seconds=workloads.slo_latency_p95_seconds,
        energy_weight=workloads.energy_weight,
        oom_kills=result.workload_oom_kills,
        throttled_fraction=result.workload_throttled_fraction,
        evictions=result.workload_evictions,
        churn=result.workload_churn,
        config=config,
    )
    nodes = snapshot.nodes
    all_awake = replace(nodes, standby=np.zeros(len(nodes), dtype=bool))
    reference = float(power.idle_watts(all_awake).sum())
    reward = cluster_reward(terms, cluster_watts=result.cluster_watts,
                            cluster_reference_watts=max(reference, 1.0), config=config)
    info: StepInfo = {
        "cluster_watts": float(result.cluster_watts),
        "energy_joules": float(result.energy_joules),
        "slo_violations": int(np.sum(result.workload_slo_violated)),
        "oom_kills": int(result.oom_kills),
        "powered_on_nodes": int(np.sum(~result.node_standby)),
        "pending_pods": int(result.pending_pods),
        # Each workload's own reward, for training one agent per workload (credit assignment).
        "workload_rewards": terms.reward.astype(np.float64),
    }
    return reward, info
