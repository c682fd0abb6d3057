"""The policies a benchmark can run, by name.

A name is ``PLACEMENT+SIZING`` or ``PLACEMENT+SIZING+NODES`` (a placement policy and a sizing
policy run side by side, as a cluster runs a scheduler next to autoscalers, and for a baseline
what manages its nodes), an alias, or ``rl:DIRECTORY``:

==================  ===========================================================================
placement           ``kube-default``, ``most-allocated``, ``trimaran``, ``network-aware``,
                    ``random`` (:mod:`thrifty.baselines`), ``heuristic`` (Thrifty's)
sizing              ``static`` (as deployed), ``hpa``, ``vpa`` (CPU and memory), ``stack`` (HPA
                    on CPU + VPA on memory), ``heuristic`` (Thrifty's)
nodes               baselines only: ``cluster-autoscaler`` (the default), ``descheduler-hnu``
                    (the descheduler's HighNodeUtilization next to the Cluster Autoscaler),
                    ``karpenter-underutilized`` (Karpenter's WhenEmptyOrUnderutilized
                    consolidation instead), :mod:`thrifty.baselines.consolidation`;
                    Thrifty's placement only: ``consolidation`` (Thrifty's drains of
                    under-used nodes, :mod:`thrifty.policy.consolidation`)
aliases             ``thrifty-heuristic`` = ``heuristic+heuristic``,
                    ``thrifty-consolidation`` = ``heuristic+heuristic+consolidation``,
                    ``k8s-stack`` = ``kube-default+stack``
``rl:DIRECTORY``    a trained policy (:func:`thrifty.policy.loader.load_policy`) for both
==================  ===========================================================================

Baseline parameters come from :mod:`thrifty.baselines.calibrated` unless a spec overrides them
(calibration does). Baseline placements run next to a Cluster Autoscaler
(:mod:`thrifty.baselines.cluster_autoscaler`), which drains under-used nodes and keeps removed
ones out of scheduling while others fit. Scale-in under a baseline sizing policy removes the pods a ReplicaSet
would (see :func:`thrifty.bench.runner.replicaset_victims`); Thrifty's policies choose their
own, as the operator does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from thrifty.baselines import (
    HorizontalPodAutoscaler,
    HpaConfig,
    KubeDefaultScoring,
    KubernetesStack,
    MostAllocatedScoring,
    NetworkAwareScoring,
    RandomPlacement,
    StaticSizing,
    TargetLoadPacking,
    VpaConfig,
    VpaRecommender,
    calibrated,
)
from thrifty.baselines.cluster_autoscaler import ClusterAutoscaler, ClusterAutoscalerNodes
from thrifty.baselines.consolidation import HighNodeUtilization, KarpenterConsolidation
from thrifty.baselines.vpa import MEMORY
from thrifty.config import SimulatorConfig
from thrifty.policy.base import Policy
from thrifty.policy.consolidation import ConsolidationConfig, Consolidator, CordonedNodes
from thrifty.policy.heuristic import HeuristicPolicy

RL_PREFIX = "rl:"

PARAMETERS: dict[str, float] = {
    "hpa_target": calibrated.HPA_TARGET_CPU_UTILISATION,
    "vpa_margin": calibrated.VPA_SAFETY_MARGIN_FRACTION,
    "vpa_cpu_percentile": calibrated.VPA_TARGET_CPU_PERCENTILE,
    "stack_hpa_target": calibrated.STACK_HPA_TARGET_CPU_UTILISATION,
    "stack_vpa_margin": calibrated.STACK_VPA_SAFETY_MARGIN_FRACTION,
    "trimaran_target": calibrated.TRIMARAN_TARGET_UTILISATION_PERCENT,
    "network_weight": calibrated.NETWORK_OVERHEAD_WEIGHT,
    "descheduler_threshold": calibrated.DESCHEDULER_THRESHOLD_FRACTION,
    "karpenter_consolidate_after": calibrated.KARPENTER_CONSOLIDATE_AFTER_SECONDS,
    "consolidation_under_used": ConsolidationConfig().under_used_fraction,
    "consolidation_disruption_kj": ConsolidationConfig().disruption_joules_per_move / 1000.0,
}
"""Tunable parameters and their calibrated values (baselines', and Thrifty's consolidation's)."""

PLACEMENTS: dict[str, Callable[[np.random.Generator, Mapping[str, float]], Policy]] = {
    "kube-default": lambda rng, p: KubeDefaultScoring(rng),
    "most-allocated": lambda rng, p: MostAllocatedScoring(rng),
    "trimaran": lambda rng, p: TargetLoadPacking(rng, target_utilisation_percent=p["trimaran_target"]),
    "network-aware": lambda rng, p: NetworkAwareScoring(rng, network_weight=int(p["network_weight"])),
    "random": lambda rng, p: RandomPlacement(rng),
    "heuristic": lambda rng, p: HeuristicPolicy(),
}

SIZINGS: dict[str, Callable[[Mapping[str, float]], Policy]] = {
    "static": lambda p: StaticSizing(),
    "hpa": lambda p: HorizontalPodAutoscaler(HpaConfig(target_cpu_utilisation=p["hpa_target"])),
    "vpa": lambda p: VpaRecommender(VpaConfig(safety_margin_fraction=p["vpa_margin"],
                                              target_cpu_percentile=p["vpa_cpu_percentile"])),
    "stack": lambda p: KubernetesStack(
        HpaConfig(target_cpu_utilisation=p["stack_hpa_target"]),
        VpaConfig(controlled_resources=(MEMORY,), safety_margin_fraction=p["stack_vpa_margin"])),
    "heuristic": lambda p: HeuristicPolicy(),
}

NODE_MANAGERS: dict[str, Callable[[Mapping[str, float]], tuple[ClusterAutoscaler, HighNodeUtilization | None]]] = {
    "cluster-autoscaler": lambda p: (ClusterAutoscaler(), None),
    "descheduler-hnu": lambda p: (ClusterAutoscaler(), HighNodeUtilization(
        cpu_threshold_fraction=p["descheduler_threshold"], memory_threshold_fraction=p["descheduler_threshold"])),
    "karpenter-underutilized": lambda p: (
        KarpenterConsolidation(consolidate_after_seconds=p["karpenter_consolidate_after"]), None),
}
"""What manages a baseline's nodes: (the autoscaler or consolidator, the descheduler or None)."""

THRIFTY_NODE_MANAGERS = frozenset({"consolidation"})
"""What may follow a Thrifty placement: its own consolidation (none by default)."""


def thrifty_consolidation_config(parameters: Mapping[str, float],
                                 simulator: SimulatorConfig = SimulatorConfig()) -> ConsolidationConfig:
    """The consolidation rule with the simulator's idle period and migration costs, and the
    ``consolidation_*`` values of ``parameters``."""
    migration = simulator.migration
    return ConsolidationConfig(under_used_fraction=parameters["consolidation_under_used"],
                               disruption_joules_per_move=parameters["consolidation_disruption_kj"] * 1000.0,
                               standby_after_idle_seconds=simulator.standby_after_idle_seconds,
                               startup_seconds=migration.startup_seconds, warmup_seconds=migration.warmup_seconds,
                               warmup_service_rate_fraction=migration.warmup_service_rate_fraction)


THRIFTY_PLACEMENTS = frozenset({"heuristic"})
"""Placement policies that manage nodes themselves; the others run next to a Cluster Autoscaler."""
THRIFTY_SIZINGS = frozenset({"heuristic"})
"""Sizing policies that pick their own scale-in victims (the others get ReplicaSet's)."""

ALIASES = {"thrifty-heuristic": "heuristic+heuristic", "thrifty-consolidation": "heuristic+heuristic+consolidation",
           "k8s-stack": "kube-default+stack"}

DEFAULT_POLICIES: tuple[str, ...] = (
    "thrifty-heuristic",
    "k8s-stack",
    "kube-default+static",
    "kube-default+hpa",
    "kube-default+vpa",
    "most-allocated+stack",
    "trimaran+stack",
    "network-aware+stack",
    "random+stack",
    "trimaran+vpa",
    "most-allocated+vpa",
    "most-allocated+stack+descheduler-hnu",
    "kube-default+stack+karpenter-underutilized",
)
"""What ``thrifty bench`` runs without ``--policies``."""


@dataclass(frozen=True)
class BuiltPolicy:
    """The policy objects of one run."""

    placement: Policy
    sizing: Policy
    replicaset_scale_in: bool
    """Scale-in removes the pods a ReplicaSet would, not those the decision core picks."""
    autoscaler: ClusterAutoscaler | None = None
    """The Cluster Autoscaler (or Karpenter) next to a baseline scheduler (None for Thrifty's)."""
    descheduler: HighNodeUtilization | None = None
    """The descheduler next to it, if any."""
    consolidator: Consolidator | None = None
    """Thrifty's consolidation, if it runs (with Thrifty's placement only)."""


@dataclass(frozen=True)
class PolicySpec:
    """A policy to run, parsed from its name."""

    name: str
    """As given (aliases kept, so tables show what the user asked for)."""
    placement: str = ""
    sizing: str = ""
    nodes: str = "cluster-autoscaler"
    """Key of ``NODE_MANAGERS`` for a baseline; ``consolidation`` or the default (none) for
    Thrifty's placement."""
    rl_directory: str | None = None
    overrides: Mapping[str, float] = field(default_factory=dict)
    """Parameter values used instead of the calibrated ones (keys of ``PARAMETERS``)."""

    def build(self, seed: int) -> BuiltPolicy:
        """Fresh policy objects (baselines keep state), random ones seeded with ``seed``."""
        if self.rl_directory is not None:
            from thrifty.policy.loader import load_policy

            policy = load_policy(self.rl_directory)
            return BuiltPolicy(policy, policy, replicaset_scale_in=False)
        parameters = {**PARAMETERS, **self.overrides}
        placement = PLACEMENTS[self.placement](np.random.default_rng(seed), parameters)
        autoscaler, descheduler, consolidator = None, None, None
        if self.placement not in THRIFTY_PLACEMENTS:
            autoscaler, descheduler = NODE_MANAGERS[self.nodes](parameters)
            placement = ClusterAutoscalerNodes(placement, autoscaler)
        elif self.nodes == "consolidation":
            assert isinstance(placement, HeuristicPolicy)
            consolidator = Consolidator(placement, thrifty_consolidation_config(parameters))
            placement = CordonedNodes(placement, consolidator)
        sizing = SIZINGS[self.sizing](parameters)
        return BuiltPolicy(placement, sizing, replicaset_scale_in=self.sizing not in THRIFTY_SIZINGS,
                           autoscaler=autoscaler, descheduler=descheduler, consolidator=consolidator)


def parse_policy(text: str, overrides: Mapping[str, float] | None = None) -> PolicySpec:
    """The spec named by ``text``; raises ValueError naming ``--policies`` when unknown."""
    overrides = dict(overrides or {})
    unknown = set(overrides) - set(PARAMETERS)
    if unknown:
        raise ValueError(f"policy overrides: unknown parameters {sorted(unknown)}; known: {sorted(PARAMETERS)}")
    if text.startswith(RL_PREFIX):
        directory = text[len(RL_PREFIX):]
        if not directory:
            raise ValueError("--policies: 'rl:' needs a policy directory, e.g. rl:policies/default")
        return PolicySpec(text, rl_directory=directory)
    parts = ALIASES.get(text, text).split("+")
    defaults = ["", "static", "cluster-autoscaler"]
    placement, sizing, nodes = parts + defaults[len(parts):] if len(parts) <= len(defaults) else defaults
    thrifty_nodes = len(parts) == 3 and placement in THRIFTY_PLACEMENTS
    if placement not in PLACEMENTS or sizing not in SIZINGS or \
            (nodes not in THRIFTY_NODE_MANAGERS if thrifty_nodes else nodes not in NODE_MANAGERS):
        raise ValueError(
            f"--policies: unknown policy {text!r}; use PLACEMENT+SIZING[+NODES] with PLACEMENT one of "
            f"{', '.join(PLACEMENTS)}, SIZING one of {', '.join(SIZINGS)} and NODES one of "
            f"{', '.join(NODE_MANAGERS)} (for heuristic placement: {', '.join(sorted(THRIFTY_NODE_MANAGERS))}), "
            f"or one of {', '.join(ALIASES)}, or rl:DIRECTORY")
    return PolicySpec(text, placement, sizing, nodes, overrides=overrides)
