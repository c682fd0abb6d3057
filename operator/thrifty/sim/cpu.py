"""How running pods share CPU: the limit (CFS quota) first, then the node (CFS shares).

Both are modelled at the step's resolution: demand within a step is taken as constant, so a pod
is throttled in every CFS period of a step whose mean demand exceeds its limit and in none
otherwise. Bursts shorter than a step are not modelled, which understates throttling for
bursty pods; the traces' own variation between steps is kept.
"""

from __future__ import annotations

import numpy as np

MIN_CPU_SHARES_MILLICORES = 2.0
"""kubelet gives a container at least 2 CPU shares (``MinShares``), i.e. the weight of a 2m
request, so a BestEffort pod still gets a little CPU under contention."""

_MAX_FILL_ROUNDS = 64
"""Water-filling rounds before the remaining pods split what is left proportionally. Each round
satisfies at least one pod per contended node, so it converges in a few rounds in practice."""


def throttle(demand_millicores: np.ndarray, limit_millicores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """CPU each pod may use under its limit, and the fraction of its demand the limit denies."""
    capped = np.minimum(demand_millicores, limit_millicores)
    with np.errstate(divide="ignore", invalid="ignore"):
        denied = np.where(demand_millicores > 0, 1.0 - capped / demand_millicores, 0.0)
    return capped, denied


def _offer(remaining: np.ndarray, weight: np.ndarray, pod_node: np.ndarray, active: np.ndarray) -> np.ndarray:
    """Each pod's weighted share of its node's remaining CPU among the node's active pods."""
    weight_sum = np.bincount(pod_node[active], weights=weight[active], minlength=len(remaining))
    node_sum = weight_sum[pod_node]
    return remaining[pod_node] * weight / np.where(node_sum > 0, node_sum, 1.0)


def share_node_cpu(
    demand_millicores: np.ndarray,
    request_millicores: np.ndarray,
    node: np.ndarray,
    capacity_millicores: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """CPU each pod gets on its node, and which nodes are contended.

    Where a node's pods demand no more than its capacity, each gets its demand. Where they
    demand more, the node's CPU is divided as the Linux CFS scheduler divides it between cgroups:
    weighted max-min fairness with weights ``max(request, 2m)`` (kubelet sets ``cpu.shares`` from
    the request). Computed by water-filling: every unsatisfied pod is offered its weighted share
    of what is left; pods that need less take their demand and leave the rest to the others.

    ``demand_millicores`` (P,) is already capped by the limits; ``node`` (P,) indexes
    ``capacity_millicores`` (N,). Returns ``usage`` (P,) and ``contended`` bool (N,).
    """
    n_nodes = len(capacity_millicores)
    total = np.bincount(node, weights=demand_millicores, minlength=n_nodes)
    contended = total > capacity_millicores
    usage = demand_millicores.copy()
    if not np.any(contended):
        return usage, contended
    pods = np.flatnonzero(contended[node])
    demand = demand_millicores[pods]
    weight = np.maximum(request_millicores[pods], MIN_CPU_SHARES_MILLICORES)
    pod_node = node[pods]
    remaining = capacity_millicores.astype(float).copy()
    granted = np.zeros(len(pods))
    active = np.ones(len(pods), dtype=bool)
    for _ in range(_MAX_FILL_ROUNDS):
        satisfied = active & (demand <= _offer(remaining, weight, pod_node, active))
        if not np.any(satisfied):
            break
        granted[satisfied] = demand[satisfied]
        remaining -= np.bincount(pod_node[satisfied], weights=demand[satisfied], minlength=n_nodes)
        active &= ~satisfied
    granted[active] = _offer(remaining, weight, pod_node, active)[active]
    usage[pods] = granted
    return usage, contended
