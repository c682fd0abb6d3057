"""``thrifty bench``: lower bound, metrics, policy names, trace fallback, calibration, the CLI."""

from __future__ import annotations

import argparse
import csv
import dataclasses
from pathlib import Path

import numpy as np
import pytest

from tests.unit.snapshots import GI, MI, make_snapshot
from thrifty import cli
from thrifty.bench import report
from thrifty.bench.calibration import Trial, choose
from thrifty.bench.cluster import pod_manifests, summarise
from thrifty.bench.lower_bound import (
    EnergyLowerBound,
    NodeTypes,
    curve_floor_slope,
    fewest_nodes,
    fractional_cover_cost,
    whole_node_cover,
)
from thrifty.bench.metrics import COLUMNS, relative_slack
from thrifty.bench.policies import DEFAULT_POLICIES, parse_policy
from thrifty.bench.runner import replicaset_victims, run_policy, strict_bound_of
from thrifty.bench.scenarios import POD_STREAM, SCENARIO_PARTS, SHIPPED_TRACES, ScenarioSpec, load_traces
from thrifty.commands import bench as bench_command
from thrifty.config import SimulatorConfig
from thrifty.energy import SPECPOWER_SHAPE, PowerModel
from thrifty.observe import format_cpu

HELDOUT = sorted(SHIPPED_TRACES.glob("*/*-heldout.*")) + [SHIPPED_TRACES / "alibaba-openb/nodes.csv.gz"]
CALLGRAPHS = SHIPPED_TRACES / "alibaba-callgraphs/callgraphs-heldout.jsonl.gz"


@pytest.fixture(scope="module")
def small_scenario():
    traces, _ = load_traces([CALLGRAPHS], split="heldout")
    spec = ScenarioSpec(n_nodes=4, seed=0)
    return spec, spec.build(traces, 30)


# --------------------------------------------------------------- lower bound

@pytest.mark.parametrize(("costs", "capacities", "demand", "expected"), [
    pytest.param([10, 20], [10, 10], 15, 10 + 20 * 0.5, id="cheapest per unit first, the next one in part"),
    pytest.param([20, 10], [10, 10], 5, 5.0, id="order is by cost per unit, not position"),
    pytest.param([10, 20], [10, 10], 30, 30.0, id="beyond the cluster: every node"),
    pytest.param([10, 20], [10, 10], 0, 0.0, id="no demand: nothing"),
])
def test_fractional_cover_cost(costs, capacities, demand, expected) -> None:
    assert fractional_cover_cost(np.array(costs, float), np.array(capacities, float), demand) == pytest.approx(expected)


@pytest.mark.parametrize(("capacities", "demand", "expected"), [
    ([10, 30, 20], 45, 2), ([10, 30, 20], 30, 1), ([10, 30, 20], 61, 3), ([10, 30, 20], 0, 0),
])
def test_fewest_nodes(capacities, demand, expected) -> None:
    assert fewest_nodes(np.array(capacities, float), demand) == expected


def test_curve_floor_slope_of_the_specpower_shape() -> None:
    # f(0.8) / 0.8 = 0.79 / 0.8 = 0.9875 is the smallest ratio of the default curve.
    assert curve_floor_slope(SPECPOWER_SHAPE) == pytest.approx(0.9875)
    assert curve_floor_slope(tuple(np.linspace(0, 1, 11))) == pytest.approx(1.0)


TYPES = NodeTypes(
    count=np.array([2.0, 1.0]), cpu_capacity_millicores=np.array([10.0, 30.0]),
    memory_capacity_bytes=np.array([4.0, 64.0]), wake_watts=np.array([10.0, 25.0]),
    dynamic_watts_per_millicore=np.array([0.0, 0.0]))
"""Two small nodes (10 m, 4 B, 10 W to wake) and one big one (30 m, 64 B, 25 W), no dynamic power."""


