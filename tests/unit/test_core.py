"""The pure decision core (thrifty.core): placement, scale-in choice, sizing and the fallback;
properties that no policy output can break a replica or resource bound or overfill a node; and
what sits between the core and the operator: loading the policy, the operator's own adjustments
of a decision (thrifty.handlers' pure helpers) and the checks of ``thrifty run``'s flags."""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.unit.snapshots import GI, MI, make_snapshot
from thrifty.actions import (
    CPU_HEADROOMS,
    KEEP_MEMORY,
    REPLICA_DELTAS,
    ContainerResources,
    SizingProposal,
    decode_sizing,
    keep_proposal,
)
from thrifty.cli import main
from thrifty.core import plan_placements, plan_sizing, pods_to_remove, sizing_signals, with_replicas
from thrifty.handlers import (
    Moves,
    OperatorConfig,
    blocked_message,
    converge,
    free_pod_names,
    hold,
    initial_sizes,
    moves_reason,
    replica_base,
    start_with_initial,
)
from thrifty.observe import WorkloadSpec, parse_workload
from thrifty.policy.base import PolicyError, PolicyInfo
from thrifty.policy.heuristic import HeuristicPolicy
from thrifty.policy.loader import load_policy
from thrifty.safety import ChurnLedger, SafetyConfig
from thrifty.snapshot import ClusterSnapshot

HERE = str(Path(__file__).parent)
HEURISTIC = HeuristicPolicy()
FREE = SafetyConfig(scale_out_cooldown_seconds=0, scale_in_cooldown_seconds=0, resize_cooldown_seconds=0)


class Scripted:
    """A policy whose answers are given: node scores, and sizing as actions or as a proposal."""

    def __init__(self, scores=None, actions=None, proposal=None, error: Exception | None = None) -> None:
        self.info = PolicyInfo(name="scripted", version="1", backend="test")
        self.scores, self.actions, self.proposal, self.error = scores, actions, proposal, error

    def score_nodes(self, snapshot: ClusterSnapshot, pod: int) -> np.ndarray:
        if self.error:
            raise self.error
        return HEURISTIC.score_nodes(snapshot, pod) if self.scores is None else np.asarray(self.scores)

    def size(self, snapshot: ClusterSnapshot) -> SizingProposal:
        if self.error:
            raise self.error
        if self.proposal is not None:
            return self.proposal(snapshot) if callable(self.proposal) else self.proposal
        return decode_sizing(snapshot, np.asarray(self.actions))


def action(delta: int = 0, cpu: float | None = None) -> tuple[int, int, int]:
    return REPLICA_DELTAS.index(delta), CPU_HEADROOMS.index(cpu), KEEP_MEMORY


# --- Placement ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("case", "snapshot_args", "expected"), [
    ("packs onto the loaded node", dict(node_cpu=[4000, 4000], pods=[{"node": 0, "cpu": 1000}, {"cpu": 500}]),
     ["node-0"]),
    ("avoids waking a node in standby", dict(node_cpu=[4000, 4000], standby=[True, False], pods=[{"cpu": 500}]),
     ["node-1"]),
    ("joins its dependency", dict(node_cpu=[4000, 4000, 4000],
                                  pods=[{"node": 0, "cpu": 1000}, {"node": 2, "workload": 1, "cpu": 100},
                                        {"workload": 0, "cpu": 100}],
                                  workloads=[{}, {}], dependencies=[(0, 1, 1.0)]), ["node-2"]),
    ("skips nodes without room", dict(node_cpu=[1000, 4000], pods=[{"node": 0, "cpu": 900}, {"cpu": 500}]),
     ["node-1"]),
    ("skips unschedulable nodes", dict(node_cpu=[4000, 4000], schedulable=[False, True], pods=[{"cpu": 500}]),
     ["node-1"]),
    ("leaves a pod that fits nowhere Pending", dict(node_cpu=[1000], pods=[{"cpu": 2000}]), [None]),
    ("places the oldest first and counts it", dict(node_cpu=[1000, 1000], pods=[
        {"cpu": 600, "age": 5}, {"cpu": 600, "age": 50}]), ["node-1", "node-0"]),
])
def test_plan_placements(case: str, snapshot_args: dict, expected: list[str | None]) -> None:
    snapshot = make_snapshot(**snapshot_args)
    decisions, after = plan_placements(snapshot, HEURISTIC, HEURISTIC)
    pending = [snapshot.pods.names[i] for i in np.flatnonzero(snapshot.pods.node_index < 0)]
    by_pod = {d.pod: d.node for d in decisions}
    assert [by_pod[name] for name in pending] == expected, case
    assert all(d.fallback is None for d in decisions)
    for decision in decisions:
        assert decision.reason.startswith("placed on" if decision.node else "no node has room")
    placed = [d for d in decisions if d.node]
    assert int((after.pods.node_index >= 0).sum()) == int((snapshot.pods.node_index >= 0).sum()) + len(placed)


