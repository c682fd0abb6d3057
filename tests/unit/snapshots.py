"""Small hand-built snapshots for unit tests of the pure core."""

from __future__ import annotations

import numpy as np

from thrifty.snapshot import (
    ClusterSnapshot,
    ContainerTable,
    DependencyTable,
    NodeTable,
    PodTable,
    WorkloadTable,
    empty_dependencies,
)

MI = 2**20
GI = 2**30


def make_snapshot(
    *,
    node_cpu: list[float],
    node_memory: list[float] | None = None,
    pods: list[dict] = (),
    workloads: list[dict] = (),
    dependencies: list[tuple[int, int, float]] = (),
    standby: list[bool] | None = None,
    schedulable: list[bool] | None = None,
    window: int = 8,
    time_seconds: float = 1000.0,
) -> ClusterSnapshot:
    """A snapshot from short lists. Each pod dict may set: workload, node, cpu, memory, cpu_limit,
    memory_limit, usage (cpu millicores, constant over the window), memory_usage, age, throttled, ooms."""
    n = len(node_cpu)
    node_memory = node_memory or [64 * GI] * n
    pod_node = np.array([p.get("node", -1) for p in pods], dtype=np.int64)
    pod_cpu = np.array([p.get("cpu", 100.0) for p in pods], dtype=float)
    pod_memory = np.array([p.get("memory", 128 * MI) for p in pods], dtype=float)
    bound = pod_node >= 0
    requested_cpu = np.bincount(pod_node[bound], weights=pod_cpu[bound], minlength=n) if len(pods) else np.zeros(n)
    requested_memory = (
        np.bincount(pod_node[bound], weights=pod_memory[bound], minlength=n) if len(pods) else np.zeros(n)
    )
    usage = np.array([p.get("usage", np.nan) for p in pods], dtype=float)
    memory_usage = np.array([p.get("memory_usage", np.nan) for p in pods], dtype=float)
    nodes = NodeTable(
        names=tuple(f"node-{i}" for i in range(n)),
        cpu_capacity_millicores=np.asarray(node_cpu, dtype=float),
        memory_capacity_bytes=np.asarray(node_memory, dtype=float),
        cpu_requested_millicores=requested_cpu,
        memory_requested_bytes=requested_memory,
        cpu_usage_millicores=np.full(n, np.nan),
        memory_usage_bytes=np.full(n, np.nan),
        power_class=("medium",) * n,
        schedulable=np.asarray(schedulable if schedulable is not None else [True] * n),
        standby=np.asarray(standby if standby is not None else [False] * n),
    )
    workload_index = np.array([p.get("workload", -1) for p in pods], dtype=np.int64)
    pod_table = PodTable(
        names=tuple(f"default/pod-{i}" for i in range(len(pods))),
        workload_index=workload_index,
        node_index=pod_node,
        cpu_request_millicores=pod_cpu,
        cpu_limit_millicores=np.array([p.get("cpu_limit", np.inf) for p in pods], dtype=float),
        memory_request_bytes=pod_memory,
        memory_limit_bytes=np.array([p.get("memory_limit", np.inf) for p in pods], dtype=float),
        cpu_usage_millicores=usage,
        memory_usage_bytes=memory_usage,
        age_seconds=np.array([p.get("age", 100.0) for p in pods], dtype=float),
    )
    bounds = [workloads[w] if w >= 0 else {} for w in workload_index]
    containers = ContainerTable(
        pod_index=np.arange(len(pods), dtype=np.int64),
        names=("app",) * len(pods),
        workload_index=workload_index,
        cpu_request_millicores=pod_cpu.copy(),
        cpu_limit_millicores=pod_table.cpu_limit_millicores.copy(),
        memory_request_bytes=pod_memory.copy(),
        memory_limit_bytes=pod_table.memory_limit_bytes.copy(),
        cpu_history_millicores=np.repeat(usage[:, None], window, axis=1),
        memory_history_bytes=np.repeat(memory_usage[:, None], window, axis=1),
        history_step_seconds=60.0,
        throttled_periods_total=np.array([p.get("throttled", 0) for p in pods], dtype=float),
        oom_kills_total=np.array([p.get("ooms", 0) for p in pods], dtype=float),
        cpu_min_millicores=np.array([b.get("cpu_min", np.nan) for b in bounds], dtype=float),
        cpu_max_millicores=np.array([b.get("cpu_max", np.nan) for b in bounds], dtype=float),
        memory_min_bytes=np.array([b.get("memory_min", np.nan) for b in bounds], dtype=float),
        memory_max_bytes=np.array([b.get("memory_max", np.nan) for b in bounds], dtype=float),
    )
    k = len(workloads)
    replicas = (
        np.bincount(workload_index[workload_index >= 0], minlength=k) if len(pods) else np.zeros(k, dtype=np.int64)
    )
    workload_table = WorkloadTable(
        names=tuple(f"default/w{i}" for i in range(k)),
        replicas=replicas.astype(np.int64),
        replicas_min=np.array([w.get("min", 1) for w in workloads], dtype=np.int64),
        replicas_max=np.array([w.get("max", 10) for w in workloads], dtype=np.int64),
        cpu_min_millicores=np.array([w.get("cpu_min", np.nan) for w in workloads], dtype=float),
        cpu_max_millicores=np.array([w.get("cpu_max", np.nan) for w in workloads], dtype=float),
        memory_min_bytes=np.array([w.get("memory_min", np.nan) for w in workloads], dtype=float),
        memory_max_bytes=np.array([w.get("memory_max", np.nan) for w in workloads], dtype=float),
        slo_latency_p95_seconds=np.array([w.get("slo", 0.2) for w in workloads], dtype=float),
        energy_weight=np.array([w.get("energy_weight", 0.5) for w in workloads], dtype=float),
        request_rate_per_second=np.array([w.get("rate", np.nan) for w in workloads], dtype=float),
        latency_p95_seconds=np.array([w.get("latency", np.nan) for w in workloads], dtype=float),
    )
    deps = empty_dependencies() if not dependencies else DependencyTable(
        source=np.array([d[0] for d in dependencies], dtype=np.int64),
        target=np.array([d[1] for d in dependencies], dtype=np.int64),
        weight=np.array([d[2] for d in dependencies], dtype=float),
    )
    return ClusterSnapshot(time_seconds=time_seconds, nodes=nodes, pods=pod_table, containers=containers,
                           workloads=workload_table, dependencies=deps)
