"""What one simulation step reports."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class StepResult:
    """The outcome of one step ``[time_seconds - step_seconds, time_seconds)``.

    Node arrays are indexed like the scenario's nodes, workload arrays like its workloads (and
    like the snapshot's tables). Counts are over this step only.
    """

    step_index: int
    """0 for the first step."""
    time_seconds: float
    """Simulation time at the end of the step."""
    node_watts: np.ndarray
    """(N,) power of each node during the step (standby power for a node in standby)."""
    node_cpu_usage_millicores: np.ndarray
    """(N,) CPU used on each node."""
    node_standby: np.ndarray
    """bool (N,): the node was in standby during the step."""
    node_energy_joules: float
    """Energy of all nodes in the step."""
    network_energy_joules: float
    """Energy of the cross-node calls in the step."""
    workload_request_rate_per_second: np.ndarray
    """(W,) arrival rate in the step (a Poisson draw around the trace's rate by default)."""
    workload_running_replicas: np.ndarray
    """int64 (W,) pods that ran (bound, node awake, not restarting)."""
    workload_latency_p95_seconds: np.ndarray
    """(W,) p95 response time, cross-node call latency included, capped when saturated."""
    workload_utilisation: np.ndarray
    """(W,) λ / (c μ): arrivals over service capacity (>= 1 is saturation)."""
    workload_slo_violated: np.ndarray
    """bool (W,): p95 above the SLO, or saturated."""
    workload_oom_kills: np.ndarray
    """int64 (W,) pods OOM-killed (memory above the limit)."""
    workload_evictions: np.ndarray
    """int64 (W,) pods evicted by node memory pressure (each replaced by a Pending pod)."""
    workload_throttled_fraction: np.ndarray
    """(W,) fraction of the workload's CPU demand denied by its pods' limits."""
    workload_contended_fraction: np.ndarray
    """(W,) fraction of its CPU demand denied by node contention (within the limits)."""
    workload_cross_node_calls_per_second: np.ndarray
    """(W,) outgoing calls of the workload that crossed nodes."""
    workload_network_watts: np.ndarray
    """(W,) network power of those calls, charged to the caller."""
    workload_churn: np.ndarray
    """int64 (W,) pods created, deleted or resized by actions since the previous step."""
    workload_voluntary_evictions: np.ndarray
    """int64 (W,) pods evicted through the Eviction API (:meth:`~thrifty.sim.Simulator.migrate`:
    drains, the descheduler) since the previous step; node-pressure ones are ``workload_evictions``."""
    pending_pods: int
    """Pods without a node at the end of the step (including background pods)."""
    unschedulable_pods: int
    """Pending pods whose requests fit on no node, even an empty or standby one."""
    evictions: int
    """Pods evicted in the step, background pods included."""
    step_seconds: float
    """Length of the step."""

    @property
    def energy_joules(self) -> float:
        """Energy of the step: nodes plus network."""
        return self.node_energy_joules + self.network_energy_joules

    @property
    def cluster_watts(self) -> float:
        """Mean power of the step: nodes plus network."""
        return self.energy_joules / self.step_seconds

    @property
    def oom_kills(self) -> int:
        """OOM kills in the step (background pods have no limit, so they are never OOM-killed)."""
        return int(self.workload_oom_kills.sum())
