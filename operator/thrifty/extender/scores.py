"""The extender's wire format and the mapping of the policy's choice onto extender scores. Pure.

Field names are those of ``k8s.io/kube-scheduler/extender/v1`` (types.go), whose structs carry no
JSON tags, so Go encodes each field under its own capitalised name:

* ``ExtenderArgs``: ``Pod``, ``Nodes`` (only without ``nodeCacheCapable``), ``NodeNames``;
* ``HostPriorityList``: a list of ``{"Host": name, "Score": int}``, scores 0 to 10.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

MAX_EXTENDER_SCORE = 10
"""``MaxExtenderPriority``; kube-scheduler multiplies it up to its own 0..100 node scores."""


def candidate_nodes(args: Mapping) -> list[str]:
    """Node names of an ``ExtenderArgs``: ``NodeNames`` with ``nodeCacheCapable``, else the names
    of the ``Nodes`` list."""
    names = args.get("NodeNames")
    if names is not None:
        return list(names)
    return [n["metadata"]["name"] for n in ((args.get("Nodes") or {}).get("items") or [])]


def host_priorities(candidates: Sequence[str], node_names: Sequence[str], scores: np.ndarray,
                    chosen: int, node_row: Mapping[str, int] | None = None) -> list[dict]:
    """The ``HostPriorityList`` for the candidates: the chosen node (a row of ``node_names``)
    gets 10, every other candidate strictly less, ordered as the policy's scores are.

    So kube-scheduler, whose own score plugins the ``thrifty`` profile disables, binds where the
    policy chose. Other candidates get 0 to 9, linear in their score between the lowest and the
    chosen node's (a candidate the view does not know, or with a non-finite score, gets 0).
    ``node_row`` maps a name to its row of ``node_names`` when the caller has that already.
    """
    row = node_row if node_row is not None else {name: i for i, name in enumerate(node_names)}
    rows = np.array([row.get(c, -1) for c in candidates], dtype=np.int64)
    known = rows >= 0
    values = np.where(known, np.asarray(scores, dtype=float)[np.where(known, rows, 0)], np.nan)
    finite = np.isfinite(values)
    top = float(scores[chosen]) if chosen >= 0 and np.isfinite(scores[chosen]) else np.nan
    low = float(values[finite].min()) if finite.any() else np.nan
    if np.isfinite(top) and np.isfinite(low) and top > low:
        scaled = np.floor((MAX_EXTENDER_SCORE - 1) * (np.clip(values, low, top) - low) / (top - low))
    else:
        scaled = np.full(len(candidates), MAX_EXTENDER_SCORE - 1.0)
    result = np.where(finite, np.clip(scaled, 0, MAX_EXTENDER_SCORE - 1), 0).astype(int)
    result[rows == chosen] = MAX_EXTENDER_SCORE if chosen >= 0 else result[rows == chosen]
    return [{"Host": name, "Score": score} for name, score in zip(candidates, result.tolist(), strict=True)]


def neutral_priorities(candidates: Sequence[str]) -> list[dict]:
    """Equal scores: Thrifty does not steer the pod (shadow placement, other schedulers' pods)."""
    return [{"Host": name, "Score": 0} for name in candidates]
