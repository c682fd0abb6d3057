"""The policy networks in numpy: what the operator runs, with no ray or torch imported.

Both networks score *rows* with shared weights, so one set of weights serves any number of
nodes or workloads, in any order (the design of Decima's per-node scoring):

* **placement**: one row per node (node features, the pod's features, the pod's traffic to the
  node). ``logit[n] = MLP(normalise(row[n]))``; infeasible nodes are masked to ``-inf``.
* **sizing**: one row per workload. A shared trunk, then three heads giving the logits of the
  replica delta, the CPU headroom and the memory headroom (:mod:`thrifty.actions`).

Hidden layers use tanh. ``thrifty.training.rlmodule`` builds the same layers in torch for RLlib,
and ``thrifty.training.export`` copies the trained weights into the arrays used here, under the
same names, so both backends compute the same logits.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from thrifty.features import RunningNormaliser

SIZING_HEADS = ("replicas", "cpu_headroom", "memory_headroom")
"""Names of the sizing heads, in the order of :data:`thrifty.actions.SIZING_ACTION_DIMS`."""

TIE_TOLERANCE = 1e-5
"""Logits this close to the best count as tied, and the lowest index wins. Identical rows (two
empty nodes of one class) tie exactly in float64 but not in torch's float32; snapping makes the
numpy and RLlib backends choose the same node."""

MASKED_LOGIT = -1e9
"""Logit of an infeasible node: finite, so the safety pipeline reads it as a valid, hopeless
score rather than a broken output, and far below any trained logit."""


def _dense(weights: Mapping[str, np.ndarray], prefix: str, x: np.ndarray) -> np.ndarray:
    # Stored as torch.nn.Linear does: weight (out, in), bias (out,).
    return x @ weights[f"{prefix}.weight"].T + weights[f"{prefix}.bias"]


def _trunk(weights: Mapping[str, np.ndarray], prefix: str, layers: int, x: np.ndarray) -> np.ndarray:
    # float32 as in torch: half the memory traffic, and logits within ~1e-6 of the RLlib module's.
    x = x.astype(np.float32)
    for i in range(layers):
        x = np.tanh(_dense(weights, f"{prefix}.{2 * i}", x))
    return x


def placement_logits(
    weights: Mapping[str, np.ndarray], layers: int, normaliser: RunningNormaliser, rows: np.ndarray, mask: np.ndarray
) -> np.ndarray:
    """(nodes,) logits of the placement network; :data:`MASKED_LOGIT` where ``mask`` is False."""
    hidden = _trunk(weights, "placement.trunk", layers, normaliser(rows))
    logits = _dense(weights, "placement.score", hidden)[:, 0].astype(float)
    return snap_ties(np.where(mask, logits, MASKED_LOGIT))


def snap_ties(logits: np.ndarray) -> np.ndarray:
    """``logits`` with every value within :data:`TIE_TOLERANCE` of the best set to the best, so
    that an argmax picks the lowest-indexed of them whatever the floating-point noise."""
    if logits.size == 0:
        return logits
    best = np.max(logits, axis=-1, keepdims=True)
    return np.where(logits >= best - TIE_TOLERANCE, best, logits)


def sizing_logits(
    weights: Mapping[str, np.ndarray], layers: int, normaliser: RunningNormaliser, rows: np.ndarray
) -> tuple[np.ndarray, ...]:
    """Logits of the three sizing heads, each (workloads, head size)."""
    hidden = _trunk(weights, "sizing.trunk", layers, normaliser(rows))
    return tuple(_dense(weights, f"sizing.{head}", hidden).astype(float) for head in SIZING_HEADS)


def greedy_sizing_actions(logits: tuple[np.ndarray, ...]) -> np.ndarray:
    """(workloads, 3) the most likely action of each head."""
    return np.stack([np.argmax(snap_ties(head), axis=1) for head in logits], axis=1).astype(np.int64)
