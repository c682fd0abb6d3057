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
        """Every workload's recommendation at once (:func:`desired_replicas_all`), then each one's
        stabilisation window and rate limits; the results of the per-workload rule
        (:class:`thrifty.baselines.reference.ReferenceHpa`)."""
        proposal = keep_proposal(snapshot)
        pods, workloads = snapshot.pods, snapshot.workloads
        cfg = self.config
        current = np.asarray(workloads.replicas, dtype=np.int64)
        minimum = np.asarray(workloads.replicas_min, dtype=np.int64)
        maximum = np.asarray(workloads.replicas_max, dtype=np.int64)
        desired = desired_replicas_all(pods.workload_index, pods.cpu_usage_millicores, pods.cpu_request_millicores,
                                       current, cfg.target_cpu_utilisation, cfg.tolerance)
        desired = np.minimum(np.maximum(desired, minimum), maximum)
        active = np.flatnonzero(current > 0)  # the controller leaves a workload scaled to zero alone
        stabilised = np.array([self._stabilised(workloads.names[w], snapshot.time_seconds, int(current[w]),
                                                int(desired[w])) for w in active.tolist()], dtype=np.int64)
        now = current[active]
        up_limit = np.maximum(now + cfg.scale_up_pods_per_period,
                              np.ceil(now * (1.0 + cfg.scale_up_percent_per_period / 100.0)).astype(np.int64))
        down_limit = np.ceil(now * (1.0 - cfg.scale_down_percent_per_period / 100.0)).astype(np.int64)
        limited = np.minimum(np.maximum(stabilised, down_limit), up_limit)
        proposal.replicas[active] = np.minimum(np.maximum(limited, minimum[active]), maximum[active])
        return proposal


def _near_half(values: np.ndarray) -> np.ndarray:
    """Where a sum lies so close to a rounding edge (x.5) that summing in another order could
    round it the other way."""
    return np.abs(values - np.floor(values) - 0.5) < 1e-6


def _group_sums(workload: np.ndarray, values: np.ndarray, n: int, exact: np.ndarray | None = None) -> np.ndarray:
    """Per-workload sums of ``values``; near a rounding edge, the sum numpy's ``values[mine].sum()``
    gives (a pairwise sum), so that rounding them matches :func:`utilisation_ratio` exactly."""
    sums = np.bincount(workload, weights=values, minlength=n)[:n]
    for w in np.flatnonzero(_near_half(sums)).tolist():
        sums[w] = float(values[workload == w].sum() if exact is None else values[(workload == w) & exact].sum())
    return sums


def desired_replicas_all(workload: np.ndarray, usage: np.ndarray, request: np.ndarray, current: np.ndarray,
                         target: float, tolerance: float) -> np.ndarray:
    """:func:`desired_replicas` of every workload at once (``workload``, ``usage``, ``request``
    per pod; ``current`` per workload), with the same results."""
    n = len(current)
    owned = workload >= 0
    workload, usage, request = workload[owned], usage[owned], request[owned]
    ready = np.isfinite(usage)
    pods = np.bincount(workload, minlength=n)[:n]
    ready_pods = np.bincount(workload, weights=ready, minlength=n)[:n].astype(np.int64)
    ready_usage = np.where(ready, usage, 0.0)
    ready_request = np.where(ready, request, 0.0)
    # usage[ready].sum() of each workload: the zeros of unready pods change no sum, but would
    # change the pairwise order, so the exact fallback sums the ready pods only.
    usage_sum = _group_sums(workload, ready_usage, n, exact=ready)
    request_sum = _group_sums(workload, ready_request, n, exact=ready)
    target_percent = round(100 * target)

    def ratio(used: np.ndarray, requested: np.ndarray) -> np.ndarray:
        percent = (100 * np.round(used).astype(np.int64)) // np.maximum(np.round(requested).astype(np.int64), 1)
        return percent / target_percent

    with np.errstate(invalid="ignore"):
        ready_ratio = ratio(usage_sum, request_sum)
        # Scaling up with unready pods: they count as using nothing (sums over every pod).
        all_ratio = ratio(_group_sums(workload, ready_usage, n), _group_sums(workload, request, n))
    has_metrics = (ready_pods > 0) & (request_sum > 0)
    unready = ready_pods < pods
    plain = ~(unready & (ready_ratio > 1.0))
    plain_desired = np.where(np.abs(1.0 - ready_ratio) <= tolerance, current,
                             np.ceil(ready_ratio * ready_pods).astype(np.int64))
    up_desired = np.where((np.abs(1.0 - all_ratio) <= tolerance) | (all_ratio < 1.0), current,
                          np.maximum(np.ceil(all_ratio * pods).astype(np.int64), current))
    return np.where(has_metrics, np.where(plain, plain_desired, up_desired), current).astype(np.int64)
