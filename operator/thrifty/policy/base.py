"""The policy interface. The operator's handlers and the simulator only ever see this.

A policy proposes; the safety pipeline (:mod:`thrifty.safety`) disposes. A policy may return
anything (a broken one returns NaN, the wrong shape, or raises); the safety pipeline checks every
output and falls back to the heuristic when it is unusable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from thrifty.actions import SizingProposal
from thrifty.snapshot import ClusterSnapshot


class PolicyError(RuntimeError):
    """A policy could not be loaded or could not produce a decision."""


@dataclass(frozen=True)
class PolicyInfo:
    """What is serving decisions, exported in status and as the ``thrifty_policy_info`` metric."""

    name: str
    """Policy name, e.g. ``default`` or ``heuristic``."""
    version: str
    """Version string of the artefact (or of the code, for the heuristic)."""
    backend: str
    """``heuristic``, ``numpy`` or ``rllib``."""
    feature_schema_version: int | None = None
    """Feature schema the policy was trained on (None for the heuristic, which reads raw data)."""


class Policy(Protocol):
    """Proposes placements and sizes from a snapshot."""

    info: PolicyInfo

    def score_nodes(self, snapshot: ClusterSnapshot, pod: int) -> np.ndarray:
        """(nodes,) preference of each node for Pending pod row ``pod``; higher is better.

        Infeasible nodes may get any score: the safety pipeline masks them.
        """

    def size(self, snapshot: ClusterSnapshot) -> SizingProposal:
        """Replica targets and container requests for every workload; current values to keep.

        A discrete-action policy builds this with :func:`thrifty.actions.decode_sizing`.
        """