@pytest.mark.parametrize(("types", "cpu", "memory", "all_on", "expected"), [
    pytest.param(TYPES, 15, 0, False, (20.0, 2), id="two small beat one big (the LP would pay 15 W)"),
    pytest.param(TYPES, 25, 0, False, (25.0, 1), id="more than the small ones hold: the big one"),
    pytest.param(TYPES, 5, 50, False, (25.0, 1), id="memory decides: the big one"),
    pytest.param(TYPES, 5, 0, True, (45.0, 3), id="the all-on start: every node"),
    pytest.param(TYPES, 100, 0, False, (45.0, 3), id="beyond the cluster: every node"),
    pytest.param(TYPES, 0, 0, False, (0.0, 0), id="nothing to hold: nothing on"),
    pytest.param(dataclasses.replace(TYPES, dynamic_watts_per_millicore=np.array([2.0, 1.0])), 5, 0, False,
                 (20.0, 1), id="dynamic power: one small node at 10 + 5 x 2 W beats the big one at 25 + 5 W"),
])
def test_whole_node_cover(types, cpu, memory, all_on, expected) -> None:
    watts, nodes = whole_node_cover(types, cpu, memory, all_on=all_on)
    assert (watts, nodes) == (pytest.approx(expected[0], abs=1e-6), expected[1])


@pytest.fixture(scope="module")
def two_hour_runs(small_scenario):
    """Two simulated hours (the all-on start is the first 10 minutes) of three kinds of policy."""
    spec, scenario = small_scenario
    strict = strict_bound_of(scenario)
    return {policy: run_policy(scenario, spec, parse_policy(policy), steps=120, strict_bound=strict)
            for policy in ("thrifty-heuristic", "k8s-stack", "most-allocated+static")}


@pytest.mark.parametrize("policy", ["thrifty-heuristic", "k8s-stack", "most-allocated+static"])
def test_no_policy_beats_the_strict_bound_in_any_step(two_hour_runs, policy) -> None:
    result = two_hour_runs[policy]
    assert np.all(result.watts >= result.strict_bound_watts - 1e-6)
    assert np.all(result.strict_bound_nodes >= 1)


def test_the_strict_bound_is_never_below_the_loose_one(two_hour_runs) -> None:
    result = two_hour_runs["thrifty-heuristic"]
    assert np.all(result.strict_bound_watts >= result.lower_bound_watts - 1e-6)
    # After the all-on start the whole-node cover is what is left; it is dearer than the LP's.
    assert result.strict_bound_watts[20:].sum() > result.lower_bound_watts[20:].sum()


