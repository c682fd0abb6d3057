"""record: decisions into Event text, status.lastDecisions entries, conditions and the status."""

from __future__ import annotations

import math

import pytest

from thrifty.actions import ContainerResources
from thrifty.core import ContainerDecision, PlacementDecision, WorkloadDecision
from thrifty.observe import parse_time
from thrifty.policy.base import PolicyInfo
from thrifty.record import (
    APPLIED,
    FAILED,
    HORIZONTAL,
    MAX_EVENT_MESSAGE,
    PLACEMENT,
    RECOMMENDED,
    REJECTED,
    VERTICAL,
    Condition,
    ContainerState,
    DecisionRecord,
    churn_times,
    decision_event,
    fallback_event,
    finished_pod_event,
    format_time,
    horizontal_record,
    merge_conditions,
    merge_last_decisions,
    metrics_condition,
    metrics_unavailable_event,
    placement_record,
    placements_event,
    policy_condition,
    policy_load_event,
    ready_condition,
    resources_action,
    scale_in_blocked_event,
    scale_in_condition,
    sizing_held_event,
    slo_attainment,
    slo_condition,
    status_needs_write,
    vertical_record,
    workload_status,
)

MI = 2**20
T = parse_time("2027-01-15T08:00:00Z")
SMALL = ContainerResources(250.0, 1000.0, 128 * MI, math.inf)
LARGE = ContainerResources(400.0, 1600.0, 256 * MI, math.inf)


def scaled(frm: int = 3, to: int = 4) -> WorkloadDecision:
    return WorkloadDecision(workload="ns/web", replicas_from=frm, replicas_to=to, remove_pods=(), containers=(),
                            horizontal_reason=f"scaled {frm}\u2192{to}: p95 latency 212 ms over SLO 200 ms")


def test_format_time() -> None:
    assert format_time(T) == "2027-01-15T08:00:00Z"
    assert format_time(T + 0.7) == "2027-01-15T08:00:00Z"


@pytest.mark.parametrize(("current", "target", "text"), [
    (SMALL, LARGE, "cpu 250m -> 400m, memory 128Mi -> 256Mi"),
    (SMALL, ContainerResources(500.0, 2000.0, 128 * MI, math.inf), "cpu 250m -> 500m"),
    (SMALL, ContainerResources(250.0, 1000.0, 64 * MI, math.inf), "memory 128Mi -> 64Mi"),
    (SMALL, SMALL, "keep"),
])
def test_resources_action(current: ContainerResources, target: ContainerResources, text: str) -> None:
    assert resources_action(current, target) == text


def test_records_carry_the_core_s_explanation() -> None:
    placed = placement_record(PlacementDecision("ns/web-0", "node-17", "placed on node-17: 2 dependent pods there"),
                              outcome=APPLIED, time_seconds=T)
    assert placed == DecisionRecord(T, PLACEMENT, "web-0", "bind to node-17", "placed on node-17: 2 dependent pods "
                                                                               "there", APPLIED)
    stuck = placement_record(PlacementDecision("ns/web-1", None, "no node has room for 4000m CPU"),
                             outcome=APPLIED, time_seconds=T)
    assert (stuck.outcome, stuck.action) == (REJECTED, "leave Pending")
    failed = horizontal_record(scaled(), outcome=FAILED, time_seconds=T, error="HTTP 403: forbidden")
    assert failed.action == "replicas 3 -> 4" and failed.reason.endswith("; HTTP 403: forbidden")
    resized = vertical_record(ContainerDecision("app", SMALL, LARGE, "resized app: CPU 250m\u2192400m"),
                              outcome=RECOMMENDED, time_seconds=T)
    assert (resized.kind, resized.target, resized.action) == (VERTICAL, "app", "cpu 250m -> 400m, memory 128Mi -> "
                                                                                "256Mi")
    assert resized.as_status() == {"time": "2027-01-15T08:00:00Z", "kind": "Vertical", "target": "app",
                                   "action": "cpu 250m -> 400m, memory 128Mi -> 256Mi",
                                   "reason": "resized app: CPU 250m\u2192400m", "outcome": "Recommended"}


