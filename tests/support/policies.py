"""Policies for the cluster tests, loaded by ``thrifty run --policy tests.support.policies:NAME``.

:class:`ScriptedPolicy` lets one operator process serve every test: each workload's sizing
action is chosen by the prefix of its name, and placement is the heuristic's. The safety
pipeline must keep every scripted ask within bounds, which is what the tests check.

=============  =================================================================
name prefix    sizing action
=============  =================================================================
``grow-``      +2 replicas, keep requests
``shrink-``    -1 replica, keep requests
``nan-``       NaN everywhere (a broken policy: the heuristic must take over)
``trim-``      keep replicas, CPU request at p95 usage + 5 % (shrinks idle pods)
``keep-``      keep replicas and requests (the count changes only by ``kubectl scale``)
anything else  the heuristic's action
=============  =================================================================
"""

from __future__ import annotations

import numpy as np

from thrifty.actions import (
    CPU_HEADROOMS,
    KEEP_ACTION,
    KEEP_CPU,
    KEEP_MEMORY,
    KEEP_REPLICAS,
    REPLICA_DELTAS,
    SizingProposal,
    decode_sizing,
    keep_proposal,
)
from thrifty.policy.base import PolicyInfo
from thrifty.policy.heuristic import HeuristicPolicy
from thrifty.snapshot import ClusterSnapshot


class ScriptedPolicy:
    """See the module docstring."""

    def __init__(self) -> None:
        self.heuristic = HeuristicPolicy()
        self.info = PolicyInfo(name="scripted", version="test-1", backend="test")

    def score_nodes(self, snapshot: ClusterSnapshot, pod: int) -> np.ndarray:
        return self.heuristic.score_nodes(snapshot, pod)

    def size(self, snapshot: ClusterSnapshot) -> SizingProposal:
        heuristic = self.heuristic.size(snapshot)
        actions = [self._action(key) or tuple(KEEP_ACTION) for key in snapshot.workloads.names]
        scripted = decode_sizing(snapshot, np.array(actions, dtype=np.int64).reshape(-1, 3))
        mine = np.array([self._action(key) is not None for key in snapshot.workloads.names], dtype=bool)
        broken = np.array([key.split("/", 1)[1].startswith("nan-") for key in snapshot.workloads.names], dtype=bool)
        owner = np.maximum(snapshot.containers.workload_index, 0)
        scripted_rows = mine[owner] & (snapshot.containers.workload_index >= 0)
        broken_rows = broken[owner] & (snapshot.containers.workload_index >= 0)
        proposal = SizingProposal(
            replicas=np.where(mine, scripted.replicas, heuristic.replicas),
            cpu_request_millicores=np.where(scripted_rows, scripted.cpu_request_millicores,
                                            heuristic.cpu_request_millicores),
            memory_request_bytes=np.where(scripted_rows, scripted.memory_request_bytes,
                                          heuristic.memory_request_bytes),
        )
        proposal.replicas[broken] = np.nan
        proposal.cpu_request_millicores[broken_rows] = np.nan
        return proposal

    @staticmethod
    def _action(key: str) -> tuple[int, int, int] | None:
        """The scripted action of the workload ``namespace/name``; None: the heuristic decides."""
        name = key.split("/", 1)[1]
        if name.startswith("grow-"):
            return REPLICA_DELTAS.index(2), KEEP_CPU, KEEP_MEMORY
        if name.startswith("shrink-"):
            return REPLICA_DELTAS.index(-1), KEEP_CPU, KEEP_MEMORY
        if name.startswith("trim-"):
            return REPLICA_DELTAS.index(0), CPU_HEADROOMS.index(0.05), KEEP_MEMORY
        if name.startswith("keep-"):
            return KEEP_REPLICAS, KEEP_CPU, KEEP_MEMORY
        return None


class NaNPolicy:
    """Broken everywhere: NaN node scores and NaN sizing actions."""

    def __init__(self) -> None:
        self.info = PolicyInfo(name="nan", version="test-1", backend="test")

    def score_nodes(self, snapshot: ClusterSnapshot, pod: int) -> np.ndarray:
        return np.full(len(snapshot.nodes), np.nan)

    def size(self, snapshot: ClusterSnapshot) -> SizingProposal:
        proposal = keep_proposal(snapshot)
        proposal.replicas[:] = np.nan
        return proposal


class ExplodingPolicy:
    """Cannot even be constructed: ``thrifty run`` must fall back to the heuristic."""

    def __init__(self) -> None:
        raise RuntimeError("weights file is corrupt")
