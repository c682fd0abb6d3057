"""What the placement baselines share: kube-scheduler's score scale, request sums, tie-breaking.

kube-scheduler scores every feasible node with integers in ``[0, MAX_NODE_SCORE]`` per plugin,
sums them with the plugins' weights, and picks the highest; ties are broken uniformly at random
(``selectHost`` in ``pkg/scheduler/schedule_one.go``). The safety pipeline picks the first of
equal scores, so :func:`break_ties` adds a seeded jitter below one point: integer scores keep
their order and equal ones are chosen between at random, as upstream does.
"""

from __future__ import annotations

import numpy as np

from thrifty.actions import SizingProposal, keep_proposal
from thrifty.snapshot import ClusterSnapshot

MAX_NODE_SCORE = 100
"""``framework.MaxNodeScore``: the best score one scoring plugin gives."""

DEFAULT_MILLI_CPU_REQUEST = 100
"""CPU (millicores) the scheduler assumes for a container that requests none
(``pkg/scheduler/util/pod_resources.go``, ``DefaultMilliCPURequest``)."""

DEFAULT_MEMORY_REQUEST_BYTES = 200 * 2**20
"""Memory (bytes) the scheduler assumes for a container that requests none
(``DefaultMemoryRequest``, 200 MiB)."""

TIE_JITTER = 0.5
"""Largest jitter added to integer scores; below 1 so that it only orders equal scores."""


def as_generator(rng: np.random.Generator | int | None) -> np.random.Generator:
    """A Generator from a Generator, a seed, or None (seed 0, so runs are reproducible)."""
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(0 if rng is None else rng)


def node_requests_with_pod(snapshot: ClusterSnapshot, pod: int, *, non_zero: bool) -> tuple[np.ndarray, np.ndarray]:
    """int64 (nodes,) twice: CPU (millicores) and memory (bytes) requested on each node if
    Pending pod row ``pod`` were bound there.

    ``non_zero`` counts a zero request as the scheduler's defaults (100m, 200 MiB), as
    NodeResourcesFit does (``NonZeroRequested``) so that request-less pods still spread;
    BalancedAllocation uses the plain requests.
    """
    pods = snapshot.pods
    cpu, memory = pods.cpu_request_millicores, pods.memory_request_bytes
    if non_zero:
        cpu = np.where(cpu > 0, cpu, DEFAULT_MILLI_CPU_REQUEST)
        memory = np.where(memory > 0, memory, DEFAULT_MEMORY_REQUEST_BYTES)
    bound = pods.node_index >= 0
    n = len(snapshot.nodes)
    node_cpu = np.bincount(pods.node_index[bound], weights=cpu[bound], minlength=n)
    node_memory = np.bincount(pods.node_index[bound], weights=memory[bound], minlength=n)
    return np.round(node_cpu + cpu[pod]).astype(np.int64), np.round(node_memory + memory[pod]).astype(np.int64)


def allocatable(snapshot: ClusterSnapshot) -> tuple[np.ndarray, np.ndarray]:
    """int64 (nodes,) twice: allocatable CPU (millicores) and memory (bytes)."""
    nodes = snapshot.nodes
    return (np.round(nodes.cpu_capacity_millicores).astype(np.int64),
            np.round(nodes.memory_capacity_bytes).astype(np.int64))


def weighted_resource_score(scores: list[np.ndarray], capacities: list[np.ndarray], weights: list[int]) -> np.ndarray:
    """int64 (nodes,): per-resource scores averaged with integer weights, skipping resources a
    node has none of, with integer division (``resourceAllocationScorer``)."""
    total = np.zeros_like(scores[0])
    weight_sum = np.zeros_like(scores[0])
    for score, capacity, weight in zip(scores, capacities, weights, strict=True):
        present = capacity > 0
        total += np.where(present, score * weight, 0)
        weight_sum += np.where(present, weight, 0)
    return np.where(weight_sum > 0, total // np.maximum(weight_sum, 1), 0)


def break_ties(scores: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``scores`` (whole points) plus a jitter in ``[0, TIE_JITTER)``: equal scores are then
    chosen between uniformly at random, different ones keep their order."""
    return np.asarray(scores, dtype=float) + rng.random(len(scores)) * TIE_JITTER


class KeepsSizes:
    """Mixin for placement-only baselines: their sizing proposal changes nothing."""

    def size(self, snapshot: ClusterSnapshot) -> SizingProposal:
        return keep_proposal(snapshot)
