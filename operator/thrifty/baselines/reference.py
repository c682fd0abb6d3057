"""Straightforward per-pod versions of the autoscaler, VPA and descheduler rules.

The baselines the benchmark runs (:mod:`thrifty.baselines.vpa`, :mod:`~thrifty.baselines.hpa`,
:mod:`~thrifty.baselines.cluster_autoscaler`, :mod:`~thrifty.baselines.consolidation`) compute
their rules with numpy over all pods at once. The classes here are the same rules written one
pod (and one sample) at a time, as they were before that vectorisation: they are the
specification the vectorised code is checked against, decision for decision and histogram
bucket for bucket (``tests/unit/test_baselines_vectorised.py``), and timed against
(``hack/perf/baselines_bench.py``). The benchmark does not use them.
"""

from __future__ import annotations

import numpy as np

from thrifty.actions import SizingProposal, container_groups, keep_proposal
from thrifty.baselines.cluster_autoscaler import ClusterAutoscaler
from thrifty.baselines.consolidation import HighNodeUtilization, KarpenterConsolidation, _requested_fractions
from thrifty.baselines.histogram import MIN_SAMPLE_WEIGHT
from thrifty.baselines.hpa import HorizontalPodAutoscaler, desired_replicas
from thrifty.baselines.vpa import CPU, MEMORY, VpaRecommender, _capped, _ContainerState
from thrifty.snapshot import ClusterSnapshot


class ReferenceVpa(VpaRecommender):
    """:class:`~thrifty.baselines.vpa.VpaRecommender`, one container and one sample at a time."""

    def observe(self, snapshot: ClusterSnapshot) -> None:
        containers, pods, workloads = snapshot.containers, snapshot.pods, snapshot.workloads
        window = containers.cpu_history_millicores.shape[1]
        times = snapshot.time_seconds - containers.history_step_seconds * (window - np.arange(window))
        live = set()
        for r in np.flatnonzero(containers.workload_index >= 0).tolist():
            workload = workloads.names[containers.workload_index[r]]
            key = (pods.names[containers.pod_index[r]], containers.names[r])
            live.add(key)
            aggregate = self._aggregate((workload, containers.names[r]))
            state = self._containers.setdefault(key, _ContainerState(aggregate))
            weight = max(containers.cpu_request_millicores[r] / 1000.0, MIN_SAMPLE_WEIGHT)
            cpu = containers.cpu_history_millicores[r]
            for j in np.flatnonzero(np.isfinite(cpu) & (times > state.last_cpu_sample)).tolist():
                aggregate.cpu.add(cpu[j] / 1000.0, weight, times[j])
                aggregate.first_cpu_sample = min(aggregate.first_cpu_sample, times[j])
                aggregate.last_cpu_sample = max(aggregate.last_cpu_sample, times[j])
                aggregate.cpu_samples += 1
                state.last_cpu_sample = times[j]
            memory = containers.memory_history_bytes[r]
            for j in np.flatnonzero(np.isfinite(memory) & (times > state.last_memory_sample)).tolist():
                self._add_memory_sample(state, float(memory[j]), float(times[j]), oom=False)
            kills = float(containers.oom_kills_total[r])
            if kills > state.oom_kills_seen:
                self._record_oom(state, snapshot.time_seconds, float(containers.memory_request_bytes[r]))
            state.oom_kills_seen = kills
        for key in set(self._containers) - live:
            del self._containers[key]

    def size(self, snapshot: ClusterSnapshot) -> SizingProposal:
        self.observe(snapshot)
        proposal = keep_proposal(snapshot)
        containers, pods = snapshot.containers, snapshot.pods
        controlled = self.config.controlled_resources
        for w, workload in enumerate(snapshot.workloads.names):
            groups = container_groups(snapshot, w)
            for name, rows in groups.items():
                recommendation = self.recommend(workload, name, containers_per_pod=len(groups))
                if recommendation is None:
                    continue
                targets = []
                for r in rows.tolist():
                    bounded = _capped(recommendation, containers, r)
                    request = {CPU: containers.cpu_request_millicores[r], MEMORY: containers.memory_request_bytes[r]}
                    target = {k: v for k, v in ((CPU, bounded.cpu_target), (MEMORY, bounded.memory_target))
                              if k in controlled}
                    lower = {CPU: bounded.cpu_lower, MEMORY: bounded.memory_lower}
                    upper = {CPU: bounded.cpu_upper, MEMORY: bounded.memory_upper}
                    if self._should_update(request, target, lower, upper,
                                           age_seconds=float(pods.age_seconds[containers.pod_index[r]]),
                                           oom_killed=containers.oom_kills_total[r] > 0):
                        targets.append(target)
                if targets:
                    if CPU in controlled:
                        proposal.cpu_request_millicores[rows] = targets[0][CPU]
                    if MEMORY in controlled:
                        proposal.memory_request_bytes[rows] = targets[0][MEMORY]
        return proposal


