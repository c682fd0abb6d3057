"""metrics: names, units, label sets and bookkeeping, each test on a fresh registry."""

from __future__ import annotations

import importlib.metadata
import math
import platform
import urllib.request

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.operator import free_port
from thrifty import __version__
from thrifty.metrics import (
    API_OUTCOMES,
    DECISION_BUCKETS_SECONDS,
    DECISION_KINDS,
    FALLBACK_KINDS,
    OUTCOMES,
    RECONCILE_KINDS,
    SOURCES,
    Metrics,
)
from thrifty.policy.base import PolicyInfo


def families(metrics: Metrics) -> dict:
    text = generate_latest(metrics.registry).decode()
    return {f.name: f for f in text_string_to_metric_families(text)}


def value(metrics: Metrics, sample: str, **labels: str) -> float | None:
    for family in families(metrics).values():
        for s in family.samples:
            if s.name == sample and s.labels == labels:
                return s.value
    return None


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


W = {"namespace", "rlworkload"}
"""The labels of a per-workload series: kube-state-metrics' ``namespace``, and the name."""

EXPECTED = {
    # family: (type, label names)
    "thrifty_reward": ("gauge", W),
    "thrifty_node_power_watts": ("gauge", {"node"}),
    "thrifty_node_energy_joules": ("counter", {"node"}),
    "thrifty_workload_power_watts": ("gauge", W),
    "thrifty_workload_energy_joules": ("counter", W),
    "thrifty_cluster_power_watts": ("gauge", set()),
    "thrifty_cluster_energy_joules": ("counter", set()),
    "thrifty_decisions": ("counter", {"kind", "outcome"}),
    "thrifty_decision_duration_seconds": ("histogram", {"step"}),
    "thrifty_step_duration_seconds": ("histogram", {"step"}),
    "thrifty_placement_latency_seconds": ("histogram", set()),
    "thrifty_slo_attainment_ratio": ("gauge", W),
    "thrifty_latency_p95_seconds": ("gauge", W),
    "thrifty_workload_replicas": ("gauge", W),
    "thrifty_workload_cpu_request_cores": ("gauge", {"namespace", "rlworkload", "container"}),
    "thrifty_workload_memory_request_bytes": ("gauge", {"namespace", "rlworkload", "container"}),
    "thrifty_policy_info": ("gauge", {"name", "version", "backend"}),
    "thrifty_policy_fallbacks": ("counter", {"kind"}),
    "thrifty_metrics_source_up": ("gauge", {"source"}),
    "thrifty_metrics_source_errors": ("counter", {"source"}),
    "thrifty_build_info": ("gauge", {"version", "python_version", "kopf_version"}),
    "thrifty_pods_pending": ("gauge", set()),
    "thrifty_pods_pending_oldest_seconds": ("gauge", set()),
    "thrifty_kube_api_requests": ("counter", {"verb", "resource", "outcome"}),
    "thrifty_reconcile_errors": ("counter", {"kind"}),
    "thrifty_watch_events": ("counter", {"kind"}),
}


def fill(metrics: Metrics) -> None:
    """One of everything, as after a few steps."""
    metrics.set_policy(PolicyInfo(name="rl", version="abc", backend="numpy"))
    metrics.set_node_power({"node-1": 100.0, "node-2": 60.0}, elapsed_seconds=2.0)
    metrics.set_workload("ns", "web", watts=30.0, elapsed_seconds=2.0, replicas=3, reward=-0.5,
                         latency_p95_seconds=0.18, slo_attainment=0.9)
    metrics.set_container_requests("ns", "web", {"app": (0.25, 128 * 2**20), "proxy": (0.05, 64 * 2**20)})
    metrics.count_decision("Horizontal", "Applied")
    metrics.count_fallback("sizing")
    metrics.set_source("prometheus", up=False)
    metrics.set_source("metrics-api", up=True)
    metrics.decision_duration.labels("sizing").observe(0.002)
    metrics.step_duration.labels("placement").observe(0.05)
    metrics.placement_latency.observe(1.5)
    metrics.count_api_request("list", "pods", 200)
    metrics.pending_pods.waiting("ns/web-0", 0.0)
    metrics.watch_events.labels("pods").inc()


