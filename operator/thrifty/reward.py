"""The reward: minus energy, minus SLO violation, minus disruption, per workload and cluster-wide.

Per workload, with ``w`` its ``energyWeight`` (0 = performance only, 1 = energy only)::

    r = -[ w · E + (1 - w) · S + D ]

    E = min(watts / reference_watts, energy_term_cap)
    S = slo_violation_penalty · [p95 > SLO] + min(max(p95 / SLO - 1, 0), slo_excess_cap)
    D = oom_kill_penalty · OOM kills + throttling_penalty · throttled fraction
        + eviction_penalty · evictions + churn_penalty · churn

* ``watts`` is the workload's attributed power (:meth:`thrifty.energy.PowerModel.workload_watts`,
  plus its network watts in the simulator). Dividing by a reference makes the term unitless and
  comparable with ``S``: with the workload's own baseline power as reference, ``E = 1`` means
  "as costly as the baseline".
* ``S`` is zero while the SLO is met; above it, a fixed step plus the relative excess, so that
  both crossing the line and how far it is crossed count.
* ``D`` is not weighted by ``w``: an OOM kill or an eviction hurts whatever the objective.
  ``churn`` counts pods created, deleted or resized by decisions (a migration is a deletion and
  a creation).

The cluster reward uses the whole cluster's power (including the idle and standby power of
empty nodes, which no workload is charged for: removing it is what consolidation is for) and
the mean SLO and disruption terms, weighted by the mean ``energyWeight``::

    R = -[ w̄ · min(cluster_watts / cluster_reference_watts, energy_term_cap)
           + (1 - w̄) · mean(S) + mean(D) ]

Unknown inputs (NaN) contribute nothing: an unknown latency is not a violation, unknown power
costs nothing. A NaN ``energyWeight`` counts as 0.5. Pure numpy, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from thrifty.config import RewardConfig

DEFAULT_ENERGY_WEIGHT = 0.5
"""Used where a workload's energy weight is unknown (the RLWorkload default)."""


@dataclass(frozen=True)
class RewardTerms:
    """The reward of W workloads and its parts (all (W,) arrays)."""

    energy: np.ndarray
    """Normalised energy term E (>= 0)."""
    slo: np.ndarray
    """SLO term S (>= 0)."""
    disruption: np.ndarray
    """Disruption term D (>= 0)."""
    energy_weight: np.ndarray
    """w used, in [0, 1]."""
    reward: np.ndarray
    """``-(w E + (1 - w) S + D)``."""


def _as_float(values: np.ndarray | float) -> np.ndarray:
    return np.atleast_1d(np.asarray(values, dtype=float))


def energy_term(
    watts: np.ndarray | float,
    reference_watts: np.ndarray | float,
    config: RewardConfig = RewardConfig(),
) -> np.ndarray:
    """E: watts over the reference, capped; 0 where either is unknown or the reference is not > 0."""
    watts, reference = np.broadcast_arrays(_as_float(watts), _as_float(reference_watts))
    known = np.isfinite(watts) & np.isfinite(reference) & (reference > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(known, np.maximum(watts, 0.0) / reference, 0.0)
    return np.minimum(ratio, config.energy_term_cap)


def slo_term(
    latency_p95_seconds: np.ndarray | float,
    slo_latency_p95_seconds: np.ndarray | float,
    config: RewardConfig = RewardConfig(),
) -> np.ndarray:
    """S: a step on violation plus the capped relative excess; 0 while met or unknown."""
    latency, slo = np.broadcast_arrays(_as_float(latency_p95_seconds), _as_float(slo_latency_p95_seconds))
    known = ~np.isnan(latency) & np.isfinite(slo) & (slo > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        excess = np.where(known, latency / slo - 1.0, 0.0)
    violated = known & (excess > 0)
    return np.where(
        violated, config.slo_violation_penalty + np.minimum(np.maximum(excess, 0.0), config.slo_excess_cap), 0.0
    )


def disruption_term(
    oom_kills: np.ndarray | float,
    throttled_fraction: np.ndarray | float,
    evictions: np.ndarray | float,
    churn: np.ndarray | float,
    config: RewardConfig = RewardConfig(),
) -> np.ndarray:
    """D: weighted sum of OOM kills, throttled fraction, evictions and churn (NaN counts as 0)."""
    parts = np.broadcast_arrays(
        _as_float(oom_kills), _as_float(throttled_fraction), _as_float(evictions), _as_float(churn)
    )
    ooms, throttled, evicted, churned = (np.maximum(np.nan_to_num(p, nan=0.0), 0.0) for p in parts)
    return (
        config.oom_kill_penalty * ooms
        + config.throttling_penalty * np.minimum(throttled, 1.0)
        + config.eviction_penalty * evicted
        + config.churn_penalty * churned
    )


def _weights(energy_weight: np.ndarray | float) -> np.ndarray:
    weight = _as_float(energy_weight)
    return np.clip(np.where(np.isnan(weight), DEFAULT_ENERGY_WEIGHT, weight), 0.0, 1.0)


def workload_rewards(
    *,
    watts: np.ndarray,
    latency_p95_seconds: np.ndarray,
    slo_latency_p95_seconds: np.ndarray,
    energy_weight: np.ndarray,
    oom_kills: np.ndarray,
    throttled_fraction: np.ndarray,
    evictions: np.ndarray,
    churn: np.ndarray,
    reference_watts: np.ndarray | float | None = None,
    config: RewardConfig = RewardConfig(),
) -> RewardTerms:
    """The reward of each workload and its terms (see the module docstring).

    Every argument is a (W,) array (or broadcasts to one). ``reference_watts`` defaults to
    ``config.energy_reference_watts``.
    """
    reference = config.energy_reference_watts if reference_watts is None else reference_watts
    energy = energy_term(watts, reference, config)
    slo = slo_term(latency_p95_seconds, slo_latency_p95_seconds, config)
    disruption = disruption_term(oom_kills, throttled_fraction, evictions, churn, config)
    energy, slo, disruption, weight = np.broadcast_arrays(energy, slo, disruption, _weights(energy_weight))
    reward = -(weight * energy + (1.0 - weight) * slo + disruption)
    return RewardTerms(energy=energy, slo=slo, disruption=disruption, energy_weight=weight, reward=reward)


def cluster_reward(
    terms: RewardTerms,
    *,
    cluster_watts: float,
    cluster_reference_watts: float,
    config: RewardConfig = RewardConfig(),
) -> float:
    """The cluster-wide reward from the workloads' terms and the whole cluster's power.

    ``cluster_watts`` is every node's power (standby and empty nodes included) plus network
    power; ``cluster_reference_watts`` its reference, for example the baseline's cluster power.
    With no workloads, the reward is the energy term alone.
    """
    energy = float(energy_term(cluster_watts, cluster_reference_watts, config)[0])
    if len(terms.reward) == 0:
        return -energy
    weight = float(np.mean(terms.energy_weight))
    return -(weight * energy + (1.0 - weight) * float(np.mean(terms.slo)) + float(np.mean(terms.disruption)))
