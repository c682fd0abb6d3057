"""The Grafana dashboard of Thrifty's Prometheus metrics (:mod:`thrifty.metrics`), as code.

``thrifty dashboard --out manifests/grafana/thrifty.json`` writes it; a unit test checks that the
committed file is what this module generates, and a cluster test runs every query against a real
Prometheus scraping a real operator.

Why a small typed builder and not grafanalib: grafanalib's last release (0.7.1) dates from
January 2024, and its maintainer, Weaveworks, has closed since; it would also add a dependency to
the operator's image for a command only developers run. The dashboard needs four panel types, and
a few dataclasses that emit Grafana's JSON model (schemaVersion 39, Grafana 10 and later) are
easier to review than a wrapper around it.

Aggregation across the operator's replicas (both are scraped, only one acts): gauges take
``max`` (the standby's are absent or 0), counters take ``sum`` of ``increase``/``rate`` (the
standby's never grow, and after a fail-over each replica contributes the part it counted).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

UID = "thrifty"
SCHEMA_VERSION = 39
GRID_WIDTH = 24
"""Grafana's grid is 24 columns wide."""
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
"""Every panel queries the Prometheus picked in the dashboard's ``datasource`` variable."""
WORKLOADS = 'namespace=~"$namespace", rlworkload=~"$rlworkload"'
"""The matchers of the ``namespace`` and ``rlworkload`` variables (``.*`` when All is picked)."""
BY_WORKLOAD = "namespace, rlworkload"
"""The labels of a per-workload series (``namespace`` joins with kube-state-metrics)."""
WORKLOAD_LEGEND = "{{namespace}}/{{rlworkload}}"


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str


@dataclass(frozen=True)
class Panel:
    title: str
    description: str
    queries: tuple[Query, ...]
    unit: str
    """A Grafana unit id (``watt``, ``watth``, ``s``, ``percentunit``, ``opm``, ``bytes`` ...)."""
    kind: str = "timeseries"
    """``timeseries``, ``stat``, ``bargauge`` or ``table``."""
    width: int = 12
    height: int = 8

    def __post_init__(self) -> None:
        if self.kind not in ("timeseries", "stat", "bargauge", "table"):
            raise ValueError(f"Panel.kind: unknown panel type {self.kind!r} in {self.title!r}")
        if not 1 <= self.width <= GRID_WIDTH:
            raise ValueError(f"Panel.width: must be 1 to {GRID_WIDTH}, got {self.width} in {self.title!r}")
        if not self.queries:
            raise ValueError(f"Panel.queries: {self.title!r} has none")


@dataclass(frozen=True)
class Row:
    title: str
    panels: tuple[Panel, ...]


def _quantiles(histogram: str, by: str = "") -> tuple[Query, ...]:
    """p50 and p95 of a histogram, from the rate of its ``_bucket`` series, per label ``by``."""
    group = f"le, {by}" if by else "le"
    label = f" {{{{{by}}}}}" if by else ""
    return tuple(
        Query(f"histogram_quantile({q}, sum by ({group}) (rate({histogram}_bucket[$__rate_interval])))",
              f"p{round(q * 100)}{label}")
        for q in (0.5, 0.95)
    )


