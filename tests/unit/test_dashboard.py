"""The Grafana dashboard: the committed JSON is the generated one, and every query reads metrics
the operator exports. (tests/cluster/test_prometheus.py runs the queries against a real
Prometheus.)"""

from __future__ import annotations

import json
import re

from prometheus_client import CollectorRegistry

from tests.conftest import REPO
from thrifty import dashboard
from thrifty.cli import main
from thrifty.metrics import Metrics

COMMITTED = REPO / "manifests" / "grafana" / "thrifty.json"
METRIC_NAME = re.compile(r"\bthrifty_[a-z0-9_]+")
SAMPLE_SUFFIXES = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count"),
                   "info": ("_info",)}


def _exported_series() -> set[str]:
    """Every series name the operator's /metrics can expose."""
    registry = CollectorRegistry()
    Metrics(registry)
    return {family.name + suffix for family in registry.collect() for suffix in SAMPLE_SUFFIXES[family.type]}


def test_committed_dashboard_is_the_generated_one() -> None:
    assert COMMITTED.read_text() == dashboard.render(dashboard.build()), (
        f"{COMMITTED.relative_to(REPO)} is stale: run `thrifty dashboard --out {COMMITTED.relative_to(REPO)}`")


def test_cli_writes_the_generated_dashboard(tmp_path) -> None:
    out = tmp_path / "dashboard.json"
    assert main(["dashboard", "--out", str(out)]) == 0
    assert json.loads(out.read_text()) == dashboard.build()


def test_every_query_reads_exported_metrics() -> None:
    exported = _exported_series()
    unknown = {(title, name) for title, expr in dashboard.queries(dashboard.build())
               for name in METRIC_NAME.findall(expr) if name not in exported}
    assert not unknown, f"panels query series that thrifty.metrics does not export: {sorted(unknown)}"


def test_quantiles_come_from_bucket_series_by_le() -> None:
    quantiles = [expr for _, expr in dashboard.queries(dashboard.build()) if "histogram_quantile" in expr]
    assert quantiles, "no latency panel"
    for expr in quantiles:
        assert re.search(r"sum by \(le\b[^)]*\) \(rate\(thrifty_\w+_bucket\[", expr), expr


def test_panels_are_complete_and_do_not_overlap() -> None:
    panels = dashboard.build()["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), f"duplicate panel ids: {ids}"
    taken: set[tuple[int, int]] = set()
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= dashboard.GRID_WIDTH, panel["title"]
        cells = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"])
                 for y in range(grid["y"], grid["y"] + grid["h"])}
        assert not cells & taken, f"panel {panel['title']!r} overlaps another"
        taken |= cells
        if panel["type"] == "row":
            continue
        assert panel["description"] and panel["fieldConfig"]["defaults"]["unit"], panel["title"]
        assert panel["datasource"] == dashboard.DATASOURCE
        assert [t["refId"] for t in panel["targets"]] == [chr(ord("A") + i) for i in range(len(panel["targets"]))]


def test_covers_what_users_watch() -> None:
    """Energy (node, workload, cluster), reward, SLO, decisions, decision latency, replicas,
    resources, policy and fallbacks each have a panel."""
    exprs = " ".join(expr for _, expr in dashboard.queries(dashboard.build()))
    for metric in ("thrifty_node_power_watts", "thrifty_node_energy_joules_total", "thrifty_workload_power_watts",
                   "thrifty_workload_energy_joules_total", "thrifty_cluster_power_watts",
                   "thrifty_cluster_energy_joules_total", "thrifty_reward", "thrifty_slo_attainment_ratio",
                   "thrifty_decisions_total", "thrifty_decision_duration_seconds_bucket", "thrifty_workload_replicas",
                   "thrifty_workload_cpu_request_cores", "thrifty_workload_memory_request_bytes",
                   "thrifty_policy_info", "thrifty_policy_fallbacks_total", "thrifty_pods_pending",
                   "thrifty_pods_pending_oldest_seconds", "thrifty_reconcile_errors_total",
                   "thrifty_kube_api_requests_total", "thrifty_build_info"):
        assert metric in exprs, f"no panel shows {metric}"


def test_per_workload_panels_filter_and_group_by_namespace_and_rlworkload() -> None:
    """The labels kube-state-metrics joins on, filtered by the dashboard's two variables."""
    built = dashboard.build()
    variables = {v["name"]: v for v in built["templating"]["list"]}
    assert "label_values(thrifty_workload_replicas, namespace)" == variables["namespace"]["definition"]
    assert '$namespace' in variables["rlworkload"]["definition"]
    per_workload = [(title, expr) for title, expr in dashboard.queries(built) if "thrifty_workload_" in expr
                    or any(m in expr for m in ("thrifty_reward", "thrifty_slo_attainment", "thrifty_latency_p95"))]
    assert len(per_workload) == 8, per_workload
    for title, expr in per_workload:
        assert 'namespace=~"$namespace", rlworkload=~"$rlworkload"' in expr, title
        assert re.search(r"by \(namespace, rlworkload\b", expr), title
    assert not any(re.search(r"\bworkload\b", expr) for _, expr in dashboard.queries(built))