def test_placement_reason_has_the_numbers() -> None:
    snapshot = make_snapshot(node_cpu=[4000, 4000], pods=[{"node": 1, "workload": 1, "cpu": 1000},
                                                           {"node": 1, "workload": 1, "cpu": 1000},
                                                           {"workload": 0, "cpu": 500}],
                             workloads=[{}, {}], dependencies=[(0, 1, 0.8)])
    [decision], _ = plan_placements(snapshot, HEURISTIC, HEURISTIC)
    assert decision.reason == "placed on node-1: 2 dependent pods there (weight 1.60), node at 62% CPU requested"


@pytest.mark.parametrize("policy", [
    Scripted(scores=[math.nan, math.nan]), Scripted(scores=[1.0]), Scripted(scores="garbage"),
    Scripted(error=RuntimeError("model crashed")),
])
def test_a_broken_placement_policy_falls_back_to_the_heuristic(policy: Scripted) -> None:
    snapshot = make_snapshot(node_cpu=[4000, 4000], pods=[{"node": 0, "cpu": 1000}, {"cpu": 500}])
    [decision], _ = plan_placements(snapshot, policy, HEURISTIC)
    assert decision.node == "node-0"  # the heuristic's choice
    assert decision.fallback and decision.fallback.startswith("policy scripted failed to place")


def test_sizing_a_workload_with_no_pod_and_a_low_latency() -> None:
    snapshot = make_snapshot(node_cpu=[4000], workloads=[{"min": 2, "max": 3, "latency": 0.05, "slo": 0.2}])
    [decision], _ = plan_sizing(snapshot, HEURISTIC, HEURISTIC, ChurnLedger(), FREE)
    assert decision.replicas_to == 2


def test_sizing_a_workload_whose_container_has_no_request() -> None:
    snapshot = make_snapshot(node_cpu=[4000], pods=[{"node": 0, "workload": 0, "cpu": 0}], workloads=[{}])
    [decision], _ = plan_sizing(snapshot, HEURISTIC, HEURISTIC, ChurnLedger(), FREE)
    assert decision.replicas_to == 1


# --- Scale-in choice ---------------------------------------------------------------------------

@pytest.mark.parametrize(("pods", "count", "removed"), [
    # a Pending pod first: it holds nothing
    ([{"node": 0, "workload": 0}, {"workload": 0}], 1, [1]),
    # then the pod alone on its node: removing it lets the node power down
    ([{"node": 0, "workload": 0}, {"node": 0}, {"node": 1, "workload": 0}], 1, [2]),
    # among equal nodes, the less loaded one, then the youngest pod
    ([{"node": 0, "workload": 0, "cpu": 100, "age": 10}, {"node": 1, "workload": 0, "cpu": 500, "age": 5}], 1, [0]),
    ([{"node": 0, "workload": 0, "age": 10}, {"node": 0, "workload": 0, "age": 5}], 1, [1]),
    ([{"node": 0, "workload": 0}, {"node": 1, "workload": 0}, {"node": 1}], 2, [0, 1]),
    ([{"node": 0, "workload": 0}], 0, []),
    ([{"node": 0}], 1, []),  # not the workload's
])
def test_pods_to_remove(pods: list[dict], count: int, removed: list[int]) -> None:
    snapshot = make_snapshot(node_cpu=[4000, 4000], pods=pods, workloads=[{}])
    assert list(pods_to_remove(snapshot, 0, count)) == removed


# --- Sizing ------------------------------------------------------------------------------------

def sizing_snapshot(replicas: int = 3, **workload: float) -> ClusterSnapshot:
    return make_snapshot(node_cpu=[8000, 8000],
                         pods=[{"node": i % 2, "workload": 0, "cpu": 400, "usage": 100, "memory_usage": 100 * MI}
                               for i in range(replicas)],
                         workloads=[{"min": 1, "max": 5, "cpu_min": 50, "cpu_max": 2000, **workload}])