ROWS: tuple[Row, ...] = (
    Row("Energy", (
        Panel("Cluster power", "Estimated power draw of all nodes (the operator's power model).",
              (Query("max(thrifty_cluster_power_watts)", "cluster"),), "watt", width=16),
        Panel("Cluster energy", "Energy used by all nodes over the dashboard's time range.",
              (Query("sum(increase(thrifty_cluster_energy_joules_total[$__range])) / 3600", "cluster"),),
              "watth", kind="stat", width=8),
        Panel("Power per node", "Estimated power draw of each node. An empty node in standby draws its "
                                "standby power.",
              (Query("max by (node) (thrifty_node_power_watts)", "{{node}}"),), "watt", width=16),
        Panel("Energy per node", "Energy each node used over the dashboard's time range.",
              (Query("sum by (node) (increase(thrifty_node_energy_joules_total[$__range])) / 3600", "{{node}}"),),
              "watth", kind="bargauge", width=8),
        Panel("Power per workload", "Power attributed to each RLWorkload's pods: their CPU share of their "
                                    "nodes' power, as Kepler attributes it.",
              (Query(f"max by ({BY_WORKLOAD}) (thrifty_workload_power_watts{{{WORKLOADS}}})", WORKLOAD_LEGEND),),
              "watt", width=16),
        Panel("Energy per workload", "Energy attributed to each RLWorkload over the dashboard's time range.",
              (Query(f"sum by ({BY_WORKLOAD}) (increase(thrifty_workload_energy_joules_total{{{WORKLOADS}}}"
                     "[$__range])) / 3600", WORKLOAD_LEGEND),),
              "watth", kind="bargauge", width=8),
    )),
    Row("Service level and reward", (
        Panel("SLO attainment", "Fraction of each workload's recent steps whose p95 latency met "
                                "spec.slo.latencyP95Milliseconds (status.sloAttainment).",
              (Query(f"max by ({BY_WORKLOAD}) (thrifty_slo_attainment_ratio{{{WORKLOADS}}})", WORKLOAD_LEGEND),),
              "percentunit", width=8),
        Panel("p95 latency", "Each workload's p95 latency, from its spec.slo.latencyQuery.",
              (Query(f"max by ({BY_WORKLOAD}) (thrifty_latency_p95_seconds{{{WORKLOADS}}})", WORKLOAD_LEGEND),),
              "s", width=8),
        Panel("Reward", "Reward of each workload's last step: minus energy, SLO violation and "
                        "disruption, weighted by spec.objective.energyWeight. Higher is better.",
              (Query(f"max by ({BY_WORKLOAD}) (thrifty_reward{{{WORKLOADS}}})", WORKLOAD_LEGEND),),
              "none", width=8),
    )),
    Row("Decisions", (
        Panel("Decisions by kind and outcome", "Placement, horizontal and vertical decisions per minute, "
                                               "by outcome (Applied, Recommended, Rejected, Failed).",
              (Query("sum by (kind, outcome) (rate(thrifty_decisions_total[$__rate_interval])) * 60",
                     "{{kind}} {{outcome}}"),), "opm"),
        Panel("Decision time", "Time of the pure decision core (policy and safety) for one step.",
              _quantiles("thrifty_decision_duration_seconds", "step"), "s"),
        Panel("Reconcile step time", "Time of a whole step: observe, decide, act and record, API round "
                                     "trips included.",
              _quantiles("thrifty_step_duration_seconds", "step"), "s"),
        Panel("Placement latency", "From a pod's creation to Thrifty binding it: what a pod waits for.",
              _quantiles("thrifty_placement_latency_seconds"), "s"),
    )),
    Row("Replicas and resources", (
        Panel("Replicas", "Pods each RLWorkload has.",
              (Query(f"max by ({BY_WORKLOAD}) (thrifty_workload_replicas{{{WORKLOADS}}})", WORKLOAD_LEGEND),),
              "none", width=8),
        Panel("CPU request per container", "Each workload container's CPU request, as Thrifty sized it.",
              (Query(f"max by ({BY_WORKLOAD}, container) (thrifty_workload_cpu_request_cores{{{WORKLOADS}}})",
                     f"{WORKLOAD_LEGEND}/{{{{container}}}}"),), "short", width=8),
        Panel("Memory request per container", "Each workload container's memory request, as Thrifty sized it.",
              (Query(f"max by ({BY_WORKLOAD}, container) (thrifty_workload_memory_request_bytes{{{WORKLOADS}}})",
                     f"{WORKLOAD_LEGEND}/{{{{container}}}}"),), "bytes", width=8),
    )),
    Row("Policy and metrics sources", (
        Panel("Policy serving", "The policy each operator replica serves (name, version, backend).",
              (Query("max by (name, version, backend) (thrifty_policy_info)", ""),), "none",
              kind="table", width=8),
        Panel("Policy fallbacks", "Steps where the heuristic decided because the policy failed (per "
                                  "interval), and 1 while the policy given to --policy failed to load.",
              (Query('sum by (kind) (increase(thrifty_policy_fallbacks_total{kind!="load"}[$__rate_interval]))',
                     "{{kind}}"),
               Query('max(thrifty_policy_fallbacks_total{kind="load"}) > bool 0', "policy failed to load")),
              "short", width=8),
        Panel("Metrics sources up", "1 while a metrics source answers: metrics-api (metrics-server) and "
                                    "prometheus (spec.slo.latencyQuery). While one is down, sizing holds.",
              (Query("min by (source) (thrifty_metrics_source_up)", "{{source}}"),), "none", width=8),
    )),
    Row("Operator", (
        Panel("Pods waiting for Thrifty", "Pods with schedulerName thrifty that have no node yet. A few for a "
                                          "moment is normal; a steady count means no node has room for them "
                                          "(see the runbook of ThriftyPodsPendingTooLong).",
              (Query("max(thrifty_pods_pending)", "pods"),), "none", width=8),
        Panel("Longest wait for a node", "Time the longest-waiting of those pods has waited since its creation.",
              (Query("max(thrifty_pods_pending_oldest_seconds)", "oldest"),), "s", width=8),
        Panel("Reconcile errors", "Placement sweeps and sizing steps stopped by an error (per interval): "
                                  "the API refused or did not answer, or a bug. The operator's log says why.",
              (Query("sum by (kind) (increase(thrifty_reconcile_errors_total[$__rate_interval]))", "{{kind}}"),),
              "short", width=8),
        Panel("Kubernetes API requests", "Thrifty's own API calls per second by verb, resource and outcome "
                                         "(kopf's watches aside). client-error includes the expected 409s "
                                         "of a pod another replica created.",
              (Query("sum by (verb, resource, outcome) (rate(thrifty_kube_api_requests_total[$__rate_interval]))",
                     "{{verb}} {{resource}} {{outcome}}"),), "reqps", width=16),
        Panel("Operator build", "Version of each running operator replica, and of its Python and kopf.",
              (Query("max by (version, python_version, kopf_version) (thrifty_build_info)", ""),), "none",
              kind="table", width=8),
    )),
)


