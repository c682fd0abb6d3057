"""The pure part of trace replay (thrifty.replay): annotations, signals, demand, split, latency."""

from __future__ import annotations

import math

import numpy as np
import pytest

from thrifty import replay
from thrifty.config import LatencyModelConfig
from thrifty.replay import (
    CPU_PER_REQUEST_ANNOTATION,
    RATE_ANNOTATION,
    RATE_SCALE_ANNOTATION,
    TRACE_ANNOTATION,
    ReplayAnnotationError,
    ReplicaCpu,
    Signal,
    WorkloadSignals,
)
from thrifty.traces import ContainerUsage, Trace

WORKLOAD = "demo/web"
MI = 2**20


def _usage(name: str, cpu=None, memory=None, rate=None, step: float = 60.0, n: int = 4) -> ContainerUsage:
    nan = np.full(n, np.nan)
    return ContainerUsage(
        name=name,
        step_seconds=step,
        start_seconds=0.0,
        cpu_usage_millicores=nan if cpu is None else np.asarray(cpu, dtype=float),
        memory_usage_bytes=nan if memory is None else np.asarray(memory, dtype=float),
        request_rate_per_second=nan if rate is None else np.asarray(rate, dtype=float),
    )


TRACES = {
    "vms.tar.xz": Trace(
        source="bitbrains",
        path="vms.tar.xz",
        containers=(
            _usage("17", cpu=[100, 200, 300, 400], memory=[1 * MI, 2 * MI, 3 * MI, 4 * MI]),
            _usage("cpu-only", cpu=[1, 2, 3, 4]),
        ),
    ),
    "rate.csv": Trace(source="azure-llm", path="rate.csv", containers=(_usage("rate", rate=[1, 2, 3, 4], step=10.0),)),
}


def _load(path: str) -> Trace:
    if path not in TRACES:
        raise FileNotFoundError(f"no such file: {path}")
    return TRACES[path]


# --- annotations -----------------------------------------------------------------------------


def test_workload_without_replay_annotations_is_not_replayed():
    assert replay.parse_replay_spec(WORKLOAD, {"other.io/x": "1"}) is None


def test_full_spec_is_parsed():
    spec = replay.parse_replay_spec(
        WORKLOAD,
        {
            TRACE_ANNOTATION: " vms.tar.xz#17 ",
            RATE_ANNOTATION: "rate.csv",
            RATE_SCALE_ANNOTATION: "2.5",
            CPU_PER_REQUEST_ANNOTATION: "0.05",
            replay.CONTAINER_ANNOTATION: "app",
        },
    )
    assert spec == replay.ReplaySpec(
        usage=replay.SeriesRef("vms.tar.xz", "17"),
        rate=replay.SeriesRef("rate.csv", None),
        rate_scale=2.5,
        cpu_seconds_per_request=0.05,
        container="app",
    )


def test_defaults():
    spec = replay.parse_replay_spec(WORKLOAD, {TRACE_ANNOTATION: "vms.tar.xz#17"})
    assert spec.rate is None and spec.rate_scale == 1.0 and spec.container is None
    assert spec.cpu_seconds_per_request == replay.DEFAULT_CPU_SECONDS_PER_REQUEST


