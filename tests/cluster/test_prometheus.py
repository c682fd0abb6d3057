"""The monitoring that ships: a real Prometheus (Debian's, started by hack/prometheus.sh on
loopback) scrapes the installed operator while it manages an RLWorkload; the PrometheusRule's
groups load as a rule file and evaluate cleanly; each alert fires when it should (promtool rule
unit tests); and every query of every panel of manifests/grafana/thrifty.json returns data.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import textwrap
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.cluster.test_install import (
    FAST,
    InstalledOperator,
    install,
    service_account_kubeconfig,
    start_scheduler_container,
    uninstall,
)
from tests.conftest import REPO, Cluster
from tests.support.operator import Kubectl, create_namespace, free_port, rlworkload, wait_for
from thrifty.dashboard import queries

DASHBOARD = REPO / "manifests" / "grafana" / "thrifty.json"
ALERTS = {"ThriftyPolicyFallbackActive", "ThriftySLOAttainmentLow", "ThriftyDecisionsFailing",
          "ThriftyMetricsSourceDown", "ThriftyPodsPendingTooLong", "ThriftyOperatorAbsent"}
WINDOW = "15m"
"""Stands for Grafana's $__rate_interval and $__range: longer than the test, so every rate and
increase covers all it did (the placements at its start included)."""
GRAFANA_VARIABLES = {"$__rate_interval": WINDOW, "$__range": WINDOW, "$namespace": ".*", "$rlworkload": ".*"}
PANELS_WAIT_S = 180.0


def _rendered(cluster: Cluster, directory: str, kind: str) -> dict:
    """The one object of ``kind`` in a kustomization under manifests/, as kustomize renders it."""
    rendered = cluster.kubectl("kustomize", str(REPO / "manifests" / directory)).stdout
    [obj] = [d for d in yaml.safe_load_all(rendered) if d and d["kind"] == kind]
    return obj


def _rule_groups(cluster: Cluster) -> dict:
    """``spec`` of the PrometheusRule in manifests/monitoring/: a Prometheus rule file."""
    return {"groups": _rendered(cluster, "monitoring", "PrometheusRule")["spec"]["groups"]}


class Prometheus:
    """hack/prometheus.sh's Prometheus, with Thrifty's rules loaded."""

    def __init__(self, directory: Path, port: int) -> None:
        self.directory = directory
        self.url = f"http://127.0.0.1:{port}"

    def load_rules(self, rule_file: Path) -> None:
        """Add ``rule_file`` to the config that prometheus.sh wrote in our --dir, and reload
        (SIGHUP, as `systemctl reload prometheus` does)."""
        config = self.directory / "prometheus.yml"
        config.write_text(config.read_text() + f"rule_files:\n  - {rule_file}\n")
        os.kill(int((self.directory / "prometheus.pid").read_text()), signal.SIGHUP)

    def get(self, path: str, **params: str) -> dict:
        url = f"{self.url}{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=10) as response:
            payload = json.load(response)
        assert payload["status"] == "success", payload
        return payload["data"]

    def log_tail(self) -> str:
        lines = (self.directory / "prometheus.log").read_text(errors="replace").splitlines()
        return "prometheus log (tail):\n" + "\n".join(lines[-20:])


@pytest.fixture(scope="module")
def installed(cluster: Cluster) -> Cluster:
    install(cluster)
    yield cluster
    uninstall(cluster)


@pytest.fixture(scope="module")
def rule_file(installed: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("rules") / "thrifty-rules.yml"
    path.write_text(yaml.safe_dump(_rule_groups(installed), sort_keys=False))
    return path


@pytest.fixture(scope="module")
def monitored(installed: Cluster, rule_file: Path, image_bin: Path, tmp_path_factory: pytest.TempPathFactory):
    """Prometheus scraping the operator (its metrics port is fixed before either starts), the
    operator using that Prometheus for spec.slo.latencyQuery, and an RLWorkload to manage."""
    tmp = tmp_path_factory.mktemp("monitoring")
    prometheus_port = free_port()
    operator = InstalledOperator(
        installed, bin_dir=image_bin, kubeconfig=service_account_kubeconfig(installed, tmp / "thrifty.kubeconfig"),
        log_path=tmp / "thrifty-run.log",
        extra_args=[*FAST, f"--prometheus-url=http://127.0.0.1:{prometheus_port}"])
    directory = tmp / "prometheus"
    # No replayer in this test: its scrape target is a port nothing listens on.
    up = subprocess.run([str(REPO / "hack" / "prometheus.sh"), "up", "--port", str(prometheus_port),
                         "--operator-port", str(operator.metrics_port), "--replayer-port", str(free_port()),
                         "--dir", str(directory)], capture_output=True, text=True, timeout=600)
    assert up.returncode == 0, f"hack/prometheus.sh up failed:\n{up.stdout}{up.stderr}"
    prometheus = Prometheus(directory, prometheus_port)
    namespace, scheduler = None, None
    try:
        prometheus.load_rules(rule_file)
        operator.start()
        # The Deployment's kube-scheduler container places the pods through the extender.
        operator.scheduler_log = tmp / "kube-scheduler.log"
        scheduler = start_scheduler_container(installed, kubeconfig=tmp / "thrifty.kubeconfig",
                                              extender_port=operator.extender_port, log_path=operator.scheduler_log)
        # The first scrape must come before the first placement: rate() sees only what a
        # counter gains between two samples, so placements before it would be invisible.
        wait_for("Prometheus to scrape the operator", lambda: prometheus.get(
            "/api/v1/query", query="thrifty_policy_info")["result"], diagnose=prometheus.log_tail)
        namespace = create_namespace(installed, "thrifty-prom")
        # The latency "measurement" is a constant query: what matters is that the operator asks
        # Prometheus and exports latency and SLO attainment.
        k = Kubectl(installed, namespace)
        k.apply(rlworkload("web", replicas={"min": 2, "max": 3},
                           slo={"latencyP95Milliseconds": 200, "latencyQuery": "vector(0.05)"}))
        wait_for("the operator to size web with a measured latency",
                 lambda: k.get("rlw", "web").get("status", {}).get("sloAttainment") is not None,
                 diagnose=operator.log_tail)
        yield prometheus, operator
    finally:
        if namespace:
            # The RLWorkload carries kopf's finalizer: let the running operator release it.
            installed.kubectl("delete", "namespace", namespace, "--wait", "--timeout=60s", check=False)
        if scheduler is not None:
            scheduler.stop()
        operator.stop()
        subprocess.run([str(REPO / "hack" / "prometheus.sh"), "down", "--dir", str(directory)], timeout=60)


def test_servicemonitor_scrapes_the_metrics_service(cluster: Cluster) -> None:
    """What the Prometheus Operator would scrape: the Service's pods, on its metrics port."""
    monitor = _rendered(cluster, "monitoring", "ServiceMonitor")
    service = _rendered(cluster, ".", "Service")
    assert monitor["metadata"]["namespace"] == service["metadata"]["namespace"]
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items(), (selector, service["metadata"]["labels"])
    [endpoint] = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert endpoint.get("path", "/metrics") == "/metrics"


