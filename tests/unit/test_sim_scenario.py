"""Scenario building from traces: in-memory traces with hand-checkable numbers, then the shipped slices."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from thrifty import traces
from thrifty.config import ScenarioConfig
from thrifty.sim import Simulator, build_scenario
from thrifty.sim.scenario import _resample
from thrifty.traces import CallGraph, ContainerUsage, NodeInventory, PodStream, Trace

REPO = Path(__file__).resolve().parents[2]
GIB = 2.0**30
NAN = np.full(10, np.nan)


def inventory() -> Trace:
    return Trace(
        source="openb-nodes",
        path="memory",
        nodes=NodeInventory(
            names=("n-small", "n-medium", "n-large"),
            cpu_capacity_millicores=np.array([16_000.0, 64_000.0, 96_000.0]),
            memory_capacity_bytes=np.array([64 * GIB, 256 * GIB, 512 * GIB]),
            gpus=np.zeros(3, dtype=np.int64),
            models=("", "", ""),
        ),
    )


def graph() -> Trace:
    # USER -> front (1 call), front -> cart (2), front -> cache (1), cart -> cache (1).
    return Trace(
        source="callgraphs",
        path="memory",
        call_graphs=(
            CallGraph(
                service="S_1",
                nodes=("USER", "MS_front", "MS_cart", "MS_cache"),
                source=np.array([0, 1, 1, 2]),
                target=np.array([1, 2, 3, 3]),
                weight=np.array([1.0, 2.0, 1.0, 1.0]),
                rpc_type=("http", "rpc", "mc", "mc"),
                occurrences=10,
            ),
        ),
    )


def usage(rate: float = np.nan, cpu: float = np.nan, memory: float = np.nan, step: float = 60.0) -> Trace:
    ramp = np.linspace(0.5, 1.5, 10)
    return Trace(
        source="test",
        path="memory",
        containers=(
            ContainerUsage(
                name="c",
                step_seconds=step,
                start_seconds=0.0,
                cpu_usage_millicores=cpu * ramp,
                memory_usage_bytes=memory * ramp,
                request_rate_per_second=rate * ramp,
            ),
        ),
    )


def pod_stream() -> Trace:
    return Trace(
        source="openb-pods",
        path="memory",
        pods=PodStream(
            names=("p0", "p1", "p2"),
            cpu_request_millicores=np.array([1000.0, 2000.0, 4000.0]),
            memory_request_bytes=np.array([GIB, GIB, 2 * GIB]),
            creation_seconds=np.array([100.0, 160.0, 400.0]),
            deletion_seconds=np.array([700.0, np.nan, 1000.0]),
            qos=("LS", "BE", "LS"),
        ),
    )


def small_config(**overrides) -> ScenarioConfig:
    base = {"n_nodes": 3, "n_applications": 1, "horizon_seconds": 600.0}
    return ScenarioConfig(**{**base, **overrides})


def all_traces() -> list[Trace]:
    return [inventory(), graph(), usage(rate=3.0), usage(cpu=100.0), usage(memory=GIB)]


def test_call_graph_becomes_workloads_with_rates_and_calls_per_request():
    scenario = build_scenario(all_traces(), config=small_config(), seed=0)
    names = [w.name for w in scenario.workloads]
    assert names == ["app-0/ms-front", "app-0/ms-cart", "app-0/ms-cache"]
    # Edge weights count calls per graph request, so invocations per graph request are the sums
    # of incoming weights: front 1, cart 2, cache 1 + 1 = 2.
    rates = np.array([w.request_rate_per_second for w in scenario.workloads])
    np.testing.assert_allclose(rates[1] / rates[0], 2.0)
    np.testing.assert_allclose(rates[2] / rates[0], 2.0)
    low, high = ScenarioConfig().entry_request_rate_range_per_second
    assert low <= rates[0].mean() <= high
    deps = scenario.dependencies
    edges = {(int(s), int(t)): float(c)
             for s, t, c in zip(deps.source, deps.target, deps.calls_per_request, strict=True)}
    # front -> cart: 2 per front request; front -> cache: 1; cart -> cache: 1 call per graph request
    # spread over the cart's 2 invocations, 0.5 per cart request.
    assert edges == {(0, 1): 2.0, (0, 2): 1.0, (1, 2): 0.5}
    assert deps.weight.max() == 1.0 and np.all(deps.bytes_per_call == ScenarioConfig().bytes_per_call)
    # The cache is sized from the cache range of CPU per request.
    cache_low, cache_high = ScenarioConfig().cache_cpu_per_request_millicore_seconds
    assert cache_low <= scenario.workloads[2].cpu_per_request_millicore_seconds <= cache_high


def test_series_shapes_and_initial_sizing():
    config = small_config()
    scenario = build_scenario(all_traces(), config=config, seed=1)
    steps = round(config.horizon_seconds / config.step_seconds)
    for spec in scenario.workloads:
        assert spec.horizon_steps == steps
        assert spec.cpu_baseline_millicores.mean() == pytest.approx(config.baseline_cpu_millicores, rel=0.2)
        headroom = 1 + config.initial_memory_headroom
        assert spec.memory_request_bytes >= spec.memory_per_pod_bytes.max() * headroom - 2**20
        assert spec.memory_limit_bytes == spec.memory_request_bytes
        assert spec.cpu_limit_millicores == spec.cpu_request_millicores * config.initial_cpu_limit_ratio
        assert spec.slo_latency_p95_seconds >= config.slo_min_seconds
        assert 1 <= spec.replicas <= spec.replicas_max
    weights = {w.energy_weight for w in scenario.workloads}
    assert len(weights) == 1  # one application, one objective


def test_nodes_sampled_with_power_classes_and_repeats():
    scenario = build_scenario(all_traces(), config=small_config(n_nodes=5), seed=0)
    nodes = scenario.nodes
    assert len(nodes) == 5 and len(set(nodes.names)) == 5
    classes = dict(zip(nodes.names, nodes.power_class, strict=True))
    assert classes["n-small"] == "small" and classes["n-medium"] == "medium" and classes["n-large"] == "large"


def test_same_seed_same_scenario_and_different_seed_differs():
    def fingerprint(seed: int) -> list:
        s = build_scenario(all_traces(), config=small_config(n_applications=2), seed=seed)
        return [w.request_rate_per_second.tolist() + [w.cpu_per_request_millicore_seconds] for w in s.workloads]

    assert fingerprint(3) == fingerprint(3)
    assert fingerprint(3) != fingerprint(4)


def test_background_pods_from_the_pod_stream():
    config = small_config(n_background_pods=3, background_time_scale=0.5)
    scenario = build_scenario(all_traces() + [pod_stream()], config=config, seed=0)
    background = scenario.background
    assert background.names == ("background/p0", "background/p1", "background/p2")
    np.testing.assert_allclose(background.arrival_seconds, [0.0, 30.0, 150.0])
    np.testing.assert_allclose(background.departure_seconds, [300.0, np.inf, 450.0])
    np.testing.assert_allclose(background.cpu_usage_millicores,
                               np.array([1000.0, 2000.0, 4000.0]) * config.background_cpu_utilisation)


@pytest.mark.parametrize(
    ("drop", "message"),
    [(0, "node inventory"), (1, "call graphs"), (2, "request-rate series")],
)
def test_missing_inputs_are_named(drop, message):
    inputs = all_traces()
    del inputs[drop]
    with pytest.raises(ValueError, match=message):
        build_scenario(inputs, config=small_config())


def test_graphs_larger_than_the_cap_are_not_used():
    with pytest.raises(ValueError, match="max_workloads_per_application=2"):
        build_scenario(all_traces(), config=small_config(max_workloads_per_application=2))


def test_background_pods_need_a_pod_stream():
    with pytest.raises(ValueError, match="pod stream"):
        build_scenario(all_traces(), config=small_config(n_background_pods=2))


def test_without_cpu_and_memory_series_shapes_are_flat():
    scenario = build_scenario([inventory(), graph(), usage(rate=3.0)], config=small_config(), seed=0)
    for spec in scenario.workloads:
        np.testing.assert_allclose(spec.cpu_baseline_millicores, ScenarioConfig().baseline_cpu_millicores)
        assert np.ptp(spec.memory_per_pod_bytes) == 0.0


@pytest.mark.parametrize(
    ("values", "from_step", "to_step", "expected"),
    [
        ([1.0, 2.0, 3.0, 4.0], 30.0, 60.0, [1.5, 3.5]),  # averaging
        ([1.0, 2.0], 300.0, 120.0, [1.0, 1.0, 1.5, 2.0, 2.0]),  # sample-and-hold, mixed bin
        ([1.0, np.nan, 3.0], 60.0, 60.0, [1.0, 2.0, 3.0]),  # gaps interpolated
        ([2.0, 4.0, 6.0], 57.0, 57.0, [2.0, 4.0, 6.0]),
    ],
)
def test_resample(values, from_step, to_step, expected):
    np.testing.assert_allclose(_resample(np.array(values), from_step, to_step), expected)


def test_config_validation_names_the_field():
    with pytest.raises(ValueError, match="ScenarioConfig.energy_weight_range"):
        ScenarioConfig(energy_weight_range=(0.5, 1.5))
    with pytest.raises(ValueError, match="ScenarioConfig.n_nodes"):
        ScenarioConfig(n_nodes=0)
    with pytest.raises(ValueError, match="ScenarioConfig.cache_cpu_per_request_millicore_seconds"):
        ScenarioConfig(cache_cpu_per_request_millicore_seconds=(0.0, 1.0))


def _shipped(pattern: str) -> Trace:
    matches = sorted((REPO / "traces").glob(pattern))
    assert matches, f"no trace slice matches traces/{pattern}"
    return traces.load(matches[0])


def test_shipped_trace_slices_build_a_scenario_that_runs():
    loaded = [
        _shipped("alibaba-openb/nodes*"),
        _shipped("alibaba-openb/pods*train*"),
        _shipped("alibaba-callgraphs/*train*"),
        _shipped("alibaba-genai/*train*"),
        _shipped("azure-llm/*train*"),
        _shipped("bitbrains-rnd/*train*"),
        _shipped("vasim-alibaba/*train*"),
    ]
    config = ScenarioConfig(n_nodes=12, n_applications=3, n_background_pods=20, horizon_seconds=3600.0)
    scenario = build_scenario(loaded, config=config, seed=0)
    again = build_scenario(loaded, config=config, seed=0)
    assert ([dataclasses.astuple(w)[0] for w in scenario.workloads]
            == [dataclasses.astuple(w)[0] for w in again.workloads])
    sim = Simulator(scenario, seed=0)
    for _ in range(30):
        for pod in sim.pending_pods():
            any(sim.bind(pod, n) for n in range(len(sim.node_names)))
        result = sim.step()
        assert np.isfinite(result.node_watts).all()
        assert np.isfinite(result.workload_latency_p95_seconds).all()
    sim.snapshot()