def test_the_strict_bound_starts_with_every_node_idle(small_scenario, two_hour_runs) -> None:
    _, scenario = small_scenario
    bound = EnergyLowerBound(scenario, PowerModel())
    strict = two_hour_runs["thrifty-heuristic"].strict_bound_watts
    standby_steps = int(SimulatorConfig().standby_after_idle_seconds // scenario.step_seconds)
    assert np.all(strict[:standby_steps] >= bound.idle.sum())
    assert np.all(strict[standby_steps:] < bound.idle.sum())


def test_lower_bound_is_the_same_for_every_policy(small_scenario) -> None:
    spec, scenario = small_scenario
    a = run_policy(scenario, spec, parse_policy("thrifty-heuristic"), steps=10)
    b = run_policy(scenario, spec, parse_policy("random+hpa"), steps=10)
    np.testing.assert_allclose(a.lower_bound_watts, b.lower_bound_watts)


def test_lower_bound_demand_counts_min_replicas_baseline_and_requests(small_scenario) -> None:
    _, scenario = small_scenario
    bound = EnergyLowerBound(scenario, PowerModel())
    rates = np.ones(len(scenario.workloads))
    cpu, memory = bound.demand(0, rates)
    expected_cpu = sum(w.cpu_per_request_millicore_seconds + w.replicas_min * w.cpu_baseline_millicores[0]
                       for w in scenario.workloads)
    assert cpu == pytest.approx(expected_cpu)
    assert memory == pytest.approx(sum(w.replicas_min * w.memory_per_pod_bytes[0] for w in scenario.workloads))


# ------------------------------------------------------------------- metrics

def test_relative_slack_sums_requests_and_usage_of_pods_that_ran() -> None:
    snapshot = make_snapshot(node_cpu=[8000], pods=[
        {"workload": 0, "node": 0, "cpu": 1000, "memory": GI, "usage": 250, "memory_usage": 512 * MI},
        {"workload": 0, "node": 0, "cpu": 1000, "memory": GI, "usage": 750, "memory_usage": 512 * MI},
        {"workload": 0, "cpu": 1000, "memory": GI},  # Pending: did not run, not counted
        {"node": 0, "cpu": 4000, "memory": GI, "usage": 0, "memory_usage": 0},  # not a workload pod
    ], workloads=[{}])
    cpu, memory = relative_slack(snapshot)
    assert cpu == pytest.approx((2000 - 1000) / 2000)
    assert memory == pytest.approx(0.5)


# ------------------------------------------------------------------ policies

@pytest.mark.parametrize(("name", "placement", "sizing"), [
    ("thrifty-heuristic", "heuristic", "heuristic"),
    ("k8s-stack", "kube-default", "stack"),
    ("trimaran+vpa", "trimaran", "vpa"),
    ("most-allocated", "most-allocated", "static"),
])
def test_parse_policy(name, placement, sizing) -> None:
    spec = parse_policy(name)
    assert (spec.name, spec.placement, spec.sizing) == (name, placement, sizing)


@pytest.mark.parametrize(("name", "message"), [
    ("kube-default+magic", "--policies: unknown policy"),
    ("rl:", "needs a policy directory"),
])
def test_parse_policy_errors_name_the_flag(name, message) -> None:
    with pytest.raises(ValueError, match=message):
        parse_policy(name)


def test_every_default_policy_builds() -> None:
    for name in DEFAULT_POLICIES:
        built = parse_policy(name).build(seed=0)
        assert built.placement.info.name and built.sizing.info.name
        assert (built.autoscaler is None) == name.startswith("thrifty")


def test_replicaset_scale_in_takes_pending_then_doubled_up_then_youngest() -> None:
    snapshot = make_snapshot(node_cpu=[8000, 8000], workloads=[{}], pods=[
        {"workload": 0, "node": 0, "usage": 10, "memory_usage": MI, "age": 500},   # 0: alone on node 0
        {"workload": 0, "node": 1, "usage": 10, "memory_usage": MI, "age": 900},   # 1: doubled up, older
        {"workload": 0, "node": 1, "usage": 10, "memory_usage": MI, "age": 300},   # 2: doubled up, younger
        {"workload": 0, "age": 50},                                                # 3: Pending
    ])
    assert replicaset_victims(snapshot, 0, 3) == ("default/pod-3", "default/pod-2", "default/pod-1")


# -------------------------------------------------------------------- traces

def test_missing_trace_parts_fall_back_to_the_shipped_slices_of_the_split() -> None:
    traces, notes = load_traces([CALLGRAPHS], split="train", parts=SCENARIO_PARTS + (POD_STREAM,))
    assert any(t.nodes is not None for t in traces) and any(t.pods is not None for t in traces)
    joined = " ".join(notes)
    assert "node inventory" in joined and "genai-train" in joined and "pods-train" in joined
    assert "call graphs" not in joined


def test_given_parts_are_not_mixed_with_shipped_ones() -> None:
    _, notes = load_traces(HELDOUT, split="heldout")
    assert notes == []
    _, notes = load_traces([SHIPPED_TRACES / "alibaba-openb/pods-heldout.csv.gz"], split="heldout", parts=(POD_STREAM,))
    assert notes == [], "a run that needs only the pod stream falls back on nothing else"


# --------------------------------------------------------------- calibration

@pytest.mark.parametrize(("trials", "expected"), [
    pytest.param([(1.0, 0.010), (0.8, 0.012), (0.5, 0.030)], 1, id="cheapest within 0.5 points of the best"),
    pytest.param([(1.0, 0.010), (0.8, 0.016)], 0, id="0.6 points worse is not eligible"),
    pytest.param([(2.0, 0.0), (1.0, 0.0)], 1, id="equal violations: least energy"),
])
def test_calibration_choice(trials, expected) -> None:
    assert choose([Trial("g", {}, e, v) for e, v in trials]) == expected


def test_calibration_prefers_the_upstream_default_among_exact_ties() -> None:
    trials = [Trial("g", {"x": 1}, 1.0, 0.0), Trial("g", {"x": 5}, 1.0, 0.0), Trial("g", {"x": 9}, 2.0, 0.0)]
    assert choose(trials, upstream={"x": 5}) == 1
    assert choose(trials, upstream={"x": 9}) == 0


# ----------------------------------------------------------------------- CLI

def _bench(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="thrifty")
    bench_command.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_bench_is_a_subcommand() -> None:
    assert "bench" in cli.SUBCOMMANDS


def test_bench_writes_results(tmp_path: Path, capsys) -> None:
    status = _bench(["bench", "--trace", str(CALLGRAPHS), "--out", str(tmp_path), "--nodes", "4", "--seeds", "0",
                     "--steps", "6", "--policies", "thrifty-heuristic", "k8s-stack", "--no-plots"])
    assert status == 0
    with (tmp_path / "results.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["policy"] for r in rows] == ["thrifty-heuristic", "k8s-stack", "lower-bound", "strict-bound"]
    assert {"policy", "energy_kwh", "slo_violation_rate", "strict_bound_ratio", *COLUMNS} <= set(rows[0])
    strict = float(rows[3]["energy_kwh"])
    assert float(rows[0]["strict_bound_ratio"]) == pytest.approx(float(rows[0]["energy_kwh"]) / strict)
    assert all(float(r["energy_kwh"]) > 0 for r in rows)
    markdown = (tmp_path / "results.md").read_text()
    assert "| thrifty-heuristic |" in markdown and "no node inventory in the given traces" in markdown
    out = capsys.readouterr()
    assert "| k8s-stack |" in out.out and "using the shipped" in out.err


def test_bench_plots(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    assert _bench(["bench", "--trace", str(CALLGRAPHS), "--out", str(tmp_path), "--nodes", "4", "--seeds", "0",
                   "--steps", "3", "--policies", "kube-default+static"]) == 0
    for name in ("energy_vs_slo.png", "energy_over_time.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(("argv", "message"), [
    (["--policies", "nonsense"], "--policies: unknown policy"),
    (["--trace", "/does/not/exist.csv"], "--trace: /does/not/exist.csv"),
    (["--policies", "rl:/does/not/exist"], "--policies rl:/does/not/exist"),
])
def test_bench_errors_name_the_flag(tmp_path: Path, capsys, argv, message) -> None:
    status = _bench(["bench", "--trace", str(CALLGRAPHS), "--out", str(tmp_path), "--nodes", "4", "--seeds", "0",
                     "--steps", "2", "--no-plots", *argv])
    assert status == 2
    assert message in capsys.readouterr().err


# ------------------------------------------------------------ cluster (pure)

def _node(name: str, cpu: str, memory: str) -> dict:
    return {"metadata": {"name": name, "labels": {}}, "status": {"allocatable": {"cpu": cpu, "memory": memory}}}


def _pod(name: str, node: str | None, cpu: str, created: str, scheduled: str | None) -> dict:
    conditions = [{"type": "PodScheduled", "status": "True", "lastTransitionTime": scheduled}] if scheduled else []
    spec = {"containers": [{"name": "main", "resources": {"requests": {"cpu": cpu, "memory": "1Gi"}}}]}
    if node:
        spec["nodeName"] = node
    return {"metadata": {"name": name, "creationTimestamp": created}, "spec": spec,
            "status": {"conditions": conditions}}


def test_cluster_summary_counts_nodes_energy_rate_and_latency() -> None:
    nodes = [_node("a", "32", "128Gi"), _node("b", "32", "128Gi"), _node("c", "96", "384Gi")]
    pods = [_pod("p0", "a", "16", "2024-01-01T00:00:00Z", "2024-01-01T00:00:01Z"),
            _pod("p1", "a", "8", "2024-01-01T00:00:00Z", "2024-01-01T00:00:03Z"),
            _pod("p2", None, "200", "2024-01-01T00:00:00Z", None)]
    run = summarise("thrifty", pods, nodes, created={"p0": 10.0, "p1": 10.5, "p2": 11.0},
                    bound={"p0": 10.1, "p1": 11.5}, wall_seconds=5.0)
    assert (run.pods, run.scheduled, run.powered_on_nodes) == (3, 2, 1)
    # Node a (small class, 54.1 to 243 W) at 24/32 cores = 75 %: 54.1 + 188.9 x f(0.75), f = 0.745
    # halfway between the 70 % (0.70) and 80 % (0.79) points. Nodes b (small) and c (large) are
    # empty: standby 8 W, 15 W.
    assert run.energy_watts == pytest.approx(54.1 + 188.9 * 0.745 + 8 + 15)
    assert run.pods_per_second == pytest.approx(2 / 1.5)
    assert (run.latency_p50_ms, run.condition_latency_p99_s) == (pytest.approx(550.0), pytest.approx(2.98))


def test_cluster_pod_manifests_follow_the_stream_order() -> None:
    from thrifty.traces import load_openb_pods

    stream = load_openb_pods(SHIPPED_TRACES / "alibaba-openb/pods-heldout.csv.gz").pods
    default = pod_manifests(stream, 3, "default-scheduler", "r1")
    thrifty = pod_manifests(stream, 3, "thrifty", "r1")
    assert "schedulerName" not in default[0]["spec"] and thrifty[0]["spec"]["schedulerName"] == "thrifty"
    first = int(np.argmin(stream.creation_seconds))
    requests = default[0]["spec"]["containers"][0]["resources"]["requests"]
    assert requests["cpu"] == format_cpu(stream.cpu_request_millicores[first])
    assert [p["metadata"]["name"] for p in thrifty] == ["openb-00000", "openb-00001", "openb-00002"]
    halved = pod_manifests(stream, 1, "thrifty", "r1", request_scale=0.5)[0]["spec"]["containers"][0]["resources"]
    assert halved["requests"]["cpu"] == format_cpu(stream.cpu_request_millicores[first] / 2)


# ---------------------------------------------------------------- statistics

def test_bootstrap_interval_brackets_the_mean_and_shrinks_with_agreement() -> None:
    assert report.bootstrap_interval([2.0] * 5) == (2.0, 2.0)
    low, high = report.bootstrap_interval([1.0, 2.0, 3.0, 4.0, 5.0])
    assert 1.0 < low < 3.0 < high < 5.0
    assert report.bootstrap_interval([1.0, 2.0, 3.0, 4.0, 5.0]) == (low, high), "seeded"


def _row(policy: str, scenario: str, energy: float, slo: float) -> dict[str, object]:
    return {"policy": policy, "scenario": scenario, "energy_kwh": energy, "slo_violation_rate": slo,
            "strict_bound_ratio": energy / 10.0}


@pytest.mark.parametrize(("violation_rate", "expected"), [
    pytest.param(0.02, "most-allocated+stack", id="the cheapest peer with no more violations"),
    pytest.param(0.005, "k8s-stack", id="only the careful peer qualifies"),
    pytest.param(0.0, "k8s-stack", id="none qualifies: the peer with the fewest"),
])
def test_best_baseline(violation_rate, expected) -> None:
    summary = [{"policy": "k8s-stack", "energy_kwh": 30.0, "slo_violation_rate": 0.005},
               {"policy": "most-allocated+stack", "energy_kwh": 20.0, "slo_violation_rate": 0.02},
               {"policy": "thrifty-heuristic", "energy_kwh": 10.0, "slo_violation_rate": 0.0},
               {"policy": "strict-bound", "energy_kwh": 5.0, "slo_violation_rate": None}]
    assert report.best_baseline(summary, violation_rate) == expected


def test_paired_differences_are_per_scenario_against_the_best_baseline() -> None:
    rows = [_row("thrifty-heuristic", "a", 10.0, 0.01), _row("thrifty-heuristic", "b", 12.0, 0.01),
            _row("k8s-stack", "a", 15.0, 0.0), _row("k8s-stack", "b", 13.0, 0.0),
            _row("random+stack", "a", 30.0, 0.05), _row("random+stack", "b", 30.0, 0.05)]
    stats = {s["policy"]: s for s in report.statistics_rows(rows)}
    mine = stats["thrifty-heuristic"]
    assert mine["best_baseline"] == "k8s-stack"
    assert mine["energy_diff_kwh"] == pytest.approx(((10 - 15) + (12 - 13)) / 2)
    low, high = mine["energy_diff_kwh_ci"]
    assert low == pytest.approx(-5.0) and high == pytest.approx(-1.0)
    assert mine["slo_diff"] == pytest.approx(0.01)
    assert stats["random+stack"]["best_baseline"] == "k8s-stack"