# The promtool tests take `monitored` for its hack/prometheus.sh, which installs promtool too.
def test_rules_pass_promtool_check(rule_file: Path, monitored) -> None:
    proc = subprocess.run(["promtool", "check", "rules", str(rule_file)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"promtool check rules:\n{proc.stdout}{proc.stderr}"
    assert f"SUCCESS: {len(ALERTS)} rules found" in proc.stdout, proc.stdout


def test_each_alert_fires_when_it_should(rule_file: Path, monitored) -> None:
    """promtool unit tests: synthetic series, and the alerts (ALERTS) firing at a given time."""
    tests = textwrap.dedent(f"""\
        rule_files: [{rule_file}]
        evaluation_interval: 1m
        tests:
          - interval: 1m
            input_series:
              - {{series: 'thrifty_build_info{{version="0.1.0",pod="a"}}', values: '1x40'}}
              # A pod has waited since the start (its age grows a minute a minute).
              - {{series: 'thrifty_pods_pending_oldest_seconds{{pod="a"}}', values: '0+60x40'}}
              # The policy failed to load in pod a; pod b's sizing fell back once, long ago.
              - {{series: 'thrifty_policy_fallbacks_total{{kind="load",pod="a"}}', values: '1x40'}}
              - {{series: 'thrifty_policy_fallbacks_total{{kind="sizing",pod="b"}}', values: '0 1 1x38'}}
              - {{series: 'thrifty_policy_fallbacks_total{{kind="placement",pod="a"}}', values: '0+1x40'}}
              - {{series: 'thrifty_slo_attainment_ratio{{namespace="shop",rlworkload="web",pod="a"}}', values: '0.5x40'}}
              - {{series: 'thrifty_slo_attainment_ratio{{namespace="shop",rlworkload="db",pod="a"}}', values: '0.95x40'}}
              - {{series: 'thrifty_decisions_total{{kind="vertical",outcome="failed",pod="a"}}', values: '0+1x40'}}
              - {{series: 'thrifty_decisions_total{{kind="vertical",outcome="applied",pod="a"}}', values: '0+1x40'}}
              - {{series: 'thrifty_decisions_total{{kind="placement",outcome="failed",pod="a"}}', values: '0+1x40'}}
              - {{series: 'thrifty_decisions_total{{kind="placement",outcome="applied",pod="a"}}', values: '0+50x40'}}
              - {{series: 'thrifty_metrics_source_up{{source="prometheus",pod="a"}}', values: '0x40'}}
              - {{series: 'thrifty_metrics_source_up{{source="metrics-api",pod="a"}}', values: '1x40'}}
            promql_expr_test:
              - expr: ALERTS{{alertstate="firing"}}
                eval_time: 30m
                exp_samples:
                  - labels: 'ALERTS{{alertname="ThriftyPolicyFallbackActive",alertstate="firing",kind="load",pod="a",severity="warning"}}'
                    value: 1
                  - labels: 'ALERTS{{alertname="ThriftyPolicyFallbackActive",alertstate="firing",kind="placement",pod="a",severity="warning"}}'
                    value: 1
                  - labels: 'ALERTS{{alertname="ThriftySLOAttainmentLow",alertstate="firing",namespace="shop",rlworkload="web",severity="warning"}}'
                    value: 1
                  - labels: 'ALERTS{{alertname="ThriftyDecisionsFailing",alertstate="firing",kind="vertical",severity="warning"}}'
                    value: 1
                  - labels: 'ALERTS{{alertname="ThriftyMetricsSourceDown",alertstate="firing",source="prometheus",pod="a",severity="warning"}}'
                    value: 1
                  - labels: 'ALERTS{{alertname="ThriftyPodsPendingTooLong",alertstate="firing",severity="warning"}}'
                    value: 1
          - interval: 1m
            input_series:
              - {{series: 'thrifty_build_info{{version="0.1.0",pod="a"}}', values: '1x40'}}
              # Pods keep coming and each waits a moment: never one for long.
              - {{series: 'thrifty_pods_pending_oldest_seconds{{pod="a"}}', values: '0 5 0 30 2x36'}}
              - {{series: 'thrifty_policy_fallbacks_total{{kind="load",pod="a"}}', values: '0x40'}}
              - {{series: 'thrifty_slo_attainment_ratio{{namespace="shop",rlworkload="web",pod="a"}}', values: '1x40'}}
              - {{series: 'thrifty_decisions_total{{kind="vertical",outcome="applied",pod="a"}}', values: '0+1x40'}}
              - {{series: 'thrifty_decisions_total{{kind="vertical",outcome="failed",pod="a"}}', values: '0x40'}}
              - {{series: 'thrifty_metrics_source_up{{source="metrics-api",pod="a"}}', values: '1x40'}}
            promql_expr_test:
              - expr: ALERTS
                eval_time: 30m
                exp_samples: []
          # The operator was scraped for 10 minutes, then no more: its last sample counts for
          # the 5 minutes of Prometheus' lookback (a real target that goes away is marked stale
          # at once), then the series is absent, and the alert fires 5 minutes later.
          - interval: 1m
            input_series:
              - {{series: 'thrifty_build_info{{version="0.1.0",pod="a"}}', values: '1x10 _x30'}}
            promql_expr_test:
              - expr: ALERTS{{alertname="ThriftyOperatorAbsent"}}
                eval_time: 14m
                exp_samples: []
              - expr: ALERTS{{alertname="ThriftyOperatorAbsent"}}
                eval_time: 17m
                exp_samples:
                  - labels: 'ALERTS{{alertname="ThriftyOperatorAbsent",alertstate="pending",severity="critical"}}'
                    value: 1
              - expr: ALERTS{{alertname="ThriftyOperatorAbsent"}}
                eval_time: 30m
                exp_samples:
                  - labels: 'ALERTS{{alertname="ThriftyOperatorAbsent",alertstate="firing",severity="critical"}}'
                    value: 1
            alert_rule_test:
              - alertname: ThriftyOperatorAbsent
                eval_time: 5m
                exp_alerts: []
              - alertname: ThriftyPodsPendingTooLong
                eval_time: 30m
                exp_alerts: []
        """)
    path = rule_file.with_name("thrifty-rules.test.yml")
    path.write_text(tests)
    proc = subprocess.run(["promtool", "test", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"promtool test rules:\n{proc.stdout}{proc.stderr}"


def test_rules_load_and_evaluate_in_prometheus(monitored) -> None:
    prometheus, _ = monitored

    def evaluated() -> list[dict]:
        rules = [r for g in prometheus.get("/api/v1/rules")["groups"] for r in g["rules"]]
        assert {r["name"] for r in rules} == ALERTS, f"rules loaded: {sorted(r['name'] for r in rules)}"
        return all(r.get("lastEvaluation", "").startswith("20") for r in rules) and rules

    rules = wait_for("Prometheus to load and evaluate the rules", evaluated, timeout=60,
                     diagnose=prometheus.log_tail)
    broken = {r["name"]: r.get("lastError") for r in rules if r["health"] != "ok"}
    assert not broken, f"rules that fail to evaluate: {broken}"


def test_every_dashboard_query_returns_data(monitored) -> None:
    """Each panel's PromQL, with Grafana's variables filled in, returns at least one finite value."""
    prometheus, operator = monitored
    panel_queries = list(queries(json.loads(DASHBOARD.read_text())))
    assert panel_queries, f"{DASHBOARD} has no queries"

    def expand(expr: str) -> str:
        for variable, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(variable, value)
        assert "$" not in expr, f"a Grafana variable the test does not know: {expr}"
        return expr

    def empty() -> dict[str, str]:
        missing = {}
        for title, expr in panel_queries:
            result = prometheus.get("/api/v1/query", query=expand(expr))["result"]
            values = [float(sample["value"][1]) for sample in result]
            if not any(math.isfinite(v) for v in values):
                missing[f"{title}: {expr}"] = f"{len(result)} series, values {values}"
        return missing

    deadline = time.monotonic() + PANELS_WAIT_S
    while (missing := empty()) and time.monotonic() < deadline:
        time.sleep(5)
    assert not missing, (
        f"after {PANELS_WAIT_S:.0f} s these panel queries still return no data:\n"
        + "\n".join(f"  {query} -> {why}" for query, why in missing.items())
        + "\n" + operator.log_tail())