@pytest.mark.parametrize(("actions", "ledger", "replicas_to", "cpu", "words"), [
    ([action(+1)], ChurnLedger(), 4, 400, "scaled 3\u21924"),
    ([action(+2)], ChurnLedger(), 5, 400, "scaled 3\u21925"),
    ([action(+2, cpu=1.0)], ChurnLedger(), 5, 200, "scaled 3\u21925"),  # p95 100m x 2 = 200m
    ([action(-2)], ChurnLedger(), 1, 400, "scaled 3\u21921"),
    ([action(+1)], ChurnLedger(last_scale_out={"default/w0": 990.0}), 3, 400, "(limited by scale-out cooldown)"),
    ([action(0, cpu=0.05)], ChurnLedger(), 3, 200, "kept 3 replicas"),  # 105m asked, halving at most
])
def test_plan_sizing_applies_one_policy_step(actions, ledger, replicas_to: int, cpu: float, words: str) -> None:
    config = SafetyConfig(scale_out_cooldown_seconds=30, scale_in_cooldown_seconds=0, resize_cooldown_seconds=0)
    [decision], _ = plan_sizing(sizing_snapshot(), Scripted(actions=actions), HEURISTIC, ledger, config)
    assert decision.replicas_to == replicas_to and words in decision.horizontal_reason
    assert decision.containers[0].target.cpu_request_millicores == cpu
    assert decision.fallback is None
    assert len(decision.remove_pods) == max(3 - replicas_to, 0)


def test_plan_sizing_records_the_step_in_the_ledger() -> None:
    _, ledger = plan_sizing(sizing_snapshot(), Scripted(actions=[action(+1, cpu=1.0)]), HEURISTIC, ChurnLedger(), FREE)
    assert ledger.last_scale_out == {"default/w0": 1000.0} and ledger.last_resize == {"default/w0": 1000.0}


def test_resize_cooldown_keeps_the_size() -> None:
    ledger = ChurnLedger(last_resize={"default/w0": 999.0})
    config = SafetyConfig(resize_cooldown_seconds=60)
    [decision], _ = plan_sizing(sizing_snapshot(), Scripted(actions=[action(0, cpu=1.0)]), HEURISTIC, ledger, config)
    assert not decision.containers[0].changed and "resize cooldown" in decision.containers[0].reason


def nan_proposal(snapshot: ClusterSnapshot) -> SizingProposal:
    proposal = keep_proposal(snapshot)
    proposal.replicas[:] = np.nan
    return proposal


@pytest.mark.parametrize(("policy", "problem"), [
    (Scripted(proposal=nan_proposal), "proposed NaN"),
    (Scripted(actions=[[np.nan, 0, 0]]), "failed"),
    (Scripted(actions=[[99, 0, 0]]), "failed"),
    (Scripted(proposal="not a proposal"), "proposed NaN"),
    (Scripted(error=ZeroDivisionError("division by zero")), "failed: division by zero"),
])
def test_a_broken_sizing_policy_falls_back_to_the_heuristic(policy: Scripted, problem: str) -> None:
    snapshot = sizing_snapshot(replicas=0)  # below min: the heuristic's decision is visible
    [decision], _ = plan_sizing(snapshot, policy, HEURISTIC, ChurnLedger(), FREE)
    assert decision.fallback and decision.fallback.startswith("policy scripted") and problem in decision.fallback
    assert decision.replicas_to == 1


def test_only_the_broken_workload_falls_back() -> None:
    snapshot = make_snapshot(node_cpu=[8000], pods=[{"node": 0, "workload": 0}, {"node": 0, "workload": 1}],
                             workloads=[{"max": 5}, {"max": 5}])

    def half_broken(s: ClusterSnapshot) -> SizingProposal:
        proposal = keep_proposal(s)
        proposal.replicas[:] = [3, np.inf]
        return proposal

    first, second = plan_sizing(snapshot, Scripted(proposal=half_broken), HEURISTIC, ChurnLedger(), FREE)[0]
    assert first.fallback is None and first.replicas_to == 3
    assert second.fallback and second.replicas_to == 1


# --- The policy the operator serves (thrifty.policy.loader) --------------------------------------

@pytest.mark.parametrize(("spec", "name"), [
    ("heuristic", "heuristic"),
    ("tests.support.policies:ScriptedPolicy", "scripted"),
    ("tests.support.policies:NaNPolicy", "nan"),  # loads fine; the core falls back when it decides
])
def test_load_policy(spec: str, name: str) -> None:
    assert load_policy(spec).info.name == name


@pytest.mark.parametrize(("spec", "backend", "message"), [
    ("tests.support.policies:ExplodingPolicy", "numpy",
     "constructing it failed: RuntimeError: weights file is corrupt"),
    ("no.such.module:Policy", "numpy", "cannot import module 'no'"),
    ("tests.support.policies:Nothing", "numpy", "has no attribute 'Nothing'"),
    ("thrifty.snapshot:UNBOUND", "numpy", "is not a class or factory"),
    ("thrifty.policy.base:PolicyInfo", "numpy", "constructing it failed"),
    ("thrifty.safety:ChurnLedger", "numpy", "has no method score_nodes, size"),
    ("pyproject.toml", "numpy", "is a file"),
    ("policies/none-such", "numpy", "no such directory"),
    (HERE, "numpy", "policy.json: missing"),  # a directory, but no policy artefact
    (HERE, "tensorflow", "must be one of numpy, rllib"),
    (":Policy", "numpy", "expected module:Class"),
])
def test_load_policy_says_what_is_wrong(spec: str, backend: str, message: str) -> None:
    with pytest.raises(PolicyError, match=re.escape(message)):
        load_policy(spec, backend)