@pytest.mark.parametrize(("name", "kind", "labels"), [(n, kind, labels) for n, (kind, labels) in EXPECTED.items()])
def test_names_types_and_label_sets(metrics: Metrics, name: str, kind: str, labels: set[str]) -> None:
    fill(metrics)
    family = families(metrics)[name]
    assert family.type == kind
    assert family.samples, f"{name} has no samples"
    for sample in family.samples:
        assert set(sample.labels) - {"le"} == labels, (sample.name, sample.labels)


def test_every_name_is_prefixed_base_unit_and_counters_end_in_total(metrics: Metrics) -> None:
    fill(metrics)
    text = generate_latest(metrics.registry).decode()
    names = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}
    assert names and all(name.startswith("thrifty_") for name in names)
    for family in families(metrics).values():
        if family.type == "counter":
            assert all(s.name.endswith("_total") for s in family.samples), family.name
    assert not any(name.endswith(("_created", "_milliseconds", "_kilowatts", "_percent")) for name in names)


def test_a_fresh_registry_per_object() -> None:
    first, second = Metrics(), Metrics()
    first.count_decision("placement", "applied")
    assert value(first, "thrifty_decisions_total", kind="placement", outcome="applied") == 1.0
    assert value(second, "thrifty_decisions_total", kind="placement", outcome="applied") == 0.0


def test_bounded_label_values_exist_from_the_start(metrics: Metrics) -> None:
    for kind in DECISION_KINDS:
        for outcome in OUTCOMES:
            assert value(metrics, "thrifty_decisions_total", kind=kind, outcome=outcome) == 0.0
    for kind in FALLBACK_KINDS:
        assert value(metrics, "thrifty_policy_fallbacks_total", kind=kind) == 0.0
    for source in SOURCES:
        assert value(metrics, "thrifty_metrics_source_errors_total", source=source) == 0.0
    for kind in RECONCILE_KINDS:
        assert value(metrics, "thrifty_reconcile_errors_total", kind=kind) == 0.0
    assert value(metrics, "thrifty_pods_pending") == 0.0
    assert value(metrics, "thrifty_pods_pending_oldest_seconds") == 0.0


def test_energy_integrates_power_over_time(metrics: Metrics) -> None:
    metrics.set_node_power({"a": 100.0, "b": 50.0}, elapsed_seconds=0.0)
    metrics.set_node_power({"a": 100.0, "b": 50.0}, elapsed_seconds=10.0)
    assert value(metrics, "thrifty_node_energy_joules_total", node="a") == 1000.0
    assert value(metrics, "thrifty_cluster_energy_joules_total") == 1500.0
    assert value(metrics, "thrifty_cluster_power_watts") == 150.0
    metrics.set_workload("ns", "web", watts=20.0, elapsed_seconds=3.0, replicas=1, reward=-1.0,
                         latency_p95_seconds=math.nan, slo_attainment=None)
    metrics.set_workload("ns", "web", watts=20.0, elapsed_seconds=3.0, replicas=1, reward=-1.0,
                         latency_p95_seconds=math.nan, slo_attainment=None)
    assert value(metrics, "thrifty_workload_energy_joules_total", namespace="ns", rlworkload="web") == 120.0
    assert value(metrics, "thrifty_latency_p95_seconds", namespace="ns", rlworkload="web") is None  # unknown: left out
    assert value(metrics, "thrifty_slo_attainment_ratio", namespace="ns", rlworkload="web") is None


def test_series_of_gone_nodes_and_workloads_are_removed(metrics: Metrics) -> None:
    fill(metrics)
    metrics.set_node_power({"node-1": 90.0}, elapsed_seconds=1.0)
    assert value(metrics, "thrifty_node_power_watts", node="node-2") is None
    assert value(metrics, "thrifty_node_energy_joules_total", node="node-2") is None
    metrics.set_container_requests("ns", "web", {"app": (0.5, 128 * 2**20)})
    web = {"namespace": "ns", "rlworkload": "web"}
    assert value(metrics, "thrifty_workload_cpu_request_cores", **web, container="proxy") is None
    assert value(metrics, "thrifty_workload_cpu_request_cores", **web, container="app") == 0.5
    metrics.forget_workload("ns", "web")
    metrics.forget_workload("ns", "never-seen")
    assert not [s for f in families(metrics).values() for s in f.samples if s.labels.get("rlworkload")]