class ReferenceHpa(HorizontalPodAutoscaler):
    """:class:`~thrifty.baselines.hpa.HorizontalPodAutoscaler`, one workload at a time."""

    def size(self, snapshot: ClusterSnapshot) -> SizingProposal:
        proposal = keep_proposal(snapshot)
        pods, workloads = snapshot.pods, snapshot.workloads
        for w, name in enumerate(workloads.names):
            current = int(workloads.replicas[w])
            if current == 0:
                continue
            mine = pods.workload_index == w
            desired = desired_replicas(pods.cpu_usage_millicores[mine], pods.cpu_request_millicores[mine],
                                       current, self.config.target_cpu_utilisation, self.config.tolerance)
            desired = int(np.clip(desired, workloads.replicas_min[w], workloads.replicas_max[w]))
            stabilised = self._stabilised(name, snapshot.time_seconds, current, desired)
            proposal.replicas[w] = self._rate_limited(current, stabilised, int(workloads.replicas_min[w]),
                                                      int(workloads.replicas_max[w]))
        return proposal


class _ReferenceUnneeded:
    """The Cluster Autoscaler's unneeded-node check, one candidate node at a time."""

    def _unneeded(self, snapshot: ClusterSnapshot, candidates: np.ndarray, stays: np.ndarray) -> set[str]:
        assert isinstance(self, ClusterAutoscaler)
        unneeded = set()
        for node in np.flatnonzero(candidates).tolist():
            others = stays.copy()
            others[node] = False
            if self._movable(snapshot, node, others):
                unneeded.add(snapshot.nodes.names[node])
        return unneeded


class ReferenceClusterAutoscaler(_ReferenceUnneeded, ClusterAutoscaler):
    """:class:`~thrifty.baselines.cluster_autoscaler.ClusterAutoscaler`, node by node."""


class ReferenceKarpenter(_ReferenceUnneeded, KarpenterConsolidation):
    """:class:`~thrifty.baselines.consolidation.KarpenterConsolidation`, node by node."""


class ReferenceHighNodeUtilization(HighNodeUtilization):
    """:class:`~thrifty.baselines.consolidation.HighNodeUtilization`, one pod at a time."""

    def plan(self, snapshot: ClusterSnapshot) -> tuple[int, ...]:
        now = snapshot.time_seconds
        if now - self.last_run_seconds < self.interval_seconds:
            return ()
        self.last_run_seconds = now
        nodes, pods = snapshot.nodes, snapshot.pods
        cpu, memory = _requested_fractions(snapshot)
        awake = nodes.schedulable & ~nodes.standby & (nodes.cpu_capacity_millicores > 0)
        under = awake & (cpu < self.cpu_threshold_fraction) & (memory < self.memory_threshold_fraction)
        targets = awake & ~under
        room_cpu = float(np.maximum(nodes.cpu_free_millicores[targets], 0.0).sum())
        room_memory = float(np.maximum(nodes.memory_free_bytes[targets], 0.0).sum())
        evicted: list[int] = []
        for node in sorted(np.flatnonzero(under).tolist(), key=lambda n: (max(cpu[n], memory[n]), n)):
            for p in np.flatnonzero((pods.node_index == node) & (pods.workload_index >= 0)).tolist():
                need_cpu, need_memory = float(pods.cpu_request_millicores[p]), float(pods.memory_request_bytes[p])
                if need_cpu > room_cpu or need_memory > room_memory:
                    return tuple(evicted)
                room_cpu -= need_cpu
                room_memory -= need_memory
                evicted.append(p)
        return tuple(evicted)