def _panel_json(panel: Panel, panel_id: int, x: int, y: int) -> dict:
    targets = []
    for index, query in enumerate(panel.queries):
        target: dict[str, object] = {"refId": chr(ord("A") + index), "datasource": DATASOURCE, "expr": query.expr,
                  "legendFormat": query.legend or "__auto"}
        # A table shows the series' labels now; the others plot values over time.
        target.update({"instant": True, "range": False, "format": "table"} if panel.kind == "table"
                      else {"range": True})
        targets.append(target)
    reduce = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}}
    options = {
        "timeseries": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                       "tooltip": {"mode": "multi", "sort": "desc"}},
        "stat": {**reduce, "colorMode": "value", "graphMode": "area", "textMode": "auto"},
        "bargauge": {**reduce, "displayMode": "gradient", "orientation": "horizontal", "showUnfilled": True},
        "table": {"showHeader": True},
    }[panel.kind]
    return {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"h": panel.height, "w": panel.width, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
        "options": options,
        "targets": targets,
    }


def _layout(rows: Sequence[Row]) -> list[dict]:
    """Row headers and their panels, left to right, wrapping at the grid's width."""
    panels, panel_id, y = [], 1, 0
    for row in rows:
        panels.append({"id": panel_id, "type": "row", "title": row.title, "collapsed": False,
                       "gridPos": {"h": 1, "w": GRID_WIDTH, "x": 0, "y": y}, "panels": []})
        panel_id, y = panel_id + 1, y + 1
        x, line_height = 0, 0
        for panel in row.panels:
            if x + panel.width > GRID_WIDTH:
                x, y, line_height = 0, y + line_height, 0
            panels.append(_panel_json(panel, panel_id, x, y))
            panel_id, x, line_height = panel_id + 1, x + panel.width, max(line_height, panel.height)
        y += line_height
    return panels


def _label_variable(label: str, title: str, series: str) -> dict:
    """A multi-value variable over the values of ``label`` in ``series``, All picked."""
    query = f"label_values({series}, {label})"
    return {"name": label, "label": title, "type": "query", "datasource": DATASOURCE, "definition": query,
            "query": {"query": query, "refId": label},
            # Refresh on time range change: workloads come and go.
            "refresh": 2, "multi": True, "includeAll": True, "allValue": ".*", "sort": 1, "hide": 0,
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]}}


def build(rows: Sequence[Row] = ROWS) -> dict:
    """The dashboard, as Grafana's JSON model."""
    return {
        "uid": UID,
        "title": "Thrifty",
        "description": "Energy, SLOs, decisions and sizing of the Thrifty operator (thrifty_* metrics).",
        "tags": ["thrifty", "kubernetes", "energy"],
        "editable": True,
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "time": {"from": "now-6h", "to": "now"},
        "refresh": "30s",
        "timezone": "browser",
        "templating": {"list": [
            {"name": "datasource", "label": "Prometheus", "type": "datasource", "query": "prometheus",
             "refresh": 1, "hide": 0, "current": {}},
            _label_variable("namespace", "Namespace", "thrifty_workload_replicas"),
            _label_variable("rlworkload", "RLWorkload", 'thrifty_workload_replicas{namespace=~"$namespace"}'),
        ]},
        "annotations": {"list": []},
        "panels": _layout(rows),
    }


def render(dashboard: dict) -> str:
    """The JSON text, stable from run to run (a diff shows only real changes)."""
    return json.dumps(dashboard, indent=2, ensure_ascii=False) + "\n"


def queries(dashboard: dict) -> Iterable[tuple[str, str]]:
    """``(panel title, PromQL)`` of every query of every panel (row headers have none)."""
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"]
