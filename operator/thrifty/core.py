"""The pure decision core: snapshot -> policy -> safety -> a plan with its explanations.

The operator's handlers observe the cluster into a snapshot, call :func:`plan_placements` and
:func:`plan_sizing`, and act on the result; the simulator's harness does the same. Nothing here
does I/O.

If the policy raises or returns something the safety pipeline rejects, the decision is taken by
the fallback (heuristic) policy instead, and the plan says so, so the caller can emit a Warning
Event and count the fallback.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from thrifty.actions import (
    ContainerResources,
    SizingProposal,
    container_groups,
    keep_proposal,
    usage_targets,
    valid_proposal_rows,
    with_requests,
)
from thrifty.policy.base import Policy
from thrifty.policy.heuristic import dependency_weight_per_node, pod_cpu_utilisation
from thrifty.safety import (
    ChurnLedger,
    InvalidPolicyOutput,
    ResourceBounds,
    SafetyConfig,
    bound_replicas,
    bound_resources,
    choose_node,
    resize_allowed,
    room_for_pods,
)
from thrifty.snapshot import UNBOUND, ClusterSnapshot


@dataclass(frozen=True)
class PlacementDecision:
    """Where one Pending pod goes."""

    pod: str
    """``namespace/name``."""
    node: str | None
    """Chosen node, or None when no node has room (the pod stays Pending)."""
    reason: str
    """Human explanation with the numbers behind it."""
    fallback: str | None = None
    """Why the fallback policy decided instead of the policy, if it did."""


@dataclass(frozen=True)
class ContainerDecision:
    """The size of one container of a workload (all its pods share it)."""

    name: str
    current: ContainerResources
    target: ContainerResources
    reason: str

    @property
    def changed(self) -> bool:
        return self.current != self.target


@dataclass(frozen=True)
class WorkloadDecision:
    """Horizontal and vertical sizing of one workload, from one policy step."""

    workload: str
    replicas_from: int
    replicas_to: int
    remove_pods: tuple[str, ...]
    """Pods to delete on scale-in, chosen so that nodes can empty."""
    containers: tuple[ContainerDecision, ...]
    horizontal_reason: str
    fallback: str | None = None


def bind_in_snapshot(snapshot: ClusterSnapshot, pod: int, node: int) -> ClusterSnapshot:
    """The snapshot as it will be once ``pod`` is bound to ``node``, so later placements see it."""
    pods, nodes = snapshot.pods, snapshot.nodes
    node_index = pods.node_index.copy()
    node_index[pod] = node
    cpu = nodes.cpu_requested_millicores.copy()
    memory = nodes.memory_requested_bytes.copy()
    cpu[node] += pods.cpu_request_millicores[pod]
    memory[node] += pods.memory_request_bytes[pod]
    standby = nodes.standby.copy()
    standby[node] = False
    return dataclasses.replace(
        snapshot,
        pods=dataclasses.replace(pods, node_index=node_index),
        nodes=dataclasses.replace(nodes, cpu_requested_millicores=cpu, memory_requested_bytes=memory, standby=standby),
    )


def placement_reason(snapshot: ClusterSnapshot, pod: int, node: int) -> str:
    nodes = snapshot.nodes
    dependencies = dependency_weight_per_node(snapshot, pod)[node]
    counts = snapshot.workload_pods_per_node()[:, node]
    workload = snapshot.pods.workload_index[pod]
    dependent_pods = 0
    if workload >= 0 and len(snapshot.dependencies):
        neighbours = snapshot.dependencies.adjacency(len(snapshot.workloads))[workload] > 0
        dependent_pods = int(counts[neighbours].sum())
    cpu = (nodes.cpu_requested_millicores[node] + snapshot.pods.cpu_request_millicores[pod]) / max(
        nodes.cpu_capacity_millicores[node], 1.0)
    woke = ", wakes it from standby" if nodes.standby[node] else ""
    return (f"placed on {nodes.names[node]}: {dependent_pods} dependent pods there "
            f"(weight {dependencies:.2f}), node at {cpu:.0%} CPU requested{woke}")


def choose_placement(
    snapshot: ClusterSnapshot, pod: int, policy: Policy, fallback: Policy
) -> tuple[int, np.ndarray, str | None]:
    """Policy, then safety, for one Pending pod: the node row (-1 when no node has room), the
    scores that decided, and why the fallback decided instead of the policy (None if it did not).

    The simulator's placements and the live extender's go through this one function.
    """
    try:
        scores = np.asarray(policy.score_nodes(snapshot, pod), dtype=float)
        return choose_node(snapshot, pod, scores), scores, None
    except Exception as error:  # a policy may fail in any way; the heuristic takes over
        scores = np.asarray(fallback.score_nodes(snapshot, pod), dtype=float)
        return choose_node(snapshot, pod, scores), scores, f"policy {policy.info.name} failed to place: {error}"


def plan_placements(
    snapshot: ClusterSnapshot, policy: Policy, fallback: Policy
) -> tuple[list[PlacementDecision], ClusterSnapshot]:
    """Place every Pending pod in the snapshot, oldest first.

    Returns the decisions and the snapshot with the placements applied, which sizing then uses.
    """
    decisions = []
    pending = np.flatnonzero(snapshot.pods.node_index == UNBOUND)
    for pod in pending[np.argsort(-snapshot.pods.age_seconds[pending], kind="stable")]:
        node, _, fallback_reason = choose_placement(snapshot, pod, policy, fallback)
        name = snapshot.pods.names[pod]
        if node < 0:
            cpu, memory = snapshot.pods.cpu_request_millicores[pod], snapshot.pods.memory_request_bytes[pod]
            decisions.append(PlacementDecision(
                name, None,
                f"no node has room for {cpu:.0f}m CPU and {memory / 2**20:.0f}Mi memory", fallback_reason))
            continue
        decisions.append(PlacementDecision(name, snapshot.nodes.names[node],
                                           placement_reason(snapshot, pod, node), fallback_reason))
        snapshot = bind_in_snapshot(snapshot, pod, node)
    return decisions, snapshot


LATENCY, UTILISATION, MEMORY_USAGE, OOM_KILLS = "latency", "utilisation", "memoryUsage", "oomKills"
"""The measurements sizing can rest on, as ``status.sizingSignals`` names them."""


def sizing_signals(snapshot: ClusterSnapshot, workload: int) -> tuple[str, ...]:
    """Which measurements the sizing step of ``workload`` had.

    ``latency``: a p95 latency and an SLO to hold it against (without either, replicas follow
    CPU utilisation, as the HPA does); ``utilisation``: CPU usage of its pods against their
    requests; ``memoryUsage``: a memory sample in the usage windows; ``oomKills``: the kill counts
    in its pods' statuses (read whenever it has pods).
    """
    workloads, containers = snapshot.workloads, snapshot.containers
    signals = []
    latency, slo = workloads.latency_p95_seconds[workload], workloads.slo_latency_p95_seconds[workload]
    if np.isfinite(latency) and np.isfinite(slo):
        signals.append(LATENCY)
    if np.isfinite(pod_cpu_utilisation(snapshot)[workload]):
        signals.append(UTILISATION)
    rows = containers.workload_index == workload
    if np.any(np.isfinite(containers.memory_history_bytes[rows])):
        signals.append(MEMORY_USAGE)
    if np.any(rows):
        signals.append(OOM_KILLS)
    return tuple(signals)


def with_replicas(snapshot: ClusterSnapshot, workload: int, replicas: int) -> ClusterSnapshot:
    """The snapshot with ``workload``'s replica count set to ``replicas``: the policy decides
    from the scale subresource's count (``spec.replicas.desired``), as an HPA decides from a
    Deployment's ``spec.replicas``, not from the pods that happen to exist (a failed pod about
    to be replaced, a scale-in a PodDisruptionBudget holds up)."""
    counts = snapshot.workloads.replicas.copy()
    counts[workload] = replicas
    return dataclasses.replace(snapshot, workloads=dataclasses.replace(snapshot.workloads, replicas=counts))


def pods_to_remove(snapshot: ClusterSnapshot, workload: int, count: int) -> tuple[int, ...]:
    """Pod rows of ``workload`` to delete on scale-in, best first.

    Pending pods go first (they hold nothing). Then pods on the nodes with the fewest pods, so a
    node can empty and power down, which a Deployment's scale-in cannot aim for; then the least
    loaded node; then the youngest pod.
    """
    if count <= 0:
        return ()
    pods, nodes = snapshot.pods, snapshot.nodes
    rows = np.flatnonzero(pods.workload_index == workload)
    node = pods.node_index[rows]
    bound = node >= 0
    pods_on_node = np.where(bound, snapshot.pods_per_node()[np.where(bound, node, 0)], -1)
    load = np.where(bound, nodes.cpu_requested_millicores[np.where(bound, node, 0)]
                    / np.maximum(nodes.cpu_capacity_millicores[np.where(bound, node, 0)], 1.0), -1.0)
    order = np.lexsort((pods.age_seconds[rows], load, pods_on_node))
    return tuple(int(r) for r in rows[order][:count])


def _horizontal_reason(
    snapshot: ClusterSnapshot, workload: int, current: int, target: int, limited_by: str | None
) -> str:
    workloads = snapshot.workloads
    latency = workloads.latency_p95_seconds[workload] * 1000
    slo = workloads.slo_latency_p95_seconds[workload] * 1000
    utilisation = pod_cpu_utilisation(snapshot)[workload]
    if not np.isfinite(slo):
        evidence = "no SLO"
    elif np.isfinite(latency):
        relation = "over" if latency > slo else "within"
        evidence = f"p95 latency {latency:.0f} ms {relation} SLO {slo:.0f} ms"
    else:
        evidence = "p95 latency unknown"
    if np.isfinite(utilisation):
        evidence += f", CPU at {utilisation:.0%} of requests"
    verb = "scaled" if target != current else "kept"
    arrow = f"{current}\u2192{target}" if target != current else f"{current} replicas"
    suffix = f" (limited by {limited_by})" if limited_by else ""
    return f"{verb} {arrow}: {evidence}{suffix}"


def _container_reason(name: str, current: ContainerResources, target: ContainerResources,
                      cpu_target: float, memory_target: float, limited_by: str | None) -> str:
    parts = []
    if target.cpu_request_millicores != current.cpu_request_millicores:
        parts.append(f"CPU {current.cpu_request_millicores:.0f}m\u2192{target.cpu_request_millicores:.0f}m "
                     f"(p95 usage {cpu_target:.0f}m)")
    if target.memory_request_bytes != current.memory_request_bytes:
        parts.append(f"memory {current.memory_request_bytes / 2**20:.0f}Mi\u2192"
                     f"{target.memory_request_bytes / 2**20:.0f}Mi (peak usage {memory_target / 2**20:.0f}Mi)")
    if not parts:
        return f"kept {name}" + (f" ({limited_by})" if limited_by else "")
    suffix = f" (limited by {limited_by})" if limited_by else ""
    return f"resized {name}: " + ", ".join(parts) + suffix


def _growth_room(room: np.ndarray, row_nodes: np.ndarray, row_requests: np.ndarray, current: float) -> float:
    """How far ``current`` may grow when every row (one pod each) takes the new size.

    On a node holding k of the rows, k * size - (their current requests) must fit in its room,
    so size <= (room + their requests) / k; the tightest node decides. Inf with no bound row.
    """
    if len(row_nodes) == 0:
        return np.inf
    n = len(room)
    k = np.bincount(row_nodes, minlength=n)
    held = np.bincount(row_nodes, weights=row_requests, minlength=n)
    there = k > 0
    return float(((room[there] + held[there]) / k[there]).min() - current)


def _spend(room: np.ndarray, row_nodes: np.ndarray, growth: np.ndarray) -> None:
    """Take each node's net growth out of its room (a shrink frees nothing until applied)."""
    net = np.bincount(row_nodes, weights=growth, minlength=len(room))
    room -= np.maximum(net, 0.0)


