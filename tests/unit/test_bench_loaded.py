"""The loaded regime of ``thrifty bench``: envelope, background, sizing as deployed, warm-up."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from thrifty.bench.loaded import (
    LoadedRegimeConfig,
    background_following,
    build_loaded,
    envelope,
    requested_cpu_fraction,
)
from thrifty.bench.lower_bound import EnergyLowerBound
from thrifty.bench.policies import parse_policy
from thrifty.bench.runner import run_policy
from thrifty.bench.scenarios import POD_STREAM, SCENARIO_PARTS, SHIPPED_TRACES, ScenarioSpec, load_traces
from thrifty.commands.bench import QUICK, WARMUP_STEPS
from thrifty.config import ScenarioConfig
from thrifty.energy import PowerModel
from thrifty.harness import Harness
from thrifty.sim import Simulator
from thrifty.traces.model import PodStream

HELDOUT = sorted(SHIPPED_TRACES.glob("*/*-heldout.*")) + [SHIPPED_TRACES / "alibaba-openb/nodes.csv.gz"]


@pytest.fixture(scope="module")
def traces():
    loaded, _ = load_traces(HELDOUT, split="heldout", parts=SCENARIO_PARTS + (POD_STREAM,))
    return loaded


def test_envelope_by_hand() -> None:
    # A 240 s cycle at 60 s steps: trough, halfway, peak, halfway, trough.
    np.testing.assert_allclose(envelope(5, 60.0, 0.3, 0.8, 240.0), [0.3, 0.55, 0.8, 0.55, 0.3])
    # Before the run (negative steps) it repeats the cycle.
    np.testing.assert_allclose(envelope(2, 60.0, 0.3, 0.8, 240.0, first_step=-2), [0.8, 0.55])


def test_background_follows_the_target_from_below_with_real_lifetimes() -> None:
    # One pod of 1 core living 90 s, a target of 2.5 cores for three 60 s steps: three copies at
    # 0 s (3 cores), none at 60 s (all still there), three new ones at 120 s (the first have gone).
    stream = PodStream(names=("p",), cpu_request_millicores=np.array([1000.0]),
                       memory_request_bytes=np.array([2.0**30]), creation_seconds=np.array([10.0]),
                       deletion_seconds=np.array([100.0]), qos=("LS",))
    pods = background_following(stream, np.full(3, 2500.0), 60.0, ScenarioConfig(), np.random.default_rng(0))
    np.testing.assert_allclose(pods.arrival_seconds, [0, 0, 0, 120, 120, 120])
    np.testing.assert_allclose(pods.departure_seconds, [90, 90, 90, 210, 210, 210])
    np.testing.assert_allclose(pods.cpu_usage_millicores, 1000.0 * ScenarioConfig().background_cpu_utilisation)


@pytest.mark.parametrize("seed", QUICK["seeds"])
def test_quick_scenarios_request_at_least_half_the_cluster_at_peak(traces, seed) -> None:
    steps, warmup = QUICK["steps"], WARMUP_STEPS["loaded"]
    scenario = ScenarioSpec(QUICK["nodes"][0], seed, regime="loaded", warmup_steps=warmup).build(traces, steps)
    fraction = requested_cpu_fraction(scenario, steps)[warmup:]
    assert fraction.max() >= 0.5
    assert fraction.min() <= LoadedRegimeConfig().trough_requested_cpu_fraction_range[1] + 0.05
    assert len(scenario.nodes.names) == QUICK["nodes"][0]
    assert len(set(scenario.nodes.cpu_capacity_millicores.tolist())) >= 3, "the openb mix of node sizes"


def test_initial_sizing_never_reads_the_run(traces) -> None:
    """Two runs that share the day before and differ after it start with the same deployment."""
    short = build_loaded(traces, n_nodes=16, steps=1440, seed=3)
    long = build_loaded(traces, n_nodes=16, steps=1500, seed=3)
    fields = ("replicas", "cpu_request_millicores", "memory_request_bytes", "slo_latency_p95_seconds")
    for a, b in zip(short.workloads, long.workloads, strict=True):
        assert [getattr(a, f) for f in fields] == [getattr(b, f) for f in fields], a.name
        assert len(a.request_rate_per_second) == 1440 and len(b.request_rate_per_second) == 1500


def test_warmup_steps_are_run_but_not_measured(traces) -> None:
    spec = ScenarioSpec(8, 0, regime="loaded", warmup_steps=4)
    scenario = spec.build(traces, 10)
    result = run_policy(scenario, spec, parse_policy("thrifty-heuristic"), 10)
    assert result.steps == 6 and len(result.watts) == 6 and len(result.strict_bound_watts) == 6


def test_replicas_of_a_workload_have_their_own_cpu_usage(traces) -> None:
    # In the loaded regime no two running replicas of a workload use the same CPU: each reads
    # the baseline at its own phase and serves its own share of the requests. Fails if the
    # replicas share one CPU series (as the memory series did before phases).
    spec = ScenarioSpec(n_nodes=128, seed=0, regime="loaded", warmup_steps=0)
    scenario = spec.build(traces, 20)
    assert scenario.replica_cpu_phases and scenario.replica_memory_phases
    assert scenario.replica_cpu_spread == LoadedRegimeConfig().replica_cpu_spread > 0
    built = parse_policy("kube-default+static").build(spec.seed)
    simulator = Simulator(scenario, seed=spec.seed)
    harness = Harness(simulator, placement_policy=built.placement, sizing_policy=built.sizing)
    for _ in range(20):
        harness.step()
    containers = simulator.snapshot().containers
    compared = 0
    for w in range(len(scenario.workloads)):
        history = containers.cpu_history_millicores[containers.workload_index == w][:, -10:]
        history = history[np.all(np.isfinite(history), axis=1)]
        if len(history) < 2:
            continue
        compared += 1
        # Every pair of replicas differs in most of the last ten steps.
        for a in range(len(history)):
            for b in range(a + 1, len(history)):
                assert np.count_nonzero(~np.isclose(history[a], history[b])) >= 5
    assert compared >= 2  # the workloads of seed 0 with two or more replicas running


@pytest.mark.parametrize("policy", ["thrifty-heuristic", "most-allocated+stack"])
def test_no_policy_beats_the_strict_bound_with_replicas_apart(traces, policy) -> None:
    # The loaded regime with each replica at its own CPU and memory phase and share: 128
    # nodes, two simulated hours (the all-on start and its first hour included), every step.
    spec = ScenarioSpec(n_nodes=128, seed=2, regime="loaded", warmup_steps=0)
    scenario = spec.build(traces, 120)
    result = run_policy(scenario, spec, parse_policy(policy), 120)
    assert np.all(result.watts >= result.strict_bound_watts - 1e-6)
    assert np.all(result.strict_bound_watts >= result.lower_bound_watts - 1e-6)


def test_the_bound_takes_the_least_baseline_sample_when_replicas_have_their_own_phase(traces) -> None:
    # The one replica left may read any sample of the baseline series, so the bound counts its
    # least; with one sample for all it counts the step's sample.
    scenario = ScenarioSpec(n_nodes=16, seed=0, regime="loaded").build(traces, 30)
    rates = np.zeros(len(scenario.workloads))
    together = dataclasses.replace(scenario, replica_cpu_phases=False)
    apart_cpu = EnergyLowerBound(scenario, PowerModel()).demand(5, rates)[0]
    together_cpu = EnergyLowerBound(together, PowerModel()).demand(5, rates)[0]
    difference = sum(w.replicas_min * (float(w.cpu_baseline_millicores[5]) - float(w.cpu_baseline_millicores.min()))
                     for w in scenario.workloads)
    assert difference > 0
    assert together_cpu - apart_cpu == pytest.approx(difference)