@pytest.mark.parametrize(("kind", "outcome", "on_pod", "type_", "reason", "prefix"), [
    (PLACEMENT, APPLIED, False, "Normal", "Placed", "web-0: "),
    (PLACEMENT, APPLIED, True, "Normal", "Scheduled", ""),
    (PLACEMENT, RECOMMENDED, False, "Normal", "PlacementRecommended",
     "recommended (mode Recommend, not applied): web-0: "),
    (PLACEMENT, REJECTED, True, "Warning", "FailedScheduling", ""),
    (HORIZONTAL, APPLIED, False, "Normal", "Scaled", ""),
    (HORIZONTAL, RECOMMENDED, False, "Normal", "ScaleRecommended", "recommended (mode Recommend, not applied): "),
    (HORIZONTAL, FAILED, False, "Warning", "FailedScale", "failed: "),
    (HORIZONTAL, REJECTED, False, "Warning", "ScaleInBlocked", ""),  # a PodDisruptionBudget refused
    (VERTICAL, APPLIED, False, "Normal", "Resized", ""),
    (VERTICAL, APPLIED, True, "Normal", "Resized", ""),
    (VERTICAL, RECOMMENDED, False, "Normal", "ResizeRecommended", "recommended (mode Recommend, not applied): "),
    (VERTICAL, REJECTED, False, "Warning", "ResizeRejected", ""),
    (VERTICAL, FAILED, False, "Warning", "FailedResize", "failed: "),
])
def test_decision_events(kind: str, outcome: str, on_pod: bool, type_: str, reason: str, prefix: str) -> None:
    record = DecisionRecord(T, kind, "web-0", "x", "because 212 ms > 200 ms", outcome)
    event = decision_event(record, on_pod=on_pod)
    assert (event.type, event.reason) == (type_, reason)
    assert event.message == prefix + "because 212 ms > 200 ms"


@pytest.mark.parametrize(("outcome", "count", "reason", "message"), [
    (APPLIED, 1, "Placed", "web-0: on n0 because it packs"),
    (APPLIED, 3, "Placed",
     "3 pods: web-0 bind to n0, web-1 bind to n1, web-2 bind to n2; web-0: on n0 because it packs"),
    (RECOMMENDED, 2, "PlacementRecommended", "recommended (mode Recommend, not applied): 2 pods: web-0 bind to n0, "
     "web-1 bind to n1; web-0: on n0 because it packs"),
])
def test_placements_of_one_batch_are_one_event(outcome: str, count: int, reason: str, message: str) -> None:
    records = [DecisionRecord(T, PLACEMENT, f"web-{i}", f"bind to n{i}", f"on n{i} because it packs", outcome)
               for i in range(count)]
    event = placements_event(records)
    assert (event.type, event.reason, event.message) == ("Normal", reason, message)
    many = [DecisionRecord(T, PLACEMENT, f"web-{i}", "bind to n0", "r", APPLIED) for i in range(500)]
    assert len(placements_event(many).message) == MAX_EVENT_MESSAGE


_STORED = {"replicas": 3, "energyWatts": 41.2, "energyJoulesTotal": 900.0, "reward": -0.4,
           "conditions": [{"type": "Ready", "status": "True"}], "lastDecisions": [{"action": "keep"}]}


@pytest.mark.parametrize(("change", "since", "written"), [
    ({}, 10.0, False),                                   # the same status: no write
    ({"energyWatts": 44.0, "energyJoulesTotal": 1340.0, "reward": -0.5}, 10.0, False),  # figures only
    ({"energyWatts": 44.0}, 60.0, True),                 # figures older than the refresh
    ({}, None, True),                                    # never written by this process
    ({"replicas": 4}, 10.0, True),
    ({"conditions": [{"type": "Ready", "status": "False"}]}, 10.0, True),
    ({"lastDecisions": [{"action": "replicas 3 -> 4"}, {"action": "keep"}]}, 10.0, True),
    ({"sloAttainment": None}, 10.0, False),              # a figure removed: still a figure
    ({"latencyP95Milliseconds": None, "selector": None}, 10.0, False),  # None equals absent
    ({"selector": "thrifty.dev/workload=web"}, 10.0, True),  # a field the stored status lacks
])
def test_status_is_written_when_it_changes(change: dict, since: float | None, written: bool) -> None:
    status = {**_STORED, **change}
    assert status_needs_write(_STORED, status, seconds_since_write=since, refresh_seconds=60.0) is written


def test_event_messages_are_bounded() -> None:
    record = DecisionRecord(T, HORIZONTAL, "web", "x", "y" * 5000, APPLIED)
    message = decision_event(record).message
    assert len(message) == MAX_EVENT_MESSAGE and message.endswith("\u2026")
    assert len(metrics_unavailable_event(["z" * 3000]).message) == MAX_EVENT_MESSAGE