# --- How the operator adjusts a decision (thrifty.handlers' pure helpers) -------------------------

def spec(**fields: object) -> WorkloadSpec:
    body = {"template": {"spec": {"containers": [{"name": "app", "resources": {
        "requests": {"cpu": "50m", "memory": "1Gi"}, "limits": {"cpu": "60m"}}}, {"name": "side"}]}},
        "replicas": {"min": 1, "max": 5}, "slo": {"latencyP95Milliseconds": 100}, **fields}
    return parse_workload({"metadata": {"name": "web", "namespace": "default", "uid": "u"}, "spec": body})


@pytest.mark.parametrize(("replicas", "initial", "replicas_to", "reason"), [
    (0, 3, 3, "scaled 0→3: initial replicas (spec.replicas.initial)"),
    (2, 3, 3, "scaled 2→3: initial replicas"),
    (3, 3, None, None),  # already there: the policy's decision stands
    (4, 3, None, None),
])
def test_start_with_initial(replicas: int, initial: int, replicas_to: int | None, reason: str | None) -> None:
    snapshot = sizing_snapshot(replicas=replicas)
    [decision], _ = plan_sizing(snapshot, Scripted(actions=[action(0)]), HEURISTIC, ChurnLedger(), FREE)
    started = start_with_initial(decision, spec(replicas={"min": 0, "max": 5, "initial": initial}))
    if replicas_to is None:
        assert started == decision
    else:
        assert started.replicas_to == replicas_to and started.horizontal_reason.startswith(reason)
        assert started.remove_pods == ()


@pytest.mark.parametrize(("replicas", "bounds", "replicas_to", "removed"), [
    (3, {}, 3, 0),
    (7, {}, 5, 2),  # above max: brought back, measurement or not
    (0, {"min": 2}, 2, 0),
])
def test_hold_keeps_the_size_but_restores_the_bounds(replicas: int, bounds: dict, replicas_to: int,
                                                     removed: int) -> None:
    snapshot = sizing_snapshot(replicas=replicas, **bounds)
    held = hold(snapshot, 0, "metrics source down")
    assert held.replicas_from == replicas and held.replicas_to == replicas_to and len(held.remove_pods) == removed
    assert [c.name for c in held.containers] == (["app"] if replicas else [])
    assert all(not c.changed and "metrics source down" in c.reason for c in held.containers)
    assert held.containers == () or held.containers[0].current.cpu_request_millicores == 400
    assert held.horizontal_reason.endswith("(metrics source down)") and held.fallback is None


@pytest.mark.parametrize(("replicas", "live", "first_step", "base"), [
    ({"max": 5, "initial": 3}, 0, True, 3),  # a new workload starts at initial
    ({"max": 5, "initial": 3}, 2, False, 2),  # no count set and not new: the pods that exist
    ({"max": 5, "initial": 3, "desired": 4}, 2, False, 4),  # the scale subresource's count
    ({"max": 5, "initial": 3, "desired": 0}, 2, True, 0),  # kubectl scale --replicas 0
])
def test_replica_base(replicas: dict, live: int, first_step: bool, base: int) -> None:
    assert replica_base(spec(replicas=replicas), live, first_step) == base


@pytest.mark.parametrize(("live", "target", "create", "removed"), [
    (3, 3, 0, 0),
    (2, 3, 1, 0),  # a failed pod replaced
    (3, 1, 0, 2),
    (0, 2, 2, 0),
])
def test_converge(live: int, target: int, create: int, removed: int) -> None:
    moves = converge(sizing_snapshot(replicas=live), 0, live=live, target=target)
    assert moves.create == create and len(moves.remove_pods) == removed
    assert set(moves.remove_pods) <= {f"default/pod-{i}" for i in range(live)}


def test_the_policy_decides_from_the_scale_count() -> None:
    """As an HPA does from spec.replicas: 2 pods exist, the count is 4, the policy asks +1."""
    snapshot = with_replicas(sizing_snapshot(replicas=2), 0, 4)
    [decision], _ = plan_sizing(snapshot, Scripted(actions=[action(+1)]), HEURISTIC, ChurnLedger(), FREE)
    assert (decision.replicas_from, decision.replicas_to) == (4, 5)


