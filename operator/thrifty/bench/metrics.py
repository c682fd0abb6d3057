"""What a benchmark run measures, accumulated step by step.

=============================  ===============================================================
column                         definition
=============================  ===============================================================
``energy_kwh``                 node plus network energy over the run
``network_kwh``                of which cross-node calls
``slo_violation_rate``         fraction of workload-steps whose p95 exceeded the SLO (or that
                               were saturated)
``latency_p95_ms``             95th percentile, over workload-steps, of each workload's p95
``latency_slo_ratio_p95``      95th percentile, over workload-steps, of p95 latency / SLO
``powered_on_nodes``           mean number of nodes not in standby
``cpu_slack``, ``memory_slack`` mean over steps of (sum of requests - sum of usage) / sum of
                               requests, over the workload pods that ran: Autopilot's relative
                               slack, with requests in place of limits
``oom_kills``                  OOM kills of workload pods
``throttled_hours``            workload-hours with any CPU demand denied by a limit
``throttled_fraction``         mean fraction of CPU demand denied by limits (workload-steps)
``cross_node_call_fraction``   calls between dependent workloads that crossed nodes / all such
                               calls
``unschedulable_pods``         mean number of Pending pods that fit on no node
``decision_ms_p50``, ``_p99``  wall time of one step's decisions (sizing + placement, policy and
                               safety pipeline), percentiles over steps
``fallbacks``                  decisions taken by the fallback heuristic because the policy
                               failed or proposed something invalid (should be 0)
``churn``                      pods created, deleted or resized by decisions
``evictions``                  pods evicted: by node memory pressure (background pods included)
                               and through the Eviction API (drains, the descheduler), the same
                               count for every policy
=============================  ===============================================================
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from thrifty.harness import HarnessStep
from thrifty.snapshot import ClusterSnapshot

COLUMNS: tuple[str, ...] = (
    "energy_kwh", "network_kwh", "slo_violation_rate", "latency_p95_ms", "latency_slo_ratio_p95",
    "powered_on_nodes", "cpu_slack", "memory_slack", "oom_kills", "throttled_hours", "throttled_fraction",
    "cross_node_call_fraction", "unschedulable_pods", "decision_ms_p50", "decision_ms_p99", "fallbacks", "churn",
    "evictions",
)
"""The measured columns, in the order of ``results.csv``."""

JOULES_PER_KWH = 3.6e6


def relative_slack(snapshot: ClusterSnapshot) -> tuple[float, float]:
    """CPU and memory (request - usage) / request summed over workload pods that ran (NaN if none)."""
    pods = snapshot.pods
    ran = (pods.workload_index >= 0) & np.isfinite(pods.cpu_usage_millicores) & np.isfinite(pods.memory_usage_bytes)

    def slack(request: np.ndarray, usage: np.ndarray) -> float:
        total = request[ran].sum()
        return float((total - usage[ran].sum()) / total) if total > 0 else np.nan

    return (slack(pods.cpu_request_millicores, pods.cpu_usage_millicores),
            slack(pods.memory_request_bytes, pods.memory_usage_bytes))


@dataclass
class RunMetrics:
    """Accumulates one run; :meth:`summary` gives the ``COLUMNS``."""

    dependency_source: np.ndarray
    """int64 (edges,) caller workload of each dependency edge."""
    calls_per_request: np.ndarray
    """(edges,) calls the caller makes along the edge per request it serves."""
    energy_joules: float = 0.0
    network_joules: float = 0.0
    violated: list[np.ndarray] = field(default_factory=list)
    latency_seconds: list[np.ndarray] = field(default_factory=list)
    latency_ratio: list[np.ndarray] = field(default_factory=list)
    powered_on: list[int] = field(default_factory=list)
    cpu_slack: list[float] = field(default_factory=list)
    memory_slack: list[float] = field(default_factory=list)
    oom_kills: int = 0
    throttled_seconds: float = 0.0
    throttled_fraction: list[np.ndarray] = field(default_factory=list)
    cross_node_calls: float = 0.0
    dependency_calls: float = 0.0
    unschedulable: list[int] = field(default_factory=list)
    decision_seconds: list[float] = field(default_factory=list)
    fallbacks: int = 0
    churn: int = 0
    evictions: int = 0
    watts: list[float] = field(default_factory=list)
    """Cluster power of each step (nodes plus network), for the energy-over-time plot."""

    def add(self, step: HarnessStep, slo_seconds: np.ndarray, after: ClusterSnapshot) -> None:
        """Record one harness step; ``after`` is the snapshot once the step has run."""
        r = step.result
        dt = r.step_seconds
        self.energy_joules += r.energy_joules
        self.network_joules += r.network_energy_joules
        self.watts.append(r.cluster_watts)
        self.violated.append(r.workload_slo_violated)
        self.latency_seconds.append(r.workload_latency_p95_seconds)
        self.latency_ratio.append(r.workload_latency_p95_seconds / slo_seconds)
        self.powered_on.append(int(np.count_nonzero(~r.node_standby)))
        cpu, memory = relative_slack(after)
        self.cpu_slack.append(cpu)
        self.memory_slack.append(memory)
        self.oom_kills += r.oom_kills
        self.throttled_seconds += float(np.count_nonzero(r.workload_throttled_fraction > 0)) * dt
        self.throttled_fraction.append(r.workload_throttled_fraction)
        self.cross_node_calls += float(r.workload_cross_node_calls_per_second.sum()) * dt
        rate = r.workload_request_rate_per_second
        self.dependency_calls += float(np.sum(rate[self.dependency_source] * self.calls_per_request)) * dt
        self.unschedulable.append(r.unschedulable_pods)
        self.decision_seconds.append(step.placement_seconds + step.sizing_seconds)
        self.fallbacks += step.fallbacks
        self.churn += int(r.workload_churn.sum())
        self.evictions += r.evictions + int(r.workload_voluntary_evictions.sum())

    def summary(self) -> dict[str, float]:
        """The ``COLUMNS`` of the run so far."""
        latency = np.concatenate(self.latency_seconds) if self.latency_seconds else np.array([np.nan])
        ratio = np.concatenate(self.latency_ratio) if self.latency_ratio else np.array([np.nan])
        decisions_ms = np.asarray(self.decision_seconds) * 1000.0
        return {
            "energy_kwh": self.energy_joules / JOULES_PER_KWH,
            "network_kwh": self.network_joules / JOULES_PER_KWH,
            "slo_violation_rate": float(np.mean(np.concatenate(self.violated))) if self.violated else np.nan,
            "latency_p95_ms": float(np.nanpercentile(latency, 95)) * 1000.0,
            "latency_slo_ratio_p95": float(np.nanpercentile(ratio, 95)),
            "powered_on_nodes": float(np.mean(self.powered_on)),
            "cpu_slack": float(np.nanmean(self.cpu_slack)),
            "memory_slack": float(np.nanmean(self.memory_slack)),
            "oom_kills": float(self.oom_kills),
            "throttled_hours": self.throttled_seconds / 3600.0,
            "throttled_fraction": float(np.mean(np.concatenate(self.throttled_fraction))),
            "cross_node_call_fraction": (
                self.cross_node_calls / self.dependency_calls if self.dependency_calls > 0 else 0.0),
            "unschedulable_pods": float(np.mean(self.unschedulable)),
            "decision_ms_p50": float(np.percentile(decisions_ms, 50)),
            "decision_ms_p99": float(np.percentile(decisions_ms, 99)),
            "fallbacks": float(self.fallbacks),
            "churn": float(self.churn),
            "evictions": float(self.evictions),
        }
