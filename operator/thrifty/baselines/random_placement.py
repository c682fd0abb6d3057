"""Random placement: the floor every placement policy must clear."""

from __future__ import annotations

import numpy as np

from thrifty import __version__
from thrifty.baselines.scoring import KeepsSizes, as_generator
from thrifty.policy.base import PolicyInfo
from thrifty.snapshot import ClusterSnapshot


class RandomPlacement(KeepsSizes):
    """A uniformly random feasible node (the safety pipeline masks the infeasible ones).

    ``rng`` is the only source of randomness, so a seeded run is reproducible. Proposes no
    sizing change.
    """

    def __init__(self, rng: np.random.Generator | int | None = None) -> None:
        self.rng = as_generator(rng)
        self.info = PolicyInfo(name="random", version=__version__, backend="baseline")

    def score_nodes(self, snapshot: ClusterSnapshot, pod: int) -> np.ndarray:
        return self.rng.random(len(snapshot.nodes))