def _sizing_proposal(
    snapshot: ClusterSnapshot, policy: Policy, fallback: Policy
) -> tuple[SizingProposal, list[str | None]]:
    """The policy's proposal, with the fallback's for every workload the policy got wrong."""
    n = len(snapshot.workloads)
    reasons: list[str | None] = [None] * n
    try:
        proposal = policy.size(snapshot)
        valid = valid_proposal_rows(snapshot, proposal)
        problem = "proposed NaN, infinite, negative or malformed sizes"
    except Exception as error:  # a policy may fail in any way; the heuristic takes over
        proposal, valid, problem = None, np.zeros(n, dtype=bool), f"failed: {error}"
    if valid.all():
        # Without a proposal only when a policy failed on a cluster with no workloads: nothing to size.
        return (proposal if proposal is not None else keep_proposal(snapshot)), reasons
    backup = fallback.size(snapshot)
    if not valid_proposal_rows(snapshot, backup).all():
        raise InvalidPolicyOutput(f"fallback policy {fallback.info.name} proposed invalid sizes")
    if proposal is None or not valid.any():
        merged = backup
    else:
        bad_containers = ~valid[np.maximum(snapshot.containers.workload_index, 0)]
        merged = SizingProposal(
            replicas=np.where(valid, proposal.replicas, backup.replicas),
            cpu_request_millicores=np.where(bad_containers, backup.cpu_request_millicores,
                                            proposal.cpu_request_millicores),
            memory_request_bytes=np.where(bad_containers, backup.memory_request_bytes,
                                          proposal.memory_request_bytes),
        )
    for w in np.flatnonzero(~valid):
        reasons[w] = f"policy {policy.info.name} {problem}"
    return merged, reasons