@pytest.mark.parametrize(("base", "live", "replicas_to", "words"), [
    (3, 3, 2, "policy's words"),  # nothing to tell apart
    (4, 2, 4, "scaled 2→4: spec.replicas.desired is 4 (2 running pods; policy's words)"),
    (4, 2, 5, "policy's words (2 running pods)"),
])
def test_moves_reason(base: int, live: int, replicas_to: int, words: str) -> None:
    [decision], _ = plan_sizing(sizing_snapshot(replicas=base), Scripted(actions=[action(0)]), HEURISTIC,
                                ChurnLedger(), FREE)
    decision = dataclasses.replace(decision, replicas_to=replicas_to, horizontal_reason="policy's words")
    assert moves_reason(decision, base=base, live=live) == words


def test_blocked_message_names_the_pods_and_the_budget() -> None:
    budget = "The disruption budget web needs 3 healthy pods and has 3 currently"
    assert blocked_message([("ns/web-2", budget), ("ns/web-1", budget)]) == (
        f"eviction of ns/web-2, ns/web-1 refused: {budget}")
    assert Moves(create=0, remove_pods=()).create == 0


@pytest.mark.parametrize(("workload", "pod", "signals"), [
    ({"slo": 0.2, "latency": 0.1}, {"usage": 100, "memory_usage": 100 * MI},
     ("latency", "utilisation", "memoryUsage", "oomKills")),
    ({"slo": math.nan, "latency": 0.1}, {"usage": 100, "memory_usage": 100 * MI},
     ("utilisation", "memoryUsage", "oomKills")),  # no SLO: latency is no signal
    ({"slo": 0.2}, {"usage": 100}, ("utilisation", "oomKills")),  # no latency measured, no memory sample
    ({"slo": math.nan}, None, ()),  # no pod yet: nothing measured
])
def test_sizing_signals(workload: dict, pod: dict | None, signals: tuple[str, ...]) -> None:
    pods = [{"node": 0, "workload": 0, "cpu": 400, **pod}] if pod is not None else []
    snapshot = make_snapshot(node_cpu=[8000], pods=pods, workloads=[{"min": 1, "max": 5, **workload}])
    assert sizing_signals(snapshot, 0) == signals


def test_no_slo_sizes_on_utilisation() -> None:
    """Without an SLO the heuristic scales on CPU utilisation of requests (the HPA rule), and the
    reason says there is no SLO."""
    snapshot = make_snapshot(node_cpu=[8000, 8000],
                             pods=[{"node": i % 2, "workload": 0, "cpu": 100, "usage": 200} for i in range(2)],
                             workloads=[{"min": 1, "max": 5, "slo": math.nan, "latency": 0.5}])
    [decision], _ = plan_sizing(snapshot, HEURISTIC, HEURISTIC, ChurnLedger(), FREE)
    assert decision.replicas_to > 2 and "no SLO" in decision.horizontal_reason, decision.horizontal_reason


@pytest.mark.parametrize(("existing", "count", "names"), [
    ([], 2, ["web-0", "web-1"]),
    (["web-0", "web-2"], 2, ["web-1", "web-3"]),
    (["web-0", ("other", "web-1")], 1, ["web-1"]),  # a pod of that name in another namespace is no clash
    (["web-0"], 0, []),
])
def test_free_pod_names(existing: list, count: int, names: list[str]) -> None:
    pods = [{"metadata": {"name": e[1], "namespace": e[0]} if isinstance(e, tuple) else
             {"name": e, "namespace": "default"}} for e in existing]
    assert free_pod_names(spec(), pods, count) == names


def test_initial_sizes_move_the_template_into_the_bounds() -> None:
    sizes = initial_sizes(spec(containers=[{"name": "app", "cpu": {"min": "100m", "max": "1"},
                                            "memory": {"min": "64Mi", "max": "512Mi"}}]))
    assert list(sizes) == ["app"]  # containers without bounds keep the template's resources
    assert sizes["app"] == ContainerResources(100.0, 100.0, 512 * MI, math.inf)


