"""The PrometheusRule: every alert has a runbook section at its runbook_url and reads only
series the operator exports, by the labels they carry. (tests/cluster/test_prometheus.py loads
the rules into a real Prometheus and unit-tests each alert with promtool.)"""

from __future__ import annotations

import re

import pytest
import yaml
from prometheus_client import CollectorRegistry

from tests.conftest import REPO
from thrifty import RUNBOOKS_URL
from thrifty.metrics import Metrics

RULES = REPO / "manifests" / "monitoring" / "prometheusrule.yaml"
RUNBOOKS = REPO / "docs" / "runbooks.md"
METRIC_NAME = re.compile(r"\bthrifty_[a-z0-9_]+")
LABEL_NAME = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)|[{,]\s*([a-z_]+)\s*(?:=~|!~|!=|=)")


def _alerts() -> list[dict]:
    spec = yaml.safe_load(RULES.read_text())["spec"]
    return [rule for group in spec["groups"] for rule in group["rules"] if "alert" in rule]


def _exported() -> dict[str, set[str]]:
    """Series name -> its label names, for every series the operator can export."""
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    # One of each labelled series, so their label names show.
    metrics.set_workload("ns", "web", watts=1.0, elapsed_seconds=1.0, replicas=1, reward=0.0,
                         latency_p95_seconds=0.1, slo_attainment=1.0)
    metrics.set_source("prometheus", up=True)
    metrics.count_api_request("list", "pods", 200)
    return {s.name: set(s.labels) for family in registry.collect() for s in family.samples}


def _anchors(markdown: str) -> set[str]:
    """GitHub's anchors of the level-2 headings: lower case, spaces as dashes, punctuation dropped."""
    return {re.sub(r"[^a-z0-9 -]", "", h.strip().lower()).replace(" ", "-")
            for h in re.findall(r"^## (.+)$", markdown, flags=re.MULTILINE)}


ALERTS = _alerts()


def test_the_new_alerts_are_there() -> None:
    assert {"ThriftyPodsPendingTooLong", "ThriftyOperatorAbsent"} <= {a["alert"] for a in ALERTS}


@pytest.mark.parametrize("alert", ALERTS, ids=lambda a: a["alert"])
def test_runbook_url_points_to_its_section(alert: dict) -> None:
    assert alert["annotations"]["runbook_url"] == f"{RUNBOOKS_URL}#{alert['alert'].lower()}"
    assert alert["alert"].lower() in _anchors(RUNBOOKS.read_text()), f"no section '## {alert['alert']}' in {RUNBOOKS}"


@pytest.mark.parametrize("alert", ALERTS, ids=lambda a: a["alert"])
def test_reads_exported_series_by_their_labels(alert: dict) -> None:
    exported = _exported()
    names = METRIC_NAME.findall(alert["expr"])
    assert names and all(name in exported for name in names), (names, sorted(exported))
    carried = set().union(*(exported[name] for name in names)) | {"le"}
    for by, matcher in LABEL_NAME.findall(alert["expr"]):
        for label in filter(None, [matcher, *(part.strip() for part in by.split(","))]):
            assert label in carried, f"{alert['alert']} uses label {label!r}, which {names} do not carry"
    for text in alert["annotations"].values():
        for label in re.findall(r"\$labels\.([a-z_]+)", text):
            # `pod` is the scrape target's label (the operator's pod), not one the operator exports.
            assert label in carried | {"pod"}, f"{alert['alert']} names $labels.{label}"


def test_every_runbook_section_is_an_alert() -> None:
    assert _anchors(RUNBOOKS.read_text()) == {a["alert"].lower() for a in ALERTS}


def test_servicemonitor_keeps_the_series_own_namespace_label() -> None:
    monitor = yaml.safe_load((REPO / "manifests" / "monitoring" / "servicemonitor.yaml").read_text())
    assert all(endpoint.get("honorLabels") is True for endpoint in monitor["spec"]["endpoints"])
