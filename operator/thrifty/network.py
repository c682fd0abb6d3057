"""Dependency traffic between workloads, and what crossing nodes costs it.

Model
-----
Dependencies are directed edges ``a -> b`` (``a`` calls ``b``) with a number of calls per request
of ``a`` (from the call graphs). For every edge::

    calls/s(a -> b)        = λ_a · calls_per_request(a -> b)
    crossing fraction      = 1 - Σ_n s_a(n) · s_b(n)
    cross-node calls/s     = calls/s · crossing fraction

where ``s_w(n)`` is the share of workload ``w``'s running pods on node ``n``. The crossing
fraction is the probability that a call leaves its node when the caller is a uniformly random
pod of ``a`` and the callee a uniformly random pod of ``b``: which callee pod serves a call does
not depend on where the caller runs, as with a Kubernetes Service without topology-aware
routing (whether it picks pods at random or by least outstanding requests). It is 0 when both workloads share a
single node and ``1 - 1/N`` when both are spread evenly over the same ``N`` nodes. An edge with
no running pod at either end carries no traffic and crosses nothing.

Each crossing call costs:

* latency: one intra-datacentre round trip (``cross_node_call_latency_seconds``), added to the
  caller's response time. Calls are taken as sequential, so a request of ``a`` waits
  ``Σ_b calls_per_request(a -> b) · crossing(a -> b) · RTT`` more on average (an upper bound
  when calls fan out in parallel);
* energy: ``bytes_per_call · network_energy_joules_per_byte``, charged to the caller.

The constants and their sources are in :class:`thrifty.config.NetworkModelConfig` and
``docs/models.md``. Pure numpy: no I/O, no Kubernetes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from thrifty.config import NetworkModelConfig


@dataclass(frozen=True)
class NetworkEffect:
    """Traffic on E dependency edges and its cost to W workloads."""

    calls_per_second: np.ndarray
    """(E,) calls along each edge."""
    cross_node_calls_per_second: np.ndarray
    """(E,) of those, the calls whose caller and callee run on different nodes."""
    added_latency_seconds: np.ndarray
    """(W,) mean latency that crossing calls add to one request of each (calling) workload."""
    watts: np.ndarray
    """(W,) network power of each workload's crossing calls, charged to the caller."""

    @property
    def total_watts(self) -> float:
        """Network power of all crossing calls."""
        return float(self.watts.sum())


def cross_node_fraction(
    pod_workload: np.ndarray, pod_node: np.ndarray, source: np.ndarray, target: np.ndarray
) -> np.ndarray:
    """(E,) probability that a call along each edge crosses nodes.

    ``pod_workload`` and ``pod_node`` (P,) give the workload and node of every running pod;
    ``source`` and ``target`` (E,) are workload indices. Edges with no running pod at either end
    give 0.

    Works on the (workload, node) pairs that hold pods, never on a dense workloads x nodes
    matrix: for each edge it walks the nodes of the caller's pods and looks up how many callee
    pods share each, so the cost grows with pods, not with workloads times nodes.
    """
    pod_workload = np.asarray(pod_workload, dtype=np.int64)
    pod_node = np.asarray(pod_node, dtype=np.int64)
    source = np.asarray(source, dtype=np.int64)
    target = np.asarray(target, dtype=np.int64)
    n_edges = len(source)
    if n_edges == 0 or len(pod_workload) == 0:
        return np.zeros(n_edges)
    n_workloads = int(max(pod_workload.max(), source.max(), target.max())) + 1
    stride = int(pod_node.max()) + 1
    pairs, pods_in_pair = np.unique(pod_workload * stride + pod_node, return_counts=True)
    pair_workload = pairs // stride
    everyone = np.arange(n_workloads)
    first_pair = np.searchsorted(pair_workload, everyone)
    pairs_of = np.searchsorted(pair_workload, everyone, side="right") - first_pair
    # One row per (edge, node holding a caller pod).
    per_edge = pairs_of[source]
    edge = np.repeat(np.arange(n_edges), per_edge)
    within = np.arange(len(edge)) - np.repeat(np.cumsum(per_edge) - per_edge, per_edge)
    caller_pair = first_pair[source][edge] + within
    callee_key = target[edge] * stride + pairs[caller_pair] % stride
    found = np.minimum(np.searchsorted(pairs, callee_key), len(pairs) - 1)
    callee_pods = np.where(pairs[found] == callee_key, pods_in_pair[found], 0)
    colocated = np.bincount(edge, weights=pods_in_pair[caller_pair] * callee_pods, minlength=n_edges)
    pods = np.bincount(pod_workload, minlength=n_workloads).astype(float)
    combinations = pods[source] * pods[target]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(combinations > 0, np.clip(1.0 - colocated / combinations, 0.0, 1.0), 0.0)


def network_effect(
    request_rate_per_second: np.ndarray,
    pod_workload: np.ndarray,
    pod_node: np.ndarray,
    source: np.ndarray,
    target: np.ndarray,
    calls_per_request: np.ndarray,
    bytes_per_call: np.ndarray | float,
    config: NetworkModelConfig = NetworkModelConfig(),
) -> NetworkEffect:
    """Traffic and cross-node cost of every dependency edge.

    ``request_rate_per_second`` is (W,) λ of each workload (NaN counts as no traffic);
    ``pod_workload`` and ``pod_node`` (P,) place the running pods; ``source``, ``target``,
    ``calls_per_request`` and ``bytes_per_call`` describe the E edges (``bytes_per_call`` may be
    a scalar).
    """
    n_workloads = len(request_rate_per_second)
    source = np.asarray(source, dtype=np.int64)
    rate = np.nan_to_num(np.asarray(request_rate_per_second, dtype=float), nan=0.0)
    per_request = np.asarray(calls_per_request, dtype=float)
    crossing = cross_node_fraction(pod_workload, pod_node, source, target)
    calls = rate[source] * per_request
    crossing_calls = calls * crossing
    latency = np.bincount(
        source, weights=per_request * crossing * config.cross_node_call_latency_seconds, minlength=n_workloads
    )
    edge_watts = crossing_calls * np.asarray(bytes_per_call, dtype=float) * config.network_energy_joules_per_byte
    watts = np.bincount(source, weights=edge_watts, minlength=n_workloads)
    return NetworkEffect(
        calls_per_second=calls,
        cross_node_calls_per_second=crossing_calls,
        added_latency_seconds=latency,
        watts=watts,
    )