@pytest.mark.parametrize(("flags", "message"), [
    (["--interval-seconds", "0"], "--interval-seconds: must be a number > 0"),
    (["--interval-seconds", "nan"], "--interval-seconds: must be a number > 0"),
    (["--metrics-port", "70000"], "--metrics-port: must be a TCP port"),
    (["--prometheus-url", "prometheus:9090"], "--prometheus-url: must be an http:// or https:// URL"),
    (["--liveness", "http://0.0.0.0/healthz"], "--liveness: must be an http://HOST:PORT/PATH URL"),
    (["--max-replica-step", "0"], "--max-replica-step: must be >= 1"),
    (["--scale-in-cooldown-seconds", "-1"], "--scale-in-cooldown-seconds: must be a number >= 0"),
    (["--last-decisions", "21"], "--last-decisions: must be from 1 to 20"),
    (["--history-window-samples", "0"], "--history-window-samples: must be >= 1"),
    (["--renew-deadline-seconds", "10"], "--renew-deadline-seconds: must be shorter than --lease-duration-seconds"),
    (["--retry-period-seconds", "6"], "--retry-period-seconds: must be shorter than --renew-deadline-seconds / 1.2"),
    (["--lease-duration-seconds", "2.5"], "--lease-duration-seconds: must be an integer"),
    (["--lease-duration-seconds", "0"], "--lease-duration-seconds: must be a whole number >= 1"),
    (["--policy-backend", "torch"], "--policy-backend: invalid choice"),
])
def test_run_flags_are_checked_before_anything_runs(flags: list[str], message: str,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["run", *flags])
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(("field", "value"), [
    ("reconcile_interval_seconds", 0.0), ("metrics_port", 0), ("history_window_samples", 0),
    ("last_decisions_limit", 21), ("slo_window_steps", 0), ("prometheus_url", "ftp://x"),
    ("prometheus_timeout_seconds", math.inf),
])
def test_operator_config_names_the_bad_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=f"OperatorConfig.{field}"):
        OperatorConfig(**{field: value})


# --- Properties: no policy output escapes the safety pipeline -----------------------------------

@dataclass
class Wild:
    """A policy returning whatever hypothesis draws, or raising."""

    scores: object
    sizing: object
    info: PolicyInfo = PolicyInfo(name="wild", version="0", backend="test")

    def score_nodes(self, snapshot: ClusterSnapshot, pod: int) -> object:
        if isinstance(self.scores, Exception):
            raise self.scores
        return self.scores(snapshot) if callable(self.scores) else self.scores

    def size(self, snapshot: ClusterSnapshot) -> object:
        if isinstance(self.sizing, Exception):
            raise self.sizing
        return self.sizing(snapshot) if callable(self.sizing) else self.sizing


CPU_SIZES = [10, 50, 100, 250, 500, 1000, 2000]
MEMORY_SIZES = [16 * MI, 64 * MI, 256 * MI, GI]


@st.composite
def snapshots(draw: st.DrawFn) -> ClusterSnapshot:
    """Small clusters whose bound pods fit their nodes; workloads with random bounds."""
    n_nodes = draw(st.integers(1, 4))
    node_cpu = draw(st.lists(st.sampled_from([1000, 2000, 4000, 8000]), min_size=n_nodes, max_size=n_nodes))
    node_memory = draw(st.lists(st.sampled_from([GI, 4 * GI, 16 * GI]), min_size=n_nodes, max_size=n_nodes))
    workloads = []
    for _ in range(draw(st.integers(0, 3))):
        low = draw(st.integers(0, 3))
        cpu = sorted(draw(st.lists(st.sampled_from(CPU_SIZES), min_size=2, max_size=2)))
        memory = sorted(draw(st.lists(st.sampled_from(MEMORY_SIZES), min_size=2, max_size=2)))
        workload = {"min": low, "max": low + draw(st.integers(0, 4)),
                    "size": (draw(st.sampled_from(CPU_SIZES)), draw(st.sampled_from(MEMORY_SIZES)))}
        if draw(st.booleans()):
            workload.update(cpu_min=cpu[0], cpu_max=cpu[1])
        if draw(st.booleans()):
            workload.update(memory_min=memory[0], memory_max=memory[1])
        workloads.append(workload)
    free_cpu, free_memory = list(node_cpu), list(node_memory)
    pods = []
    for _ in range(draw(st.integers(0, 8))):
        w = draw(st.integers(-1, len(workloads) - 1))
        cpu, memory = workloads[w]["size"] if w >= 0 else (draw(st.sampled_from(CPU_SIZES)),
                                                          draw(st.sampled_from(MEMORY_SIZES)))
        fits = [n for n in range(n_nodes) if free_cpu[n] >= cpu and free_memory[n] >= memory]
        node = draw(st.sampled_from([-1, *fits]))
        if node >= 0:
            free_cpu[node] -= cpu
            free_memory[node] -= memory
        usage = draw(st.one_of(st.just(math.nan), st.floats(0, 4000)))
        pods.append({"workload": w, "node": node, "cpu": cpu, "memory": memory, "usage": usage,
                     "memory_usage": draw(st.one_of(st.just(math.nan), st.floats(0, 2 * GI))),
                     "age": draw(st.floats(0, 1000)), "cpu_limit": cpu * draw(st.sampled_from([1, 2, math.inf]))})
    return make_snapshot(node_cpu=node_cpu, node_memory=node_memory, pods=pods,
                         workloads=[{k: v for k, v in w.items() if k != "size"} for w in workloads],
                         dependencies=[(0, len(workloads) - 1, 0.5)] if len(workloads) > 1 else [],
                         standby=draw(st.lists(st.booleans(), min_size=n_nodes, max_size=n_nodes)),
                         schedulable=draw(st.lists(st.booleans(), min_size=n_nodes, max_size=n_nodes)))