def plan_sizing(
    snapshot: ClusterSnapshot,
    policy: Policy,
    fallback: Policy,
    ledger: ChurnLedger,
    config: SafetyConfig,
) -> tuple[list[WorkloadDecision], ChurnLedger]:
    """Horizontal and vertical sizing of every workload from one policy step."""
    proposal, fallback_reasons = _sizing_proposal(snapshot, policy, fallback)
    workloads, pods, containers, nodes = snapshot.workloads, snapshot.pods, snapshot.containers, snapshot.nodes
    now = snapshot.time_seconds
    decisions = []
    # Room left on each node for growth, spent as resizes are decided: every pod of a workload
    # grows, and all workloads of the step draw on the same room.
    cpu_room = np.maximum(nodes.cpu_free_millicores, 0.0)
    memory_room = np.maximum(nodes.memory_free_bytes, 0.0)
    for w, name in enumerate(workloads.names):
        current = int(workloads.replicas[w])
        rows = np.flatnonzero(containers.workload_index == w)
        first = rows[0] if len(rows) else None
        pod_cpu = containers.cpu_request_millicores[first] if first is not None else 0.0
        pod_memory = containers.memory_request_bytes[first] if first is not None else 0.0
        verdict = bound_replicas(
            workload=name, current=current, asked=int(proposal.replicas[w]),
            minimum=int(workloads.replicas_min[w]), maximum=int(workloads.replicas_max[w]),
            room_for_new_pods=room_for_pods(snapshot, pod_cpu, pod_memory),
            now_seconds=now, ledger=ledger, config=config,
        )
        remove = tuple(pods.names[p] for p in pods_to_remove(snapshot, w, current - verdict.target))
        container_decisions = []
        may_resize = resize_allowed(workload=name, now_seconds=now, ledger=ledger, config=config)
        for container_name, group in container_groups(snapshot, w).items():
            r = group[0]
            current_size = ContainerResources(
                float(containers.cpu_request_millicores[r]), float(containers.cpu_limit_millicores[r]),
                float(containers.memory_request_bytes[r]), float(containers.memory_limit_bytes[r]))
            cpu_target, memory_target = usage_targets(containers, group)
            if not may_resize:
                container_decisions.append(ContainerDecision(container_name, current_size, current_size,
                                                             f"kept {container_name} (resize cooldown)"))
                continue
            # All pods of a workload share one size per container: the largest ask of the group.
            asked = with_requests(current_size, float(proposal.cpu_request_millicores[group].max()),
                                  float(proposal.memory_request_bytes[group].max()))
            row_nodes = pods.node_index[containers.pod_index[group]]
            placed = row_nodes >= 0
            target, limited_by = bound_resources(
                current=current_size, asked=asked,
                bounds=ResourceBounds(float(containers.cpu_min_millicores[r]), float(containers.cpu_max_millicores[r]),
                                      float(containers.memory_min_bytes[r]), float(containers.memory_max_bytes[r])),
                node_cpu_free_millicores=_growth_room(cpu_room, row_nodes[placed],
                                                      containers.cpu_request_millicores[group][placed],
                                                      current_size.cpu_request_millicores),
                node_memory_free_bytes=_growth_room(memory_room, row_nodes[placed],
                                                    containers.memory_request_bytes[group][placed],
                                                    current_size.memory_request_bytes),
                config=config,
            )
            if target != current_size:
                _spend(cpu_room, row_nodes[placed], target.cpu_request_millicores
                       - containers.cpu_request_millicores[group][placed])
                _spend(memory_room, row_nodes[placed], target.memory_request_bytes
                       - containers.memory_request_bytes[group][placed])
            container_decisions.append(ContainerDecision(
                container_name, current_size, target,
                _container_reason(container_name, current_size, target, cpu_target, memory_target, limited_by)))
        resized = any(c.changed for c in container_decisions)
        ledger = ledger.record(workload=name, time_seconds=now, scaled_by=verdict.target - current, resized=resized)
        decisions.append(WorkloadDecision(
            workload=name, replicas_from=current, replicas_to=verdict.target, remove_pods=remove,
            containers=tuple(container_decisions),
            horizontal_reason=_horizontal_reason(snapshot, w, current, verdict.target, verdict.limited_by),
            fallback=fallback_reasons[w],
        ))
    return decisions, ledger