@pytest.mark.parametrize(
    ("annotations", "named", "says"),
    [
        ({RATE_ANNOTATION: "rate.csv"}, TRACE_ANNOTATION, "missing"),
        (
            {TRACE_ANNOTATION: "vms.tar.xz#17", "thrifty.dev/replay-rat": "rate.csv"},
            "thrifty.dev/replay-rat",
            "unknown",
        ),
        ({TRACE_ANNOTATION: "#17"}, TRACE_ANNOTATION, "no trace path"),
        ({TRACE_ANNOTATION: "vms.tar.xz#"}, TRACE_ANNOTATION, "empty series"),
        (
            {TRACE_ANNOTATION: "vms.tar.xz#17", CPU_PER_REQUEST_ANNOTATION: "fast"},
            CPU_PER_REQUEST_ANNOTATION,
            "not a number",
        ),
        ({TRACE_ANNOTATION: "vms.tar.xz#17", CPU_PER_REQUEST_ANNOTATION: "0"}, CPU_PER_REQUEST_ANNOTATION, "positive"),
        (
            {TRACE_ANNOTATION: "vms.tar.xz#17", RATE_ANNOTATION: "r", RATE_SCALE_ANNOTATION: "inf"},
            RATE_SCALE_ANNOTATION,
            "finite",
        ),
        ({TRACE_ANNOTATION: "vms.tar.xz#17", RATE_SCALE_ANNOTATION: "2"}, RATE_SCALE_ANNOTATION, "without"),
        ({TRACE_ANNOTATION: "vms.tar.xz#17", replay.CONTAINER_ANNOTATION: " "}, replay.CONTAINER_ANNOTATION, "empty"),
    ],
)
def test_bad_annotations_name_the_annotation_and_the_workload(annotations, named, says):
    with pytest.raises(ReplayAnnotationError) as err:
        replay.parse_replay_spec(WORKLOAD, annotations)
    assert err.value.annotation == named
    assert named in str(err.value) and WORKLOAD in str(err.value) and says in str(err.value)


# --- signals ---------------------------------------------------------------------------------


def test_signal_interpolates_and_wraps_around():
    signal = Signal(step_seconds=10.0, values=np.array([0.0, 10.0, 20.0]))
    assert signal.at(0) == 0.0
    assert signal.at(5) == pytest.approx(5.0)
    assert signal.at(25) == pytest.approx(10.0)  # between the last sample and the first again
    assert signal.at(30 + 15) == pytest.approx(15.0)  # one period later


def test_signal_bridges_gaps_and_rejects_an_empty_series():
    signal = Signal.from_samples(np.array([np.nan, 2.0, np.nan, 4.0, np.nan]), 1.0)
    np.testing.assert_allclose(signal.values, [2.0, 2.0, 3.0, 4.0, 4.0])
    assert Signal.from_samples(np.full(3, np.nan), 1.0) is None


def test_resolve_signals_with_and_without_rate():
    usage_only = replay.resolve_signals(
        replay.parse_replay_spec(WORKLOAD, {TRACE_ANNOTATION: "vms.tar.xz#17"}), WORKLOAD, _load
    )
    assert usage_only.request_rate_per_second is None and usage_only.cpu_millicores.at(60) == 200
    with_rate = replay.resolve_signals(
        replay.parse_replay_spec(
            WORKLOAD, {TRACE_ANNOTATION: "vms.tar.xz#17", RATE_ANNOTATION: "rate.csv", RATE_SCALE_ANNOTATION: "10"}
        ),
        WORKLOAD,
        _load,
    )
    assert with_rate.cpu_millicores is None
    assert with_rate.request_rate_per_second.at(10) == pytest.approx(20.0)  # sample 1 (2 req/s) x 10


@pytest.mark.parametrize(
    ("annotations", "named", "says"),
    [
        ({TRACE_ANNOTATION: "missing.csv#1"}, TRACE_ANNOTATION, "cannot load missing.csv"),
        ({TRACE_ANNOTATION: "vms.tar.xz#99"}, TRACE_ANNOTATION, "no series '99' in vms.tar.xz (it has 17, cpu-only)"),
        ({TRACE_ANNOTATION: "vms.tar.xz"}, TRACE_ANNOTATION, "has 2 series"),
        ({TRACE_ANNOTATION: "vms.tar.xz#cpu-only"}, TRACE_ANNOTATION, "no memory samples"),
        (
            {TRACE_ANNOTATION: "vms.tar.xz#17", RATE_ANNOTATION: "vms.tar.xz#17"},
            RATE_ANNOTATION,
            "no request-rate samples",
        ),
    ],
)
def test_series_problems_name_the_annotation(annotations, named, says):
    spec = replay.parse_replay_spec(WORKLOAD, annotations)
    with pytest.raises(ReplayAnnotationError) as err:
        replay.resolve_signals(spec, WORKLOAD, _load)
    assert err.value.annotation == named and says in str(err.value)


