"""The action spaces shared by the gym environments, the trained policy and the operator.

A sizing action is three discrete choices per workload, taken in one step so that vertical and
horizontal sizing never fight (the VPA-next-to-HPA problem):

=====  ============================  ===================================================
index  name                          meaning
=====  ============================  ===================================================
0      ``replicas``                  change in replicas, from :data:`REPLICA_DELTAS`
1      ``cpu_headroom``              CPU request = p95 of recent CPU usage x (1 + headroom),
                                     from :data:`CPU_HEADROOMS`; ``None`` keeps the request
2      ``memory_headroom``           memory request = peak recent memory x (1 + headroom),
                                     from :data:`MEMORY_HEADROOMS`; ``None`` keeps it
=====  ============================  ===================================================

CPU is sized on the p95 because throttling above it only slows a pod; memory is sized on the peak
because exceeding the limit kills it. Limits follow requests proportionally (the ratio of the
current limit to the current request is kept, as the VPA does), so a container without a limit
stays without one.

A placement action is the index of the chosen node.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from thrifty.snapshot import ContainerTable

REPLICA_DELTAS: tuple[int, ...] = (-2, -1, 0, 1, 2)
CPU_HEADROOMS: tuple[float | None, ...] = (None, 0.05, 0.15, 0.3, 0.5, 1.0)
MEMORY_HEADROOMS: tuple[float | None, ...] = (None, 0.1, 0.2, 0.35, 0.6, 1.0)
SIZING_ACTION_DIMS: tuple[int, int, int] = (len(REPLICA_DELTAS), len(CPU_HEADROOMS), len(MEMORY_HEADROOMS))
"""Sizes of the three sub-actions, as for ``gymnasium.spaces.MultiDiscrete``."""

KEEP_REPLICAS = REPLICA_DELTAS.index(0)
KEEP_CPU = CPU_HEADROOMS.index(None)
KEEP_MEMORY = MEMORY_HEADROOMS.index(None)
KEEP_ACTION = np.array([KEEP_REPLICAS, KEEP_CPU, KEEP_MEMORY], dtype=np.int64)
"""The sizing action that changes nothing."""

CPU_SIZING_PERCENTILE = 95.0
"""Percentile of the CPU usage window that a CPU headroom applies to."""


@dataclass(frozen=True)
class ContainerResources:
    """Requests and limits of one container. An absent limit is ``inf``."""

    cpu_request_millicores: float
    cpu_limit_millicores: float
    memory_request_bytes: float
    memory_limit_bytes: float


def valid_sizing_actions(actions: np.ndarray, n_workloads: int) -> np.ndarray:
    """bool (workloads,): which rows of a policy's sizing output are well formed.

    A row is valid when it has three finite integral entries within :data:`SIZING_ACTION_DIMS`.
    Anything else (wrong shape, NaN, out of range) is a broken policy output.
    """
    actions = np.asarray(actions)
    if actions.shape != (n_workloads, 3) or not np.issubdtype(actions.dtype, np.number):
        return np.zeros(n_workloads, dtype=bool)
    values = actions.astype(float)
    finite = np.all(np.isfinite(values), axis=1)
    integral = np.all(values == np.round(values), axis=1)
    in_range = np.all((values >= 0) & (values < np.asarray(SIZING_ACTION_DIMS)), axis=1)
    return finite & integral & in_range


def usage_targets(containers: ContainerTable, rows: np.ndarray) -> tuple[float, float]:
    """CPU p95 (millicores) and peak memory (bytes) over the usage windows of ``rows``.

    The rows are the same container of every pod of one workload: the sizing target is shared,
    so it is taken over all their samples. NaN when no sample is known.
    """
    cpu = containers.cpu_history_millicores[rows]
    memory = containers.memory_history_bytes[rows]
    cpu_target = float(np.nanpercentile(cpu, CPU_SIZING_PERCENTILE)) if np.any(np.isfinite(cpu)) else np.nan
    memory_target = float(np.nanmax(memory)) if np.any(np.isfinite(memory)) else np.nan
    return cpu_target, memory_target


def _proportional_limit(limit: float, request: float, new_request: float) -> float:
    if not np.isfinite(limit) or request <= 0:
        return limit
    return new_request * (limit / request)


def decode_resources(
    current: ContainerResources,
    cpu_usage_target_millicores: float,
    memory_usage_target_bytes: float,
    cpu_headroom_index: int,
    memory_headroom_index: int,
) -> ContainerResources:
    """The container size a vertical action asks for, before the safety pipeline.

    A headroom of ``None``, or an unknown usage target, keeps that resource as it is.
    """
    cpu_request, cpu_limit = current.cpu_request_millicores, current.cpu_limit_millicores
    memory_request, memory_limit = current.memory_request_bytes, current.memory_limit_bytes
    cpu_headroom = CPU_HEADROOMS[cpu_headroom_index]
    if cpu_headroom is not None and np.isfinite(cpu_usage_target_millicores):
        new_request = cpu_usage_target_millicores * (1.0 + cpu_headroom)
        cpu_limit = _proportional_limit(cpu_limit, cpu_request, new_request)
        cpu_request = new_request
    memory_headroom = MEMORY_HEADROOMS[memory_headroom_index]
    if memory_headroom is not None and np.isfinite(memory_usage_target_bytes):
        new_request = memory_usage_target_bytes * (1.0 + memory_headroom)
        memory_limit = _proportional_limit(memory_limit, memory_request, new_request)
        memory_request = new_request
    return ContainerResources(cpu_request, cpu_limit, memory_request, memory_limit)
