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

Policies hand the core a :class:`SizingProposal` (replica targets and container requests), not
action indices, so that baselines such as the VPA recommender can propose exact values. A
discrete action decodes into a proposal with :func:`decode_sizing`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from thrifty.snapshot import ClusterSnapshot, ContainerTable

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
class SizingProposal:
    """What a policy asks for, before the safety pipeline.

    Every entry must be finite: to keep a value, propose the current one. A NaN or infinite
    entry marks the policy's output for that workload as broken, and the fallback decides.
    """

    replicas: np.ndarray
    """(workloads,) target replica count."""
    cpu_request_millicores: np.ndarray
    """(containers,) target CPU request, one per row of ``snapshot.containers``."""
    memory_request_bytes: np.ndarray
    """(containers,) target memory request, one per row of ``snapshot.containers``."""


def keep_proposal(snapshot: ClusterSnapshot) -> SizingProposal:
    """The proposal that changes nothing."""
    return SizingProposal(
        replicas=snapshot.workloads.replicas.astype(float),
        cpu_request_millicores=snapshot.containers.cpu_request_millicores.copy(),
        memory_request_bytes=snapshot.containers.memory_request_bytes.copy(),
    )


def valid_proposal_rows(snapshot: ClusterSnapshot, proposal: SizingProposal) -> np.ndarray:
    """bool (workloads,): the workloads whose part of ``proposal`` is well formed.

    Replicas must be finite, integral and >= 0; requests finite and >= 0. A proposal of the wrong
    type or shape (a policy is a plug-in, so its output is checked at run time too) is broken for
    every workload.
    """
    n, c = len(snapshot.workloads), len(snapshot.containers)
    try:
        replicas = np.asarray(proposal.replicas, dtype=float)
        cpu = np.asarray(proposal.cpu_request_millicores, dtype=float)
        memory = np.asarray(proposal.memory_request_bytes, dtype=float)
    except (AttributeError, TypeError, ValueError):
        return np.zeros(n, dtype=bool)
    if replicas.shape != (n,) or cpu.shape != (c,) or memory.shape != (c,):
        return np.zeros(n, dtype=bool)
    valid = np.isfinite(replicas) & (replicas == np.round(replicas)) & (replicas >= 0)
    # A request of 0 is valid: a container without one (BestEffort, or a sidecar) keeps none.
    bad_container = ~(np.isfinite(cpu) & (cpu >= 0) & np.isfinite(memory) & (memory >= 0))
    owners = snapshot.containers.workload_index[bad_container]
    valid[owners[owners >= 0]] = False
    return valid


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


def with_requests(
    current: ContainerResources, cpu_request_millicores: float, memory_request_bytes: float
) -> ContainerResources:
    """``current`` resized to new requests, limits following proportionally."""
    return ContainerResources(
        cpu_request_millicores=cpu_request_millicores,
        cpu_limit_millicores=_proportional_limit(
            current.cpu_limit_millicores, current.cpu_request_millicores, cpu_request_millicores),
        memory_request_bytes=memory_request_bytes,
        memory_limit_bytes=_proportional_limit(
            current.memory_limit_bytes, current.memory_request_bytes, memory_request_bytes),
    )


def container_groups(snapshot: ClusterSnapshot, workload: int) -> dict[str, np.ndarray]:
    """Container rows of ``workload`` grouped by container name (one group per sized container)."""
    containers = snapshot.containers
    rows = np.flatnonzero(containers.workload_index == workload)
    groups: dict[str, list[int]] = {}
    for r in rows:
        groups.setdefault(containers.names[r], []).append(int(r))
    return {name: np.asarray(group, dtype=np.int64) for name, group in groups.items()}


def decode_sizing(snapshot: ClusterSnapshot, actions: np.ndarray) -> SizingProposal:
    """The proposal that discrete sizing actions (workloads, 3) stand for.

    Raises ``ValueError`` on malformed actions (see :func:`valid_sizing_actions`). A headroom of
    ``None``, or an unknown usage target, keeps that request as it is.
    """
    actions = np.asarray(actions)
    valid = valid_sizing_actions(actions, len(snapshot.workloads))
    if not valid.all():
        raise ValueError(f"sizing actions: rows {np.flatnonzero(~valid).tolist()} are malformed")
    actions = actions.astype(np.int64)
    proposal = keep_proposal(snapshot)
    deltas = np.asarray(REPLICA_DELTAS)[actions[:, 0]]
    # A workload with no pod yet cannot lose one: the count stops at 0.
    proposal.replicas[:] = np.maximum(snapshot.workloads.replicas + deltas, 0)
    for w in range(len(snapshot.workloads)):
        cpu_headroom = CPU_HEADROOMS[actions[w, 1]]
        memory_headroom = MEMORY_HEADROOMS[actions[w, 2]]
        for group in container_groups(snapshot, w).values():
            cpu_target, memory_target = usage_targets(snapshot.containers, group)
            if cpu_headroom is not None and np.isfinite(cpu_target) and cpu_target > 0:
                proposal.cpu_request_millicores[group] = cpu_target * (1.0 + cpu_headroom)
            if memory_headroom is not None and np.isfinite(memory_target) and memory_target > 0:
                proposal.memory_request_bytes[group] = memory_target * (1.0 + memory_headroom)
    return proposal
