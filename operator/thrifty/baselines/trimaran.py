"""Trimaran TargetLoadPacking: pack nodes up to a target of *measured* CPU utilisation.

Upstream: ``kubernetes-sigs/scheduler-plugins`` ``pkg/trimaran/targetloadpacking/
targetloadpacking.go`` (KEP 61, "Trimaran: Real Load Aware Scheduling"). With ``T`` the target
utilisation in percent (default 40) and ``U`` the predicted node CPU utilisation in percent::

    U = 100 * (measured node CPU + predicted CPU of the pod + predicted CPU of pods bound
               since the last measurement) / node CPU capacity
    score = round((100 - T) * U / T + T)          if U <= T     (rises from T to 100)
            round(T * (100 - U) / (100 - T))      if T < U <= 100  (falls to 0)
            0                                      if U > 100

A pod's CPU is predicted from its spec (``PredictUtilisation``): its CPU limit if it has one,
else its request times ``requests_multiplier`` (default 1.5), else ``default_requests_millicores``
(default 1 core). The scheduler's view of "pods bound since the last measurement" is the pods on
the node whose usage the snapshot does not know yet (NaN), which is what the plugin's
ScheduledPodsCache tracks. A node whose usage is unknown is taken as idle: the simulator has no
measurement before its first step, where upstream would score every node 0 and pick at random.
"""

from __future__ import annotations

import numpy as np

from thrifty import __version__
from thrifty.baselines.scoring import MAX_NODE_SCORE, KeepsSizes, as_generator, break_ties
from thrifty.policy.base import PolicyInfo
from thrifty.snapshot import ClusterSnapshot

DEFAULT_TARGET_UTILISATION_PERCENT = 40
"""``cfgv1.DefaultTargetUtilizationPercent``."""
DEFAULT_REQUESTS_MULTIPLIER = 1.5
"""``cfgv1.DefaultRequestsMultiplier``: a Burstable container's predicted use over its request."""
DEFAULT_REQUESTS_MILLICORES = 1000
"""``cfgv1.DefaultRequestsMilliCores``: a BestEffort container's predicted use."""


def predicted_cpu_millicores(request: np.ndarray, limit: np.ndarray, *,
                             requests_multiplier: float = DEFAULT_REQUESTS_MULTIPLIER,
                             default_millicores: float = DEFAULT_REQUESTS_MILLICORES) -> np.ndarray:
    """``PredictUtilisation``: the limit if set (finite), else request x multiplier, else the default."""
    request, limit = np.asarray(request, dtype=float), np.asarray(limit, dtype=float)
    return np.where(np.isfinite(limit), limit,
                    np.where(request > 0, np.round(request * requests_multiplier), default_millicores))


def target_load_packing_score(utilisation_percent: np.ndarray, target_percent: float) -> np.ndarray:
    """int64 score of each node from its predicted utilisation (see the module docstring)."""
    u = np.asarray(utilisation_percent, dtype=float)
    t = float(target_percent)
    rising = np.round((MAX_NODE_SCORE - t) * u / t + t)
    falling = np.round(t * (MAX_NODE_SCORE - u) / (MAX_NODE_SCORE - t)) if t < MAX_NODE_SCORE else np.zeros_like(u)
    score = np.where(u <= t, rising, np.where(u > MAX_NODE_SCORE, 0.0, falling))
    return score.astype(np.int64)


class TargetLoadPacking(KeepsSizes):
    """Trimaran TargetLoadPacking placement; proposes no sizing change.

    ``target_utilisation_percent`` is the plugin's ``targetUtilization`` (upstream advises
    setting it about 10 below the utilisation wanted).
    """

    def __init__(self, rng: np.random.Generator | int | None = None, *,
                 target_utilisation_percent: float = DEFAULT_TARGET_UTILISATION_PERCENT,
                 requests_multiplier: float = DEFAULT_REQUESTS_MULTIPLIER,
                 default_requests_millicores: float = DEFAULT_REQUESTS_MILLICORES) -> None:
        if not 0 < target_utilisation_percent <= 100:
            raise ValueError(f"TargetLoadPacking.target_utilisation_percent: must lie in (0, 100], "
                             f"got {target_utilisation_percent!r}")
        self.rng = as_generator(rng)
        self.target_utilisation_percent = float(target_utilisation_percent)
        self.requests_multiplier = requests_multiplier
        self.default_requests_millicores = default_requests_millicores
        self.info = PolicyInfo(name="trimaran", version=__version__, backend="baseline")

    def predicted_utilisation_percent(self, snapshot: ClusterSnapshot, pod: int) -> np.ndarray:
        """(nodes,) predicted CPU utilisation (percent) of each node with the pod on it."""
        nodes, pods = snapshot.nodes, snapshot.pods
        predicted = predicted_cpu_millicores(pods.cpu_request_millicores, pods.cpu_limit_millicores,
                                             requests_multiplier=self.requests_multiplier,
                                             default_millicores=self.default_requests_millicores)
        unmeasured = (pods.node_index >= 0) & np.isnan(pods.cpu_usage_millicores)
        missing = np.bincount(pods.node_index[unmeasured], weights=predicted[unmeasured], minlength=len(nodes))
        measured = np.nan_to_num(nodes.cpu_usage_millicores, nan=0.0)
        capacity = nodes.cpu_capacity_millicores
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(capacity > 0, 100.0 * (measured + predicted[pod] + missing) / capacity, 0.0)

    def raw_scores(self, snapshot: ClusterSnapshot, pod: int) -> np.ndarray:
        """int64 (nodes,): the plugin's scores, before tie-breaking."""
        return target_load_packing_score(self.predicted_utilisation_percent(snapshot, pod),
                                         self.target_utilisation_percent)

    def score_nodes(self, snapshot: ClusterSnapshot, pod: int) -> np.ndarray:
        return break_ties(self.raw_scores(snapshot, pod), self.rng)