wild_floats = st.floats(allow_nan=True, allow_infinity=True, width=64)


def wild_arrays(shape_of):
    """Arrays of any float (NaN, inf, huge, negative), usually of the right shape, sometimes not."""
    def build(snapshot: ClusterSnapshot, values: list[float], wrong: bool) -> np.ndarray:
        n = shape_of(snapshot)
        size = n + 1 if wrong else n
        return np.resize(np.asarray(values or [0.0]), size)
    return st.builds(lambda values, wrong: (lambda s: build(s, values, wrong)),
                     st.lists(wild_floats, min_size=1, max_size=12), st.booleans())


def wild_proposals():
    return st.one_of(
        st.builds(lambda r, c, m: (lambda s: SizingProposal(r(s), c(s), m(s))),
                  wild_arrays(lambda s: len(s.workloads)), wild_arrays(lambda s: len(s.containers)),
                  wild_arrays(lambda s: len(s.containers))),
        st.builds(lambda a: (lambda s: decode_sizing(s, np.resize(np.asarray(a), (len(s.workloads), 3)))),
                  st.lists(st.one_of(st.integers(-3, 8), wild_floats), min_size=1, max_size=9)),
        st.sampled_from([None, "nonsense", 42, np.zeros(3), RuntimeError("policy exploded")]),
    )


def wild_scores():
    return st.one_of(wild_arrays(lambda s: len(s.nodes)),
                     st.sampled_from([None, "nonsense", np.zeros((2, 2)), ValueError("bad weights")]))


def _bounded(value: float, current: float, low: float, high: float) -> bool:
    """Inside [low, high], unchanged, or strictly on the way there from outside."""
    low, high = (low if np.isfinite(low) else -math.inf), (high if np.isfinite(high) else math.inf)
    low = min(low, high)
    return (value == current or low <= value <= high or (current < low and current < value < low)
            or (current > high and high < value < current))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(snapshot=snapshots(), policy=st.builds(Wild, wild_scores(), wild_proposals()))
def test_no_policy_output_overfills_a_node_when_placing(snapshot: ClusterSnapshot, policy: Wild) -> None:
    decisions, after = plan_placements(snapshot, policy, HEURISTIC)
    pending = set(np.flatnonzero(snapshot.pods.node_index < 0))
    assert sorted(d.pod for d in decisions) == sorted(snapshot.pods.names[i] for i in pending)
    nodes = snapshot.nodes
    added_cpu, added_memory = np.zeros(len(nodes)), np.zeros(len(nodes))
    row = {name: i for i, name in enumerate(snapshot.pods.names)}
    for decision in decisions:
        if decision.node is None:
            continue
        n = nodes.names.index(decision.node)
        assert nodes.schedulable[n], f"{decision.pod} placed on unschedulable {decision.node}"
        added_cpu[n] += snapshot.pods.cpu_request_millicores[row[decision.pod]]
        added_memory[n] += snapshot.pods.memory_request_bytes[row[decision.pod]]
    touched = added_cpu > 0
    assert np.all(nodes.cpu_requested_millicores[touched] + added_cpu[touched]
                  <= nodes.cpu_capacity_millicores[touched])
    assert np.all(nodes.memory_requested_bytes + added_memory <= np.maximum(nodes.memory_capacity_bytes,
                                                                            nodes.memory_requested_bytes))
    assert np.array_equal(after.nodes.cpu_requested_millicores, nodes.cpu_requested_millicores + added_cpu)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(snapshot=snapshots(), policy=st.builds(Wild, wild_scores(), wild_proposals()),
       ledger_times=st.tuples(st.one_of(st.none(), st.floats(0, 1000)), st.one_of(st.none(), st.floats(0, 1000))))