@pytest.mark.parametrize(("event", "reason", "words"), [
    (fallback_event("policy rl returned NaN"), "PolicyFallback", ["policy rl returned NaN", "heuristic"]),
    (policy_load_event("policy 'x': no such directory"), "PolicyLoadFailed", ["no such directory", "heuristic"]),
    (metrics_unavailable_event(["usage unknown: HTTP 503", "latency unknown: timeout"]), "MetricsUnavailable",
     ["HTTP 503; latency unknown: timeout", "held"]),
    (sizing_held_event("fallback policy heuristic proposed invalid sizes"), "SizingHeld",
     ["proposed invalid sizes", "held"]),
])
def test_warning_events(event, reason: str, words: list[str]) -> None:
    assert event.type == "Warning" and event.reason == reason
    assert all(word in event.message for word in words), event.message


def test_merge_conditions_moves_the_transition_time_only_on_change() -> None:
    previous = [
        {"type": "Ready", "status": "True", "reason": "PodsReady", "message": "old", "observedGeneration": 1,
         "lastTransitionTime": "2027-01-01T00:00:00Z"},
        {"type": "SLOMet", "status": "True", "reason": "WithinTarget", "message": "",
         "lastTransitionTime": "2027-01-01T00:00:00Z"},
        {"type": "External", "status": "True", "reason": "Other", "message": "set by someone else",
         "lastTransitionTime": "2027-01-01T00:00:00Z"},
    ]
    merged = merge_conditions(previous, [Condition("Ready", "True", "PodsReady", "new"),
                                         Condition("SLOMet", "False", "OverTarget", "212 ms"),
                                         Condition("MetricsAvailable", "True", "SourcesUp", "")],
                              generation=4, time_seconds=T)
    by_type = {c["type"]: c for c in merged}
    assert by_type["Ready"]["lastTransitionTime"] == "2027-01-01T00:00:00Z" and by_type["Ready"]["message"] == "new"
    assert by_type["SLOMet"]["lastTransitionTime"] == "2027-01-15T08:00:00Z"
    assert by_type["MetricsAvailable"]["lastTransitionTime"] == "2027-01-15T08:00:00Z"
    assert by_type["External"] == previous[2]
    assert all(c["observedGeneration"] == 4 for c in merged if c["type"] != "External")


@pytest.mark.parametrize(("replicas", "ready", "status", "reason"), [
    (3, 3, "True", "PodsReady"), (3, 2, "False", "PodsNotReady"), (0, 0, "False", "OutsideBounds"),
    (6, 6, "False", "OutsideBounds"),
])
def test_ready_condition(replicas: int, ready: int, status: str, reason: str) -> None:
    condition = ready_condition(replicas=replicas, ready_replicas=ready, minimum=1, maximum=5)
    assert (condition.type, condition.status, condition.reason) == ("Ready", status, reason)


@pytest.mark.parametrize(("latency", "status", "reason"), [
    (0.15, "True", "WithinTarget"), (0.2, "True", "WithinTarget"), (0.212, "False", "OverTarget"),
    (math.nan, "Unknown", "LatencyUnknown"),
])
def test_slo_condition(latency: float, status: str, reason: str) -> None:
    condition = slo_condition(latency, 0.2)
    assert (condition.status, condition.reason) == (status, reason)


@pytest.mark.parametrize("latency", [0.15, math.nan])
def test_slo_condition_without_an_slo(latency: float) -> None:
    condition = slo_condition(latency, math.nan)
    assert (condition.status, condition.reason) == ("Unknown", "NoSLO") and "sizingSignals" in condition.message


@pytest.mark.parametrize(("blocked", "status", "reason"), [
    (None, "False", "NotBlocked"),
    ("eviction of ns/web-2 refused: The disruption budget web needs 3 healthy pods and has 3 currently",
     "True", "PodDisruptionBudget"),
])
def test_scale_in_condition(blocked: str | None, status: str, reason: str) -> None:
    condition = scale_in_condition(blocked)
    assert (condition.type, condition.status, condition.reason) == ("ScaleInBlocked", status, reason)
    assert blocked is None or (blocked in condition.message and "retried" in condition.message)
    if blocked:
        event = scale_in_blocked_event(blocked)
        assert (event.type, event.reason) == ("Warning", "ScaleInBlocked") and blocked in event.message


def test_finished_pod_event() -> None:
    event = finished_pod_event("ns/web-1", "Failed, reason Evicted: low on memory")
    assert (event.type, event.reason) == ("Warning", "FinishedPodRemoved")
    assert event.message == "removed pod ns/web-1 (Failed, reason Evicted: low on memory); a new pod replaces it"