def test_sources_and_fallbacks(metrics: Metrics) -> None:
    metrics.set_source("prometheus", up=False)
    metrics.set_source("prometheus", up=False)
    metrics.set_source("prometheus", up=True)
    assert value(metrics, "thrifty_metrics_source_up", source="prometheus") == 1.0
    assert value(metrics, "thrifty_metrics_source_errors_total", source="prometheus") == 2.0
    metrics.count_fallback("load")
    assert value(metrics, "thrifty_policy_fallbacks_total", kind="load") == 1.0
    metrics.set_policy(PolicyInfo(name="heuristic", version="0.1.0", backend="heuristic"))
    assert value(metrics, "thrifty_policy_info", name="heuristic", version="0.1.0", backend="heuristic") == 1.0


def test_histograms_use_the_explicit_buckets(metrics: Metrics) -> None:
    metrics.decision_duration.labels("placement").observe(0.003)
    buckets = [s for s in families(metrics)["thrifty_decision_duration_seconds"].samples
               if s.name.endswith("_bucket")]
    assert [float(s.labels["le"]) for s in buckets] == [*DECISION_BUCKETS_SECONDS, math.inf]
    assert value(metrics, "thrifty_decision_duration_seconds_count", step="placement") == 1.0


def test_serves_metrics_over_http(metrics: Metrics) -> None:
    fill(metrics)
    port = free_port()
    metrics.serve(port, "127.0.0.1")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    assert 'thrifty_policy_info{backend="numpy",name="rl",version="abc"} 1.0' in text
    with pytest.raises(OSError):
        Metrics().serve(port, "127.0.0.1")  # taken: the operator reports it as a --metrics-port error


def test_build_info_names_the_running_versions(metrics: Metrics) -> None:
    [sample] = families(metrics)["thrifty_build_info"].samples
    assert sample.value == 1.0
    assert sample.labels == {"version": __version__, "python_version": platform.python_version(),
                             "kopf_version": importlib.metadata.version("kopf")}
    assert __version__ == importlib.metadata.version("thrifty")  # from the package metadata


@pytest.mark.parametrize(("status", "outcome"), [
    (200, "success"), (201, "success"), (404, "client-error"), (409, "client-error"),
    (500, "server-error"), (503, "server-error"), (0, "no-response"),
])
def test_api_requests_are_counted_by_outcome(metrics: Metrics, status: int, outcome: str) -> None:
    metrics.count_api_request("create", "pods/binding", status)
    metrics.count_api_request("create", "pods/binding", status)
    assert value(metrics, "thrifty_kube_api_requests_total", verb="create", resource="pods/binding",
                 outcome=outcome) == 2.0
    outcomes = {s.labels["outcome"] for s in families(metrics)["thrifty_kube_api_requests"].samples}
    assert outcomes == {outcome} and outcomes <= set(API_OUTCOMES)


def test_reconcile_errors_are_counted_by_kind(metrics: Metrics) -> None:
    metrics.count_reconcile_error("sizing")
    assert value(metrics, "thrifty_reconcile_errors_total", kind="sizing") == 1.0
    assert value(metrics, "thrifty_reconcile_errors_total", kind="placement") == 0.0


def test_pending_pods_count_and_oldest_wait() -> None:
    now = [1000.0]
    metrics = Metrics(clock=lambda: now[0])
    metrics.pending_pods.waiting("a/p-0", 940.0)
    metrics.pending_pods.waiting("b/q-0", 990.0)
    metrics.pending_pods.waiting("b/q-0", 990.0)  # a second event of the same pod
    assert value(metrics, "thrifty_pods_pending") == 2.0
    assert value(metrics, "thrifty_pods_pending_oldest_seconds") == 60.0
    now[0] = 1030.0  # the wait grows between events
    assert value(metrics, "thrifty_pods_pending_oldest_seconds") == 90.0
    metrics.pending_pods.done("a/p-0")
    metrics.pending_pods.done("a/never-seen")
    assert value(metrics, "thrifty_pods_pending") == 1.0
    assert value(metrics, "thrifty_pods_pending_oldest_seconds") == 40.0
    metrics.pending_pods.replace({"c/r-0": 1020.0, "c/r-1": math.nan})  # a sweep's full list
    assert value(metrics, "thrifty_pods_pending") == 2.0
    assert value(metrics, "thrifty_pods_pending_oldest_seconds") == 10.0
    metrics.pending_pods.replace({})
    assert value(metrics, "thrifty_pods_pending") == 0.0
    assert value(metrics, "thrifty_pods_pending_oldest_seconds") == 0.0
