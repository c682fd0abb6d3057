"""Record: decisions into the words people read (Events, ``status.lastDecisions``) and the
RLWorkload's status.

The last box of the reconcile data flow. Pure: the handlers pass what happened, this module says
it. The decision core already explains each decision with its numbers ("scaled 3→4: p95 latency
212 ms over SLO 200 ms"); here that explanation is put into the CRD's shapes.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from thrifty.actions import ContainerResources
from thrifty.core import ContainerDecision, PlacementDecision, WorkloadDecision
from thrifty.observe import format_cpu, format_memory, parse_time, resource_quantities
from thrifty.policy.base import PolicyInfo

PLACEMENT, VERTICAL, HORIZONTAL = "Placement", "Vertical", "Horizontal"
APPLIED, RECOMMENDED, REJECTED, FAILED = "Applied", "Recommended", "Rejected", "Failed"
NORMAL, WARNING = "Normal", "Warning"

MAX_EVENT_MESSAGE = 1024
"""Kubernetes truncates longer Event messages; we cut them ourselves, visibly."""
MAX_LAST_DECISIONS = 20
"""``status.lastDecisions`` holds at most this many (the CRD's maxItems)."""


def format_time(seconds: float) -> str:
    """Unix seconds as RFC 3339 in UTC, second precision (as metav1.Time)."""
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


@dataclass(frozen=True)
class DecisionRecord:
    """One entry of ``status.lastDecisions``."""

    time_seconds: float
    kind: str
    """Placement, Vertical or Horizontal."""
    target: str
    """The pod (Placement), the container (Vertical) or the workload (Horizontal)."""
    action: str
    """What was decided, e.g. ``replicas 3 -> 4``."""
    reason: str
    """Why, with the numbers: the core's explanation."""
    outcome: str
    """Applied, Recommended, Rejected or Failed."""

    def as_status(self) -> dict:
        return {"time": format_time(self.time_seconds), "kind": self.kind, "target": _truncate(self.target, 320),
                "action": _truncate(self.action, 256), "reason": _truncate(self.reason, 1024),
                "outcome": self.outcome}


def resources_action(current: ContainerResources, target: ContainerResources) -> str:
    """``cpu 250m -> 400m, memory 128Mi -> 256Mi`` (only what changes)."""
    parts = []
    if target.cpu_request_millicores != current.cpu_request_millicores:
        parts.append(f"cpu {format_cpu(current.cpu_request_millicores)} -> {format_cpu(target.cpu_request_millicores)}")
    if target.memory_request_bytes != current.memory_request_bytes:
        parts.append(f"memory {format_memory(current.memory_request_bytes)} -> "
                     f"{format_memory(target.memory_request_bytes)}")
    return ", ".join(parts) or "keep"


def placement_record(decision: PlacementDecision, *, outcome: str, time_seconds: float,
                     error: str = "") -> DecisionRecord:
    """A placement as a record; a pod that fits nowhere is Rejected (by the capacity check)."""
    pod = decision.pod.split("/", 1)[-1]
    action = f"bind to {decision.node}" if decision.node else "leave Pending"
    reason = decision.reason + (f"; {error}" if error else "")
    return DecisionRecord(time_seconds, PLACEMENT, pod, action, reason, outcome if decision.node else REJECTED)


def horizontal_record(decision: WorkloadDecision, *, outcome: str, time_seconds: float,
                      error: str = "") -> DecisionRecord:
    name = decision.workload.split("/", 1)[-1]
    action = f"replicas {decision.replicas_from} -> {decision.replicas_to}"
    return DecisionRecord(time_seconds, HORIZONTAL, name, action,
                          decision.horizontal_reason + (f"; {error}" if error else ""), outcome)


def vertical_record(container: ContainerDecision, *, outcome: str, time_seconds: float,
                    error: str = "") -> DecisionRecord:
    return DecisionRecord(time_seconds, VERTICAL, container.name, resources_action(container.current, container.target),
                          container.reason + (f"; {error}" if error else ""), outcome)


@dataclass(frozen=True)
class EventText:
    """A Kubernetes Event to post: type, reason (CamelCase) and message."""

    type: str
    reason: str
    message: str


_EVENT_REASONS = {
    (PLACEMENT, APPLIED): (NORMAL, "Placed"),
    (PLACEMENT, RECOMMENDED): (NORMAL, "PlacementRecommended"),
    (PLACEMENT, REJECTED): (WARNING, "FailedScheduling"),
    (HORIZONTAL, APPLIED): (NORMAL, "Scaled"),
    (HORIZONTAL, RECOMMENDED): (NORMAL, "ScaleRecommended"),
    (HORIZONTAL, FAILED): (WARNING, "FailedScale"),
    # The one horizontal rejection after the safety layer: a PodDisruptionBudget refused an eviction.
    (HORIZONTAL, REJECTED): (WARNING, "ScaleInBlocked"),
    (VERTICAL, APPLIED): (NORMAL, "Resized"),
    (VERTICAL, RECOMMENDED): (NORMAL, "ResizeRecommended"),
    (VERTICAL, REJECTED): (WARNING, "ResizeRejected"),
    (VERTICAL, FAILED): (WARNING, "FailedResize"),
}


def decision_event(record: DecisionRecord, *, on_pod: bool = False) -> EventText:
    """The Event for a decision, on the RLWorkload or (``on_pod``) on the pod it touched.

    A binding shown on the pod uses kube-scheduler's own reason, ``Scheduled``, so that
    ``kubectl describe pod`` reads the same whichever scheduler placed the pod.
    """
    kind, reason = _EVENT_REASONS[(record.kind, record.outcome)]
    if on_pod and (record.kind, record.outcome) == (PLACEMENT, APPLIED):
        reason = "Scheduled"
    # On the workload, a placement names its pod; the other kinds' reasons name their subject.
    subject = f"{record.target}: " if record.kind == PLACEMENT and not on_pod else ""
    prefix = {RECOMMENDED: "recommended (mode Recommend, not applied): ", FAILED: "failed: "}.get(record.outcome, "")
    return EventText(kind, reason, _truncate(f"{prefix}{subject}{record.reason}", MAX_EVENT_MESSAGE))


def placements_event(records: Sequence[DecisionRecord]) -> EventText:
    """One Event on an RLWorkload for several of its pods placed with the same outcome: each pod
    with its node, then the first pod's reason (the others' are on their pods' Events). One
    record reads as :func:`decision_event`'s."""
    if len(records) == 1:
        return decision_event(records[0])
    first = records[0]
    kind, reason = _EVENT_REASONS[(first.kind, first.outcome)]
    prefix = {RECOMMENDED: "recommended (mode Recommend, not applied): ", FAILED: "failed: "}.get(first.outcome, "")
    moves = ", ".join(f"{r.target} {r.action}" for r in records)
    return EventText(kind, reason, _truncate(f"{prefix}{len(records)} pods: {moves}; {first.target}: {first.reason}",
                                             MAX_EVENT_MESSAGE))


def fallback_event(explanation: str) -> EventText:
    """The policy failed and the heuristic decided instead."""
    return EventText(WARNING, "PolicyFallback", _truncate(f"{explanation}; the heuristic policy decided instead",
                                                          MAX_EVENT_MESSAGE))


def policy_load_event(error: str) -> EventText:
    return EventText(WARNING, "PolicyLoadFailed",
                     _truncate(f"{error}; the heuristic policy decides until the operator is restarted with a "
                               "policy that loads", MAX_EVENT_MESSAGE))


def sizing_held_event(error: str) -> EventText:
    """Neither the policy nor the heuristic gave a valid sizing answer."""
    return EventText(WARNING, "SizingHeld", _truncate(f"{error}; the size is held as it is (replicas are kept "
                                                      "within spec.replicas)", MAX_EVENT_MESSAGE))


def finished_pod_event(pod: str, why: str) -> EventText:
    """A pod of the workload ended (failed, evicted by the kubelet, or completed) and was removed."""
    return EventText(WARNING, "FinishedPodRemoved",
                     _truncate(f"removed pod {pod} ({why}); a new pod replaces it", MAX_EVENT_MESSAGE))


def scale_in_blocked_event(blocked: str) -> EventText:
    """A scale-in waits on a PodDisruptionBudget (posted when the block starts or changes)."""
    return EventText(WARNING, "ScaleInBlocked",
                     _truncate(f"{blocked}; the scale-in is retried at the next step", MAX_EVENT_MESSAGE))


def metrics_unavailable_event(errors: Iterable[str]) -> EventText:
    return EventText(WARNING, "MetricsUnavailable",
                     _truncate("; ".join(errors) + "; sizing is held as it was until the source is back",
                               MAX_EVENT_MESSAGE))


# --- Conditions --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Condition:
    """A metav1.Condition without its times and generation (added by :func:`merge_conditions`)."""

    type: str
    status: str
    """``"True"``, ``"False"`` or ``"Unknown"``."""
    reason: str
    message: str


def merge_conditions(previous: Sequence[Mapping], current: Iterable[Condition], *, generation: int,
                     time_seconds: float) -> list[dict]:
    """The conditions to write: ``lastTransitionTime`` moves only when a status changes.

    Conditions set by others (types not in ``current``) are kept as they are.
    """
    before = {c.get("type"): c for c in previous}
    merged = {}
    for condition in current:
        old = before.get(condition.type)
        changed = old is None or old.get("status") != condition.status
        merged[condition.type] = {
            "type": condition.type, "status": condition.status, "reason": condition.reason,
            "message": _truncate(condition.message, 32768), "observedGeneration": generation,
            "lastTransitionTime": format_time(time_seconds) if changed or old is None else old["lastTransitionTime"],
        }
    return [*merged.values(), *(dict(c) for t, c in before.items() if t not in merged)]


def ready_condition(*, replicas: int, ready_replicas: int, minimum: int, maximum: int) -> Condition:
    if not minimum <= replicas <= maximum:
        return Condition("Ready", "False", "OutsideBounds",
                         f"{replicas} replicas, outside spec.replicas [{minimum}, {maximum}]")
    if ready_replicas < replicas:
        return Condition("Ready", "False", "PodsNotReady", f"{ready_replicas} of {replicas} pods Ready")
    return Condition("Ready", "True", "PodsReady", f"{replicas} pods Ready, within [{minimum}, {maximum}]")


def policy_condition(info: PolicyInfo, load_error: str | None) -> Condition:
    if load_error:
        return Condition("PolicyLoaded", "False", "LoadFailed", f"{load_error}; the heuristic policy decides")
    return Condition("PolicyLoaded", "True", "Loaded", f"policy {info.name} {info.version} ({info.backend})")


def metrics_condition(errors: Sequence[str]) -> Condition:
    if errors:
        return Condition("MetricsAvailable", "False", "SourceDown",
                         "; ".join(errors) + "; sizing is held as it was")
    return Condition("MetricsAvailable", "True", "SourcesUp", "usage and latency sources answer")


def scale_in_condition(blocked: str | None) -> Condition:
    """``ScaleInBlocked``: True while a PodDisruptionBudget refuses the evictions a scale-in
    needs (``blocked`` says which budget and pods); the scale-in is tried again next step."""
    if blocked:
        return Condition("ScaleInBlocked", "True", "PodDisruptionBudget",
                         f"{blocked}; the scale-in is retried at the next step")
    return Condition("ScaleInBlocked", "False", "NotBlocked", "no scale-in waits on a PodDisruptionBudget")


def slo_condition(latency_p95_seconds: float, slo_seconds: float) -> Condition:
    if math.isnan(slo_seconds):
        return Condition("SLOMet", "Unknown", "NoSLO",
                         "spec.slo is not set: sizing follows utilisation and usage (see status.sizingSignals)")
    if math.isnan(latency_p95_seconds):
        return Condition("SLOMet", "Unknown", "LatencyUnknown",
                         "no p95 latency measured (set spec.slo.latencyQuery and --prometheus-url)")
    met = latency_p95_seconds <= slo_seconds
    return Condition("SLOMet", "True" if met else "False", "WithinTarget" if met else "OverTarget",
                     f"p95 latency {latency_p95_seconds * 1000:.0f} ms, target {slo_seconds * 1000:.0f} ms")


# --- Status ------------------------------------------------------------------------------------

def slo_attainment(met: Sequence[bool]) -> float | None:
    """Fraction of recent steps with p95 within the SLO; None when no step had a known latency."""
    return sum(met) / len(met) if met else None


def merge_last_decisions(previous: Sequence[Mapping], new: Sequence[DecisionRecord], limit: int) -> list[dict]:
    """Newest first, at most ``limit`` (itself at most the CRD's 20)."""
    entries = [r.as_status() for r in sorted(new, key=lambda r: r.time_seconds, reverse=True)]
    return (entries + [dict(e) for e in previous])[: min(limit, MAX_LAST_DECISIONS)]


@dataclass(frozen=True)
class ContainerState:
    """A sized container as the status reports it."""

    name: str
    current: ContainerResources
    recommended: ContainerResources


def container_status(state: ContainerState) -> dict:
    requests, limits = resource_quantities(state.current)
    recommended, _ = resource_quantities(state.recommended)
    entry = {"name": state.name, "requests": requests, "recommendedRequests": recommended}
    if limits:
        entry["limits"] = limits
    return entry


def _rounded(value: float | None, digits: int) -> float | None:
    """JSON has no NaN: an unknown figure is left out of the status (None deletes it)."""
    return None if value is None or not math.isfinite(value) else round(float(value), digits)


def workload_status(
    *,
    generation: int,
    replicas: int,
    ready_replicas: int,
    recommended_replicas: int,
    containers: Sequence[ContainerState],
    energy_watts: float,
    energy_joules_total: float,
    reward: float,
    latency_p95_seconds: float,
    slo_attainment_fraction: float | None,
    last_decisions: list[dict],
    policy: PolicyInfo,
    policy_fallback: bool,
    conditions: list[dict],
    selector: str,
    sizing_signals: Sequence[str],
) -> dict:
    """The whole ``status`` of an RLWorkload, as a JSON merge patch (None removes a field)."""
    return {
        "observedGeneration": generation,
        "replicas": replicas,
        "readyReplicas": ready_replicas,
        "recommendedReplicas": recommended_replicas,
        "containers": [container_status(c) for c in containers],
        "energyWatts": _rounded(max(energy_watts, 0.0), 3),
        "energyJoulesTotal": _rounded(max(energy_joules_total, 0.0), 1),
        "reward": _rounded(reward, 4),
        "latencyP95Milliseconds": _rounded(latency_p95_seconds * 1000.0, 1),
        "sloAttainment": _rounded(slo_attainment_fraction, 4),
        "lastDecisions": last_decisions,
        "policy": {"name": policy.name, "version": policy.version, "backend": policy.backend,
                   "fallback": policy_fallback},
        "conditions": conditions,
        "selector": selector,
        "sizingSignals": list(sizing_signals),
    }


MEASURED_STATUS_FIELDS = frozenset({"energyWatts", "energyJoulesTotal", "reward", "latencyP95Milliseconds",
                                    "sloAttainment"})
"""Status figures that move a little at every step: on their own, not worth a write each time."""


def status_needs_write(previous: Mapping, status: Mapping, *, seconds_since_write: float | None,
                       refresh_seconds: float) -> bool:
    """Whether the merge patch ``status`` is worth sending over the stored ``previous``: some
    field other than the measured figures differs (None, which removes a field, equals absent),
    or those figures were last written ``refresh_seconds`` ago or more (None: never by this
    process). Each write is a watch event for every watcher of RLWorkloads, kopf's included."""
    if seconds_since_write is None or seconds_since_write >= refresh_seconds:
        return True
    return any(previous.get(key) != value for key, value in status.items() if key not in MEASURED_STATUS_FIELDS)


_REPLICAS_ACTION = re.compile(r"^replicas (\d+) -> (\d+)$")


def churn_times(status: Mapping) -> tuple[float | None, float | None, float | None]:
    """When the workload was last scaled out, scaled in and resized, from ``status.lastDecisions``.

    The churn ledger lives in memory; after a restart it is seeded from here, so a restart does
    not open the scale-in stabilisation window or the cooldowns early.
    """
    scale_out = scale_in = resize = None
    for entry in status.get("lastDecisions") or []:
        if entry.get("outcome") != APPLIED:
            continue
        time_seconds = parse_time(entry.get("time"))
        if entry.get("kind") == VERTICAL:
            resize = max(resize or time_seconds, time_seconds)
        match = _REPLICAS_ACTION.match(entry.get("action", "")) if entry.get("kind") == HORIZONTAL else None
        if match and int(match.group(2)) > int(match.group(1)):
            scale_out = max(scale_out or time_seconds, time_seconds)
        elif match and int(match.group(2)) < int(match.group(1)):
            scale_in = max(scale_in or time_seconds, time_seconds)
    return scale_out, scale_in, resize
