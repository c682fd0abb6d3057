"""Thrifty's consolidation rule: the proposer, the budget stage (hand-worked tables and
properties over arbitrary proposals), the forecast, and the rule driving the simulator."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.snapshots import make_snapshot
from tests.unit.test_sim import QUIET, scenario, workload
from thrifty.energy import DEFAULT_PROFILES, PowerModel
from thrifty.harness import Harness
from thrifty.policy.consolidation import (
    BudgetState,
    ConsolidationConfig,
    Consolidator,
    CordonedNodes,
    Demand,
    DisruptionBudget,
    DrainProposal,
    Move,
    admit_drains,
    forecast_demand,
    marginal_watts_per_millicore,
    pack_by_requests,
    pod_ready,
    propose_drains,
    sleep_watts,
)
from thrifty.policy.heuristic import HeuristicPolicy
from thrifty.sim import Simulator
from thrifty.snapshot import UNBOUND, ClusterSnapshot

MEDIUM = DEFAULT_PROFILES["medium"]
NOTHING = Demand(0.0, 0.0)
"""A forecast that every cluster holds."""
NO_STATE = BudgetState()
"""Nothing draining, no recent evictions."""


def pod(workload: int, node: int, cpu: float = 1000.0, usage: float = 500.0) -> dict:
    return {"workload": workload, "node": node, "cpu": cpu, "usage": usage}


def cluster(pods: list[dict], workloads: list[dict] | None = None, nodes: int = 2) -> ClusterSnapshot:
    return make_snapshot(node_cpu=[10000.0] * nodes, pods=pods, workloads=workloads or [{}])


def drain(node: int, *moves: tuple[int, int]) -> DrainProposal:
    return DrainProposal(node, tuple(Move(p, t) for p, t in moves))


# Node 1 holds pod 1, one of workload 0's two replicas; it can go to node 0.
SPREAD = [pod(0, 0), pod(0, 1)]
# A medium node sleeping saves 110 - 12 = 98 W; for 3600 - 600 s of the hour: 294 kJ.
SAVING_JOULES = 98.0 * 3000.0
# Per move: 20 kJ + (446 - 110) W / 10000 m x (1000 m x 30 s + 500 m x (1 / 0.7 - 1) x 300 s)
#         = 20000 + 0.0336 x 30000 + 0.0336 x 64285.7 = 20000 + 1008 + 2160 = 23168 J.
COST_JOULES = 23168.0


def admit(snapshot: ClusterSnapshot, proposals: list[DrainProposal], *, config: ConsolidationConfig | None = None,
          state: BudgetState = NO_STATE, forecast: Demand = NOTHING, pdbs: dict[str, int] | None = None):
    return admit_drains(snapshot, proposals, config or ConsolidationConfig(), state, forecast, PowerModel(), pdbs)


def test_a_worthwhile_drain_is_admitted_with_its_numbers():
    plan = admit(cluster(SPREAD), [drain(1, (1, 0))])
    assert plan.drains == (drain(1, (1, 0)),)
    explanation, other = plan.explanations
    assert (other.node, other.reason) == ("node-0", "not-proposed")  # under-used too, but not proposed
    assert explanation.drained and explanation.reason == "drained" and explanation.pods_moved == 1
    assert explanation.watts_saved == pytest.approx(MEDIUM.idle_watts - MEDIUM.standby_watts) == pytest.approx(98.0)
    assert explanation.saving_joules == pytest.approx(SAVING_JOULES)
    assert explanation.cost_joules == pytest.approx(COST_JOULES, rel=1e-4)
    assert "98 W" in explanation.message and "294 kJ" in explanation.message


@pytest.mark.parametrize(("case", "snapshot", "proposals", "kwargs", "reason", "blocked_by"), [
    pytest.param("a move costs 300 kJ, more than the 294 kJ saved", cluster(SPREAD), [drain(1, (1, 0))],
                 {"config": ConsolidationConfig(disruption_joules_per_move=300_000.0)}, "not-worth", None,
                 id="not-worth"),
    pytest.param("a 2-minute horizon leaves nothing after the 10 idle minutes", cluster(SPREAD), [drain(1, (1, 0))],
                 {"config": ConsolidationConfig(horizon_seconds=120.0)}, "not-worth", None, id="short-horizon"),
    pytest.param("PDB maxUnavailable 0", cluster(SPREAD), [drain(1, (1, 0))], {"pdbs": {"default/w0": 0}},
                 "pdb", "default/w0", id="pdb"),
    pytest.param("PDB maxUnavailable 1 of 2: one may go", cluster(SPREAD), [drain(1, (1, 0))],
                 {"pdbs": {"default/w0": 1}}, "drained", None, id="pdb-allows"),
    pytest.param("the workload's only replica", cluster([pod(0, 0, usage=np.nan), pod(0, 1)]), [drain(1, (1, 0))],
                 {}, "last-replica", "default/w0", id="last-ready-replica"),
    pytest.param("one node already draining, at most one", cluster(SPREAD, nodes=3), [drain(1, (1, 0))],
                 {"state": BudgetState(draining=frozenset({"node-2"}))}, "budget-draining", "maxDrainingNodes",
                 id="draining-budget"),
    pytest.param("10 evictions 30 s ago, at most 10 a minute", cluster(SPREAD), [drain(1, (1, 0))],
                 {"state": BudgetState(eviction_times_seconds=(970.0,) * 10)}, "budget-evictions",
                 "maxEvictionsPerMinute", id="eviction-budget"),
    pytest.param("10 evictions 61 s ago no longer count", cluster(SPREAD), [drain(1, (1, 0))],
                 {"state": BudgetState(eviction_times_seconds=(939.0,) * 10)}, "drained", None,
                 id="eviction-window-slides"),
    pytest.param("a pod without a controller", cluster([pod(0, 0), {"node": 1, "cpu": 100.0}]), [drain(1, (1, 0))],
                 {}, "no-controller", "default/pod-1", id="bare-pod"),
    pytest.param("the target has 500m free, the pod asks 1000m",
                 cluster([pod(0, 0, cpu=9500.0), pod(0, 1)]), [drain(1, (1, 0))], {}, "no-room", "default/pod-1",
                 id="no-room"),
    pytest.param("the proposer found no target", cluster(SPREAD), [drain(1, (1, UNBOUND))], {}, "no-room",
                 "default/pod-1", id="unbound-target"),
    pytest.param("a pod moved onto its own node", cluster(SPREAD), [drain(1, (1, 1))], {}, "no-room",
                 "default/pod-1", id="self-target"),
    pytest.param("the next hour needs 12 cores, one node leaves 10", cluster(SPREAD), [drain(1, (1, 0))],
                 {"forecast": Demand(12000.0 / 1.1 + 1.0, 0.0)}, "forecast", "forecast", id="forecast"),
    pytest.param("the workload is at p95/SLO 0.9", cluster(SPREAD, [{"latency": 0.18, "slo": 0.2}]),
                 [drain(1, (1, 0))], {}, "slo", "default/w0", id="slo"),
    pytest.param("the moves leave a pod behind", cluster([pod(0, 0), pod(0, 1), pod(0, 1)]), [drain(1, (1, 0))],
                 {}, "invalid", None, id="incomplete"),
    pytest.param("no such node", cluster(SPREAD), [drain(7, (1, 0))], {}, "invalid", None, id="bad-node"),
    pytest.param("a node in standby", make_snapshot(node_cpu=[10000.0] * 2, pods=[pod(0, 0)], workloads=[{}],
                                                    standby=[False, True]),
                 [drain(1)], {}, "invalid", None, id="standby"),
])
def test_the_budget_stage_blocks_and_says_why(case, snapshot, proposals, kwargs, reason, blocked_by):
    plan = admit(snapshot, proposals, **kwargs)
    explanation = plan.explanations[0]
    assert explanation.reason == reason, (case, explanation.message)
    assert explanation.drained == (reason == "drained") and len(plan.drains) == (reason == "drained")
    assert explanation.blocked_by == blocked_by, case


def test_a_node_receiving_pods_is_not_drained_in_the_same_round():
    snapshot = cluster([pod(0, 0), pod(0, 1), pod(0, 2)], nodes=3)
    config = ConsolidationConfig(budget=DisruptionBudget(max_draining_nodes=2))
    plan = admit(snapshot, [drain(2, (2, 1)), drain(1, (1, 0))], config=config)
    assert [e.reason for e in plan.explanations] == ["drained", "receiving", "not-proposed"]


def test_two_drains_share_the_targets_free_capacity():
    # Node 0 has 2000m free: the first drain's 1500m pod takes it, the second's finds no room.
    snapshot = cluster([pod(0, 0, cpu=8000.0), pod(0, 1, cpu=1500.0), pod(0, 2, cpu=1500.0)], nodes=3)
    config = ConsolidationConfig(budget=DisruptionBudget(max_draining_nodes=2))
    plan = admit(snapshot, [drain(1, (1, 0)), drain(2, (2, 0))], config=config)
    assert [e.reason for e in plan.explanations][:2] == ["drained", "no-room"]


def test_an_under_used_node_without_a_proposal_is_explained():
    plan = admit(cluster(SPREAD), [])
    assert [(e.node, e.reason, e.pods_moved) for e in plan.explanations] == [
        ("node-0", "not-proposed", 1), ("node-1", "not-proposed", 1)]
    assert "under-used (CPU 10%" in plan.explanations[0].message


# ------------------------------------------------------------------------------ the proposer


def test_the_proposer_takes_the_fewest_pods_first_and_packs_the_fullest_node():
    # Node 0 at 60 % (not under-used), node 1 with 2 pods, node 2 with 1, node 3 at 45 % with 1.
    snapshot = make_snapshot(node_cpu=[10000.0] * 4, workloads=[{}], pods=[
        pod(0, 0, cpu=6000.0), pod(0, 1, cpu=500.0), pod(0, 1, cpu=500.0), pod(0, 2, cpu=800.0),
        pod(0, 3, cpu=4500.0)])
    proposals = propose_drains(snapshot, ConsolidationConfig())
    assert [p.node for p in proposals] == [2, 3, 1]
    assert proposals[0].moves == (Move(3, 0),)  # the fullest node that stays under 85 %
    assert proposals[1].moves == (Move(4, 1),)  # 4500m does not fit node 0 under 85 %
    assert {m.target for m in proposals[2].moves} == {0}


def test_pack_by_requests_fills_the_fullest_node_that_fits():
    cpu, memory = np.array([300.0, 300.0]), np.zeros(2)
    free, capacity = np.array([1000.0, 400.0, 500.0]), np.full(3, 1000.0)
    # 300m: node 1 (400m free) is the fullest that fits; then it has 100m, so node 2 (500m).
    assert pack_by_requests(cpu, memory, free, np.ones(3), capacity).tolist() == [1, 2]
    assert pack_by_requests(np.array([2000.0]), np.zeros(1), free, np.ones(3), capacity).tolist() == [UNBOUND]
    assert pack_by_requests(cpu, np.array([2.0, 2.0]), free, np.array([5.0, 1.0, 1.0]), capacity).tolist() == [0, 0]


# ------------------------------------------------------------------------------ the forecast


@pytest.mark.parametrize(("times", "cpu", "now", "expected"), [
    pytest.param([0, 600, 1200], [10.0, 30.0, 20.0], 1200, 30.0 + (10.0 / 1200.0) * 3600.0, id="peak-plus-rise"),
    pytest.param([0, 600, 1200], [30.0, 20.0, 10.0], 1200, 30.0, id="falling-keeps-the-peak"),
    pytest.param([0, 600, 1200, 1800], [10.0, 10.0, 10.0, 500.0], 1200, 10.0, id="the-future-is-unknown"),
    pytest.param([0, 4000], [90.0, 10.0], 4000, 10.0, id="older-than-the-horizon"),
    pytest.param([], [], 0, 0.0, id="no-history"),
])
def test_forecast_demand(times, cpu, now, expected):
    assert forecast_demand(times, cpu, cpu, now, 3600.0).cpu_millicores == pytest.approx(expected)


# ------------------------------------------------------------------------------ properties

PDB_CHOICES = st.one_of(st.none(), st.integers(0, 3))


@st.composite
def arbitrary_round(draw, plausible: bool = False):
    """A small cluster, its state, a forecast, PDBs and proposals. Arbitrary: garbage proposals
    and clusters with bare, Pending and unready pods and standby nodes. Plausible: awake nodes
    and ready workload pods, each proposal a node's whole pod set sent to random nodes, so that
    many get past the first checks and the later rules decide."""
    n_nodes = draw(st.integers(1 if not plausible else 2, 5))
    n_workloads = draw(st.integers(1, 3))
    owners = list(range(n_workloads)) if plausible else list(range(n_workloads)) * 4 + [-1]
    pods = [{"workload": draw(st.sampled_from(owners)),
             "node": draw(st.integers(0 if plausible else -1, n_nodes - 1)),
             "cpu": draw(st.sampled_from([100.0, 1000.0, 3000.0] + ([] if plausible else [6000.0]))),
             "usage": draw(st.sampled_from([50.0, 900.0] if plausible else [50.0, 900.0, np.nan]))}
            for _ in range(draw(st.integers(0, 10)))]
    workloads = [{"latency": draw(st.sampled_from([0.05, np.nan, 0.19])), "slo": 0.2}
                 for _ in range(n_workloads)]
    # Hypothesis favours the first value of a choice: the permissive one comes first throughout.
    standby = [False] * n_nodes if plausible else [draw(st.integers(0, 5)) == 5 for _ in range(n_nodes)]
    snapshot = make_snapshot(node_cpu=[10000.0] * n_nodes, pods=pods, workloads=workloads, standby=standby)
    rows = list(range(len(pods)))
    proposals = [] if plausible else [DrainProposal(draw(st.integers(-1, n_nodes)), tuple(
        Move(draw(st.sampled_from(rows)), draw(st.integers(-1, n_nodes))) for _ in range(draw(st.integers(0, 4)))
    ) if rows else ()) for _ in range(draw(st.integers(0, 2)))]
    for node in draw(st.lists(st.integers(0, n_nodes - 1), max_size=4, unique=plausible)):
        proposals.append(DrainProposal(node, tuple(
            Move(int(p), draw(st.sampled_from([t for t in range(n_nodes) if t != node] if plausible else
                                               list(range(n_nodes)))))
            for p in np.flatnonzero(snapshot.pods.node_index == node))))
    if draw(st.booleans()):
        proposals += list(propose_drains(snapshot, ConsolidationConfig()))
    proposals = draw(st.permutations(proposals))
    config = ConsolidationConfig(
        budget=DisruptionBudget(
            max_draining_nodes=draw(st.sampled_from([3, 2, 1] + ([] if plausible else [0]))),
            max_evictions_per_minute=draw(st.sampled_from([10, 4, 2] + ([] if plausible else [0])))),
        disruption_joules_per_move=draw(st.sampled_from([20_000.0, 0.0, 150_000.0, 400_000.0])))
    state = BudgetState(
        draining=frozenset(f"node-{i}" for i in range(n_nodes) if draw(st.integers(0, 5)) == 5),
        eviction_times_seconds=tuple(draw(st.lists(st.sampled_from([900.0, 950.0, 999.0]),
                                                   max_size=3 if plausible else 6))))
    pdbs = {f"default/w{w}": b for w in range(n_workloads) if (b := draw(PDB_CHOICES)) is not None}
    forecast = Demand(draw(st.sampled_from([0.0, 15000.0, 40000.0])), 0.0)
    return snapshot, proposals, config, state, pdbs, forecast


@settings(max_examples=600, deadline=None)
@given(st.one_of(arbitrary_round(), arbitrary_round(plausible=True)))
def test_no_proposal_gets_past_the_budget_or_costs_more_than_it_saves(round_):
    snapshot, proposals, config, state, pdbs, forecast = round_
    plan = admit(snapshot, proposals, config=config, state=state, forecast=forecast, pdbs=pdbs)
    nodes, pods, workloads = snapshot.nodes, snapshot.pods, snapshot.workloads
    recent = sum(1 for t in state.eviction_times_seconds if snapshot.time_seconds - t < 60.0)
    # The disruption budget.
    assert len(state.draining) + len(plan.drains) <= max(config.budget.max_draining_nodes, len(state.draining))
    if plan.drains:
        assert len(state.draining) + len(plan.drains) <= config.budget.max_draining_nodes
    assert recent + plan.evictions <= max(config.budget.max_evictions_per_minute, recent)
    if plan.evictions:
        assert recent + plan.evictions <= config.budget.max_evictions_per_minute
    # Every admitted drain empties an awake node onto other awake, staying nodes with room.
    drained = [d.node for d in plan.drains]
    assert len(set(drained)) == len(drained)
    free_cpu = nodes.cpu_free_millicores.copy()
    free_memory = nodes.memory_free_bytes.copy()
    sleep = sleep_watts(PowerModel(), snapshot)
    marginal = marginal_watts_per_millicore(PowerModel(), snapshot)
    keep = config.horizon_seconds - config.standby_after_idle_seconds
    moved = np.zeros(len(workloads), dtype=int)
    moved_ready = np.zeros(len(workloads), dtype=int)
    targets: set[int] = set()
    ready = pod_ready(snapshot)
    for d in plan.drains:
        assert not nodes.standby[d.node] and nodes.names[d.node] not in state.draining
        rows = [m.pod for m in d.moves]
        assert sorted(rows) == np.flatnonzero(pods.node_index == d.node).tolist()
        cost = 0.0
        for m in d.moves:
            assert pods.workload_index[m.pod] >= 0
            assert m.target not in drained and not nodes.standby[m.target]
            assert nodes.names[m.target] not in state.draining
            targets.add(m.target)
            free_cpu[m.target] -= pods.cpu_request_millicores[m.pod]
            free_memory[m.target] -= pods.memory_request_bytes[m.pod]
            moved[pods.workload_index[m.pod]] += 1
            moved_ready[pods.workload_index[m.pod]] += int(ready[m.pod])
            usage = np.nan_to_num(pods.cpu_usage_millicores[m.pod])
            cost += config.disruption_joules_per_move + marginal[m.target] * (
                pods.cpu_request_millicores[m.pod] * config.startup_seconds
                + usage * (1 / config.warmup_service_rate_fraction - 1) * config.warmup_seconds)
        # No move is made whose cost exceeds its saving.
        assert sleep[d.node] * keep > cost
    for t in targets:  # the targets hold the pods they receive (others may be over-committed already)
        assert free_cpu[t] >= 0 and free_memory[t] >= 0
    # PDBs, the last ready replica and the SLO guard.
    ready_count = np.bincount(pods.workload_index[ready & (pods.workload_index >= 0)], minlength=len(workloads))
    for w, name in enumerate(workloads.names):
        if moved[w] == 0:
            continue
        if name in pdbs:
            assert moved[w] <= ready_count[w] - max(workloads.replicas[w] - pdbs[name], 0)
        assert ready_count[w] - moved_ready[w] >= 1
        ratio = workloads.latency_p95_seconds[w] / workloads.slo_latency_p95_seconds[w]
        assert not ratio > config.max_latency_slo_ratio
    # Capacity for the forecast remains.
    stays = ~nodes.standby & np.array([n not in state.draining for n in nodes.names])
    stays[drained] = False
    if plan.drains:
        assert nodes.cpu_capacity_millicores[stays].sum() >= forecast.cpu_millicores * 1.1
    # Every proposal is explained, admitted or not.
    assert sum(e.drained for e in plan.explanations) == len(plan.drains)
    assert len(plan.explanations) >= len(proposals)


# ------------------------------------------------------------------------------ in the simulator


def spread_out() -> Simulator:
    """Two 4-core nodes. "default/web" (2 replicas, at least 2) has one pod on each; "default/solo"
    (1 replica) sits on node 1. The load is light: one node would hold everything."""
    def steady(spec, rate: float, **changes):
        return dataclasses.replace(spec, request_rate_per_second=np.full(120, rate),
                                   cpu_baseline_millicores=np.zeros(120), memory_per_pod_bytes=np.full(120, 1e8),
                                   **changes)

    sim = Simulator(scenario(steady(workload("default/web", replicas=2), 10.0, replicas_min=2),
                             steady(workload("default/solo", replicas=1), 5.0), node_cpu=(4000.0, 4000.0)),
                    config=QUIET)
    web, solo = sim.workload_pods(0), sim.workload_pods(1)
    assert sim.bind(web[0], 0) and sim.bind(web[1], 1) and sim.bind(solo[0], 1)
    return sim


def run(sim: Simulator, consolidate: bool, steps: int = 40):
    heuristic = HeuristicPolicy()
    consolidator = Consolidator(heuristic, ConsolidationConfig(budget=DisruptionBudget(max_evictions_per_minute=1)))
    placement = CordonedNodes(heuristic, consolidator) if consolidate else heuristic
    harness = Harness(sim, placement_policy=placement, sizing_policy=heuristic,
                      consolidator=consolidator if consolidate else None)
    return [harness.step() for _ in range(steps)]


def test_consolidation_drains_a_node_that_then_sleeps_and_saves_energy():
    with_rule, without = run(spread_out(), True), run(spread_out(), False)
    explanations = [e for s in with_rule for e in s.consolidation.explanations]
    # Node 1 holds solo's only replica: never drained. Node 0's web pod moves once 600 s of
    # demand history are there.
    assert [(e.node, e.pods_moved) for e in explanations if e.drained] == [("node-0", 1)]
    # Node 1 (two pods) is never drained: one eviction a minute is too few, then it receives
    # node 0's pod, then node 0 drains, then node 0 sleeps and nothing else has room.
    assert {e.reason for e in explanations if e.node == "node-1"} == {
        "budget-evictions", "receiving", "budget-draining", "no-room"}
    first = next(i for i, s in enumerate(with_rule) if s.consolidation.drains)
    assert first == 10
    assert with_rule[-1].result.node_standby.tolist() == [True, False]
    assert not without[-1].result.node_standby.any()
    energy = sum(s.result.energy_joules for s in with_rule)
    assert energy < sum(s.result.energy_joules for s in without)
    assert sum(int(s.result.workload_voluntary_evictions.sum()) for s in with_rule) == 1
    # The single-replica workload was never without a running replica.
    assert all(s.result.workload_running_replicas[1] == 1 for s in with_rule[1:])


def test_a_drained_node_stays_cordoned_until_the_forecast_needs_it():
    consolidator = Consolidator(HeuristicPolicy())
    consolidator.history = [(300.0, 2000.0, 0.0)]  # 700 s of history before the first call
    plan = consolidator.plan(cluster(SPREAD))
    assert [d.node for d in plan.drains] == [0]  # one pod each: the first node by name
    assert consolidator.cordoned_mask(cluster(SPREAD)).tolist() == [True, False]
    placement = CordonedNodes(HeuristicPolicy(), consolidator)
    pending = make_snapshot(node_cpu=[10000.0] * 2, pods=[pod(0, 1), {"workload": 0, "node": -1}], workloads=[{}])
    scores = placement.score_nodes(pending, 1)
    assert scores[1] - scores[0] > 1e6
    # Demand rises to 9.5 cores: with 10 % headroom, node 1 alone cannot hold it.
    busy = make_snapshot(node_cpu=[10000.0] * 2, pods=[pod(0, 1, cpu=9500.0)], workloads=[{}], time_seconds=1060.0)
    consolidator.plan(busy)
    assert not consolidator.cordoned_mask(busy).any()