def test_policy_and_metrics_conditions() -> None:
    info = PolicyInfo(name="rl", version="abc123", backend="numpy")
    assert policy_condition(info, None).status == "True" and "abc123" in policy_condition(info, None).message
    failed = policy_condition(info, "weights missing")
    assert (failed.status, failed.reason) == ("False", "LoadFailed") and "weights missing" in failed.message
    assert metrics_condition([]).status == "True"
    down = metrics_condition(["usage unknown: HTTP 503"])
    assert (down.status, down.reason) == ("False", "SourceDown") and "HTTP 503" in down.message


@pytest.mark.parametrize(("met", "attainment"), [([], None), ([True], 1.0), ([True, False, True, True], 0.75),
                                                  ([False], 0.0)])
def test_slo_attainment(met: list[bool], attainment: float | None) -> None:
    assert slo_attainment(met) == attainment


def test_last_decisions_newest_first_and_bounded() -> None:
    previous = [{"time": "2027-01-15T07:00:00Z", "kind": "Horizontal", "target": "web", "action": "a",
                 "reason": "r", "outcome": "Applied"}] * 8
    new = [DecisionRecord(T + i, HORIZONTAL, "web", f"n{i}", "r", APPLIED) for i in range(3)]
    merged = merge_last_decisions(previous, new, limit=10)
    assert len(merged) == 10 and [m["action"] for m in merged[:3]] == ["n2", "n1", "n0"]
    assert len(merge_last_decisions(previous * 5, new, limit=50)) == 20  # the CRD's maxItems


def test_workload_status_leaves_unknown_figures_out() -> None:
    info = PolicyInfo(name="heuristic", version="0.1.0", backend="heuristic")
    status = workload_status(
        generation=7, replicas=3, ready_replicas=2, recommended_replicas=4,
        containers=[ContainerState("app", SMALL, LARGE)], energy_watts=123.45678, energy_joules_total=5000.06,
        reward=-1.234567, latency_p95_seconds=math.nan, slo_attainment_fraction=None, last_decisions=[],
        policy=info, policy_fallback=False, conditions=[], selector="thrifty.dev/workload=web",
        sizing_signals=("utilisation", "oomKills"))
    assert status["selector"] == "thrifty.dev/workload=web"
    assert status["sizingSignals"] == ["utilisation", "oomKills"]
    assert status["observedGeneration"] == 7 and status["replicas"] == 3 and status["readyReplicas"] == 2
    assert status["recommendedReplicas"] == 4
    assert status["containers"] == [{"name": "app", "requests": {"cpu": "250m", "memory": "128Mi"},
                                     "limits": {"cpu": "1"}, "recommendedRequests": {"cpu": "400m",
                                                                                      "memory": "256Mi"}}]
    assert (status["energyWatts"], status["energyJoulesTotal"], status["reward"]) == (123.457, 5000.1, -1.2346)
    assert status["latencyP95Milliseconds"] is None and status["sloAttainment"] is None  # merge patch: delete
    assert status["policy"] == {"name": "heuristic", "version": "0.1.0", "backend": "heuristic", "fallback": False}
    known = workload_status(
        generation=7, replicas=3, ready_replicas=3, recommended_replicas=3, containers=[], energy_watts=-0.0,
        energy_joules_total=0.0, reward=0.0, latency_p95_seconds=0.2125, slo_attainment_fraction=0.75,
        last_decisions=[], policy=info, policy_fallback=True, conditions=[], selector="thrifty.dev/workload=web",
        sizing_signals=())
    assert known["latencyP95Milliseconds"] == 212.5 and known["sloAttainment"] == 0.75
    assert known["energyWatts"] == 0.0 and known["policy"]["fallback"] is True


def test_churn_times_from_the_status() -> None:
    entry = {"kind": "Horizontal", "target": "web", "reason": "r"}
    status = {"lastDecisions": [
        {**entry, "time": "2027-01-15T08:00:05Z", "action": "replicas 4 -> 3", "outcome": "Applied"},
        {**entry, "time": "2027-01-15T08:00:04Z", "action": "replicas 3 -> 5", "outcome": "Recommended"},
        {**entry, "time": "2027-01-15T08:00:03Z", "action": "replicas 2 -> 4", "outcome": "Applied"},
        {**entry, "time": "2027-01-15T08:00:02Z", "action": "replicas 1 -> 2", "outcome": "Applied"},
        {**entry, "kind": "Vertical", "time": "2027-01-15T08:00:01Z", "action": "cpu 1 -> 2",
         "outcome": "Applied"},
        {**entry, "kind": "Vertical", "time": "2027-01-15T08:00:06Z", "action": "cpu 1 -> 2", "outcome": "Failed"},
    ]}
    assert churn_times(status) == (T + 3, T + 5, T + 1)
    assert churn_times({}) == (None, None, None)