# --- demand, split, latency ------------------------------------------------------------------


def _signals(cpu=None, rate=None) -> WorkloadSignals:
    const = lambda v: None if v is None else Signal(step_seconds=1.0, values=np.array([float(v)]))  # noqa: E731
    return WorkloadSignals(memory_bytes=const(64 * MI), cpu_millicores=const(cpu), request_rate_per_second=const(rate))


def test_rate_drives_cpu_demand():
    demand = replay.demand_at(_signals(rate=50.0), cpu_seconds_per_request=0.02, trace_seconds=0.0)
    assert demand.request_rate_per_second == 50.0
    assert demand.cpu_millicores == pytest.approx(1000.0)  # 50 req/s x 20 ms of CPU
    assert demand.memory_bytes_per_replica == 64 * MI


def test_cpu_drives_the_request_rate():
    demand = replay.demand_at(_signals(cpu=500.0), cpu_seconds_per_request=0.01, trace_seconds=0.0)
    assert demand.cpu_millicores == 500.0 and demand.request_rate_per_second == pytest.approx(50.0)


def test_demand_is_split_evenly_and_capped_at_each_limit():
    replicas = [ReplicaCpu(100.0, 1000.0), ReplicaCpu(100.0, 200.0), ReplicaCpu(100.0, math.inf)]
    np.testing.assert_allclose(replay.split_cpu(900.0, replicas), [300.0, 200.0, 300.0])
    assert replay.split_cpu(900.0, []).size == 0
    np.testing.assert_allclose(replay.split_cpu(-5.0, replicas[:1]), [0.0])


def test_available_cpu_is_the_limit_else_the_request():
    assert ReplicaCpu(100.0, 400.0).available_millicores == 400.0
    assert ReplicaCpu(100.0, math.inf).available_millicores == 100.0
    assert math.isnan(ReplicaCpu(math.nan, math.inf).available_millicores)


def test_latency_is_mm1_for_one_replica_and_falls_with_more():
    demand = replay.Demand(cpu_millicores=400.0, memory_bytes_per_replica=0.0, request_rate_per_second=20.0)
    one = [ReplicaCpu(500.0, 500.0)]  # mu = 500 m / 20 m = 25 req/s
    p95, utilisation = replay.modelled_latency_p95_seconds(demand, one, 0.02)
    assert p95 == pytest.approx(math.log(20.0) / (25.0 - 20.0))  # M/M/1: ln(1/0.05)/(mu - lambda)
    assert utilisation == pytest.approx(0.8)
    p95_two, _ = replay.modelled_latency_p95_seconds(demand, one * 2, 0.02)
    assert p95_two < p95


def test_no_running_replica_under_load_is_saturated():
    demand = replay.Demand(cpu_millicores=400.0, memory_bytes_per_replica=0.0, request_rate_per_second=20.0)
    p95, utilisation = replay.modelled_latency_p95_seconds(demand, [], 0.02)
    assert p95 == LatencyModelConfig().saturated_latency_seconds and utilisation == math.inf


def test_resource_usage_manifest():
    manifest = replay.resource_usage_manifest(
        namespace="demo",
        pod_name="web-abc",
        pod_uid="u-1",
        workload="web",
        container="app",
        cpu_millicores=123.4,
        memory_bytes=5e6,
    )
    assert manifest["kind"] == "ResourceUsage" and manifest["metadata"]["name"] == "web-abc"
    assert manifest["metadata"]["ownerReferences"] == [
        {"apiVersion": "v1", "kind": "Pod", "name": "web-abc", "uid": "u-1"}
    ]
    assert manifest["metadata"]["labels"][replay.WORKLOAD_LABEL] == "web"
    ours, others = manifest["spec"]["usages"]
    assert ours == {"containers": ["app"], "usage": {"cpu": {"value": "123m"}, "memory": {"value": "5000000"}}}
    assert "containers" not in others  # kwok's fallback entry for every other container