def test_no_policy_output_breaks_a_replica_bound(snapshot: ClusterSnapshot, policy: Wild, ledger_times) -> None:
    out, into = ledger_times
    ledger = ChurnLedger({w: out for w in snapshot.workloads.names if out is not None},
                         {w: into for w in snapshot.workloads.names if into is not None})
    config = SafetyConfig()
    decisions, _ = plan_sizing(snapshot, policy, HEURISTIC, ledger, config)
    workloads = snapshot.workloads
    assert [d.workload for d in decisions] == list(workloads.names)
    for w, decision in enumerate(decisions):
        current, low, high = int(workloads.replicas[w]), int(workloads.replicas_min[w]), int(workloads.replicas_max[w])
        target = decision.replicas_to
        assert decision.replicas_from == current
        if current < low:
            assert current <= target <= low
        elif current > high:
            assert target == high
        else:
            assert low <= target <= high and abs(target - current) <= config.max_replica_step
        assert len(decision.remove_pods) == max(current - target, 0)
        rows = {snapshot.pods.names[i] for i in np.flatnonzero(snapshot.pods.workload_index == w)}
        assert set(decision.remove_pods) <= rows


def _sized(snapshot: ClusterSnapshot, policy: Wild):
    """Each decided container size with the rows (one per pod) it applies to."""
    decisions, _ = plan_sizing(snapshot, policy, HEURISTIC, ChurnLedger(), FREE)
    containers = snapshot.containers
    for w, decision in enumerate(decisions):
        for change in decision.containers:
            rows = np.flatnonzero((containers.workload_index == w) & (np.asarray(containers.names) == change.name))
            yield change, rows


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(snapshot=snapshots(), policy=st.builds(Wild, wild_scores(), wild_proposals()))
def test_no_policy_output_breaks_a_resource_bound(snapshot: ClusterSnapshot, policy: Wild) -> None:
    """Requests stay finite, positive and within the spec's bounds (or move towards them from
    outside), and limits stay above requests."""
    containers = snapshot.containers
    for change, rows in _sized(snapshot, policy):
        r, target, current = rows[0], change.target, change.current
        assert math.isfinite(target.cpu_request_millicores) and target.cpu_request_millicores >= 0
        assert math.isfinite(target.memory_request_bytes) and target.memory_request_bytes >= 0
        assert target.cpu_limit_millicores >= target.cpu_request_millicores
        assert target.memory_limit_bytes >= target.memory_request_bytes
        cpu_low = np.fmax(containers.cpu_min_millicores[r], FREE.min_cpu_millicores)
        memory_low = np.fmax(containers.memory_min_bytes[r], FREE.min_memory_bytes)
        assert _bounded(target.cpu_request_millicores, current.cpu_request_millicores, cpu_low,
                        containers.cpu_max_millicores[r])
        assert _bounded(target.memory_request_bytes, current.memory_request_bytes, memory_low,
                        containers.memory_max_bytes[r])


def _grow_all(snapshot: ClusterSnapshot) -> SizingProposal:
    proposal = keep_proposal(snapshot)
    proposal.cpu_request_millicores[:] = 200.0
    return proposal


# Three pods of one workload on a node with 50m free: each may grow by 50m, together by 150m.
CROWDED = make_snapshot(node_cpu=[1000], pods=[{"node": 0, "cpu": 650}] + [{"node": 0, "workload": 0, "cpu": 100}] * 3,
                        workloads=[{"max": 3}])
# Two workloads, one pod each, on a node with 50m free: each may grow by 50m, together by 100m.
SHARED = make_snapshot(node_cpu=[1000], pods=[{"node": 0, "cpu": 750}, {"node": 0, "workload": 0, "cpu": 100},
                                              {"node": 0, "workload": 1, "cpu": 100}], workloads=[{}, {}])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(snapshot=snapshots(), policy=st.builds(Wild, wild_scores(), wild_proposals()))
@example(snapshot=CROWDED, policy=Wild(scores=None, sizing=_grow_all))
@example(snapshot=SHARED, policy=Wild(scores=None, sizing=_grow_all))
def test_no_policy_output_overfills_a_node_when_resizing(snapshot: ClusterSnapshot, policy: Wild) -> None:
    """Every pod of a workload takes its container's decided size; no node may end up with more
    requested than it had room for."""
    containers, pods, nodes = snapshot.containers, snapshot.pods, snapshot.nodes
    grown_cpu, grown_memory = np.zeros(len(nodes)), np.zeros(len(nodes))
    for change, rows in _sized(snapshot, policy):
        for row in rows:
            node = pods.node_index[containers.pod_index[row]]
            if node >= 0:
                grown_cpu[node] += change.target.cpu_request_millicores - containers.cpu_request_millicores[row]
                grown_memory[node] += change.target.memory_request_bytes - containers.memory_request_bytes[row]
    for n in range(len(nodes)):
        if grown_cpu[n] > 0:
            assert nodes.cpu_requested_millicores[n] + grown_cpu[n] <= nodes.cpu_capacity_millicores[n], nodes.names[n]
        if grown_memory[n] > 0:
            assert nodes.memory_requested_bytes[n] + grown_memory[n] <= nodes.memory_capacity_bytes[n], nodes.names[n]
