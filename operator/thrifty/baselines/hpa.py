"""The Horizontal Pod Autoscaler on CPU utilisation of requests.

Upstream: ``kubernetes/kubernetes`` ``pkg/controller/podautoscaler/replica_calculator.go``
(``GetResourceReplicas``) and ``horizontal.go`` (``stabilizeRecommendationWithBehaviors``,
``normalizeDesiredReplicasWithBehaviors``). Each sync, for a workload with ``current`` replicas:

1. ``utilisation = sum(CPU usage) / sum(CPU requests)`` over its ready pods (pods with a
   measurement; a Pending, waking or restarting pod has none and counts as unready), in whole
   percent as upstream; ``ratio = utilisation / target``.
2. Without unready pods, or when not scaling up: if ``|ratio - 1| <= tolerance`` (10 %) keep
   ``current``, else ``desired = ceil(ratio x ready pods)``. When scaling up with unready pods,
   they count as using 0 % of their request and the ratio is recomputed; if that flips the
   direction or falls within the tolerance, ``current`` is kept.
3. Stabilisation: the recommendation is recorded; the result is at most the largest
   recommendation of the last ``scale_down_stabilisation_seconds`` (300 s) and at least the
   smallest of the last ``scale_up_stabilisation_seconds`` (0 s).
4. Rate limits (default behaviour): up by at most ``max(4 pods, 100 %)`` and down by at most
   100 % per 15 s period; the simulator's 60 s step starts a new period at every decision.
   Then within ``[replicas.min, replicas.max]``.

No metrics at all (every pod unready) leaves the replicas as they are, as the controller does
when it gets no metrics. Requests are never changed. Pods are placed by the default
kube-scheduler profile.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from thrifty import __version__
from thrifty.actions import SizingProposal, keep_proposal
from thrifty.baselines.kube_scheduler import KubeDefaultScoring, PlacedByKubeScheduler
from thrifty.policy.base import PolicyInfo
from thrifty.snapshot import ClusterSnapshot


@dataclass(frozen=True, kw_only=True)
class HpaConfig:
    """``spec.metrics`` (CPU Utilization target) and ``spec.behavior``, upstream defaults."""

    target_cpu_utilisation: float = 0.8
    """Target mean CPU usage / request (upstream's default when no metric is given is 80 %)."""
    tolerance: float = 0.1
    """``--horizontal-pod-autoscaler-tolerance``."""
    scale_down_stabilisation_seconds: float = 300.0
    scale_up_stabilisation_seconds: float = 0.0
    scale_up_pods_per_period: int = 4
    scale_up_percent_per_period: float = 100.0
    scale_down_percent_per_period: float = 100.0

    def __post_init__(self) -> None:
        if not self.target_cpu_utilisation > 0:
            raise ValueError(f"HpaConfig.target_cpu_utilisation: must be > 0, got {self.target_cpu_utilisation!r}")
        for name in ("tolerance", "scale_down_stabilisation_seconds", "scale_up_stabilisation_seconds",
                     "scale_up_pods_per_period", "scale_up_percent_per_period", "scale_down_percent_per_period"):
            if getattr(self, name) < 0:
                raise ValueError(f"HpaConfig.{name}: must be >= 0, got {getattr(self, name)!r}")


def utilisation_ratio(usage: np.ndarray, request: np.ndarray, target: float) -> float:
    """``GetResourceUtilizationRatio``: whole-percent utilisation (integer division, as upstream
    on milli-units) over the whole-percent target."""
    utilisation_percent = (100 * int(round(float(usage.sum())))) // max(int(round(float(request.sum()))), 1)
    return utilisation_percent / round(100 * target)


def desired_replicas(usage: np.ndarray, request: np.ndarray, current: int, target: float, tolerance: float) -> int:
    """``GetResourceReplicas`` for one workload (step 2 of the module docstring).

    ``usage`` and ``request`` are per pod (millicores); NaN usage marks an unready pod.
    """
    ready = np.isfinite(usage)
    if not ready.any() or request[ready].sum() <= 0:
        return current
    ratio = utilisation_ratio(usage[ready], request[ready], target)
    if not (np.any(~ready) and ratio > 1.0):
        if abs(1.0 - ratio) <= tolerance:
            return current
        return int(math.ceil(ratio * int(ready.sum())))
    # Scaling up with unready pods: they count as using nothing.
    new_ratio = utilisation_ratio(np.where(ready, usage, 0.0), request, target)
    if abs(1.0 - new_ratio) <= tolerance or new_ratio < 1.0:
        return current
    return max(int(math.ceil(new_ratio * len(usage))), current)


@dataclass
class HorizontalPodAutoscaler(PlacedByKubeScheduler):
    """The HPA as a sizing policy: replica targets only, with its recommendation history."""

    config: HpaConfig = field(default_factory=HpaConfig)
    placement: KubeDefaultScoring = field(default_factory=KubeDefaultScoring)

    def __post_init__(self) -> None:
        self._history: dict[str, deque[tuple[float, int]]] = {}
        self.info = PolicyInfo(name="hpa", version=__version__, backend="baseline")

    def _stabilised(self, workload: str, now: float, current: int, desired: int) -> int:
        cfg = self.config
        history = self._history.setdefault(workload, deque())
        up_cutoff = now - cfg.scale_up_stabilisation_seconds
        down_cutoff = now - cfg.scale_down_stabilisation_seconds
        up, down = desired, desired
        for time, recommendation in history:
            if time > up_cutoff:
                up = min(up, recommendation)
            if time > down_cutoff:
                down = max(down, recommendation)
        history.append((now, desired))
        oldest_needed = min(up_cutoff, down_cutoff)
        while history and history[0][0] <= oldest_needed:
            history.popleft()
        return min(max(current, up), down)

    def _rate_limited(self, current: int, desired: int, minimum: int, maximum: int) -> int:
        cfg = self.config
        up_limit = max(current + cfg.scale_up_pods_per_period,
                       math.ceil(current * (1.0 + cfg.scale_up_percent_per_period / 100.0)))
        down_limit = math.ceil(current * (1.0 - cfg.scale_down_percent_per_period / 100.0))
        return int(np.clip(min(max(desired, down_limit), up_limit), minimum, maximum))

    def size(self, snapshot: ClusterSnapshot) -> SizingProposal:
        proposal = keep_proposal(snapshot)
        pods, workloads = snapshot.pods, snapshot.workloads
        for w, name in enumerate(workloads.names):
            current = int(workloads.replicas[w])
            if current == 0:  # the controller leaves a workload scaled to zero alone
                continue
            mine = pods.workload_index == w
            desired = desired_replicas(pods.cpu_usage_millicores[mine], pods.cpu_request_millicores[mine],
                                       current, self.config.target_cpu_utilisation, self.config.tolerance)
            desired = int(np.clip(desired, workloads.replicas_min[w], workloads.replicas_max[w]))
            stabilised = self._stabilised(name, snapshot.time_seconds, current, desired)
            proposal.replicas[w] = self._rate_limited(current, stabilised, int(workloads.replicas_min[w]),
                                                      int(workloads.replicas_max[w]))
        return proposal
