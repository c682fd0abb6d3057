"""Assembling named feature columns into the finite matrices the policy networks read."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


def stack(columns: Mapping[str, np.ndarray], names: Sequence[str], rows: int) -> np.ndarray:
    """(rows, len(names)) float64 with ``columns[name]`` in the order of ``names``.

    Every column is finite by construction for finite inputs; the final replacement of NaN and
    inf by 0 enforces the contract even for absurd ones (e.g. samples near 1e308 whose sum
    overflows), because a single NaN would poison a network's whole output.
    """
    matrix = np.empty((rows, len(names)))
    for position, name in enumerate(names):
        matrix[:, position] = columns[name]
    return np.nan_to_num(matrix, nan=0.0, posinf=0.0, neginf=0.0)
