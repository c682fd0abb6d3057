"""`thrifty trace export` reads a cluster's own history from the Prometheus that `make demo` runs
(hack/prometheus.sh scraping the kubelets' /metrics/resource), and `thrifty bench` runs on it.

Two pods get a known usage through kwok ResourceUsages (what the simulated kubelet reports), the
kubelets are scraped every 5 s, and the exported trace must give those numbers back.
"""

from __future__ import annotations

import csv
import json
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO, Cluster
from tests.support.operator import THRIFTY, Kubectl, create_namespace, free_port, wait_for
from thrifty.replay import resource_usage_manifest
from thrifty.traces import load
from thrifty.traces.prometheus_export import DEFAULT_CPU_QUERY

USAGE = {"web-0": (250.0, 64 * 2**20), "db-0": (500.0, 128 * 2**20)}
"""Pod name -> (CPU millicores, memory bytes) that kwok reports for its container ``app``."""
STEP_SECONDS = 5.0


def _pod(name: str, node: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"nodeName": node, "containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10"}]}}


@pytest.fixture(scope="module")
def history(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory):
    """A namespace whose pods have run with USAGE for a while, and the Prometheus that saw it."""
    namespace = create_namespace(cluster, "thrifty-export")
    k = Kubectl(cluster, namespace)
    node = cluster.kubectl("get", "nodes", "-o", "jsonpath={.items[0].metadata.name}").stdout
    for name, (cpu, memory) in USAGE.items():
        k.apply(_pod(name, node))
        uid = wait_for(f"pod {name} running", lambda n=name: k.get("pod", n).get("status", {}).get(
            "phase") == "Running" and k.get("pod", n)["metadata"]["uid"])
        k.apply(resource_usage_manifest(namespace=namespace, pod_name=name, pod_uid=uid, workload="export",
                                        container="app", cpu_millicores=cpu, memory_bytes=memory))
    directory = tmp_path_factory.mktemp("export") / "prometheus"
    port = free_port()
    up = subprocess.run([str(REPO / "hack" / "prometheus.sh"), "up", "--port", str(port), "--dir", str(directory),
                         "--replayer-port", str(free_port()), "--operator-port", str(free_port()),
                         "--kubeconfig", cluster.kubeconfig], capture_output=True, text=True, timeout=600)
    assert up.returncode == 0, f"hack/prometheus.sh up failed:\n{up.stdout}{up.stderr}"
    url = up.stdout.splitlines()[-1]
    try:
        start = time.time()
        # The default CPU query is a rate() over [2m]: until the counter has two minutes of
        # samples, rate() divides a shorter increase by the whole window and reads low.
        rate = DEFAULT_CPU_QUERY.replace("container!=", f'namespace="{namespace}", container!=', 1)
        wait_for("Prometheus to see the pods' full CPU rate", lambda: (result := _query(url, rate)) and all(
            float(r["value"][1]) >= 0.99 * USAGE[r["metric"]["pod"]][0] / 1000 for r in result) and len(result) == 2,
            timeout=240, interval=5)
        time.sleep(2 * STEP_SECONDS)  # two more steps at the full rate
        yield namespace, url, start, time.time()
    finally:
        subprocess.run([str(REPO / "hack" / "prometheus.sh"), "down", "--dir", str(directory)], timeout=60)
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def _query(url: str, query: str) -> list[dict]:
    with urllib.request.urlopen(f"{url}/api/v1/query?{urllib.parse.urlencode({'query': query})}", timeout=10) as r:
        return json.loads(r.read())["data"]["result"]


def _export(url: str, start: float, end: float, out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(THRIFTY), "trace", "export", "--prometheus", url, "--out", str(out),
                           "--start", f"{start:.0f}", "--end", f"{end:.0f}", "--step-seconds", f"{STEP_SECONDS:g}",
                           *extra], capture_output=True, text=True, timeout=120)


def test_export_gives_back_the_usage_the_kubelets_reported(history, tmp_path: Path) -> None:
    namespace, url, start, end = history
    rate = f'sum by (pod) (rate(container_cpu_usage_seconds_total{{namespace="{namespace}"}}[1m])) * 100'
    proc = _export(url, start, end, tmp_path, "--namespace", namespace, "--request-rate-query", rate)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    usage = load(tmp_path / "usage.tar.gz")
    by_pod = {next(p for p in USAGE if p in c.name): c for c in usage.containers}
    assert set(by_pod) == set(USAGE), [c.name for c in usage.containers]
    for pod, (cpu, memory) in USAGE.items():
        series = by_pod[pod]
        cpu_seen = series.cpu_usage_millicores[np.isfinite(series.cpu_usage_millicores)]
        assert len(cpu_seen) >= 3, f"{pod}: only {len(cpu_seen)} CPU samples exported"
        # The last two samples: rate() over [2m] ramps up over the first two minutes.
        assert np.median(cpu_seen[-2:]) == pytest.approx(cpu, rel=0.03), (pod, cpu_seen)
        memory_seen = series.memory_usage_bytes[np.isfinite(series.memory_usage_bytes)]
        assert np.median(memory_seen) == pytest.approx(memory, rel=0.01), (pod, memory_seen)
    rates = load(tmp_path / "requests.csv.gz")
    assert len(rates.containers) == len(USAGE)
    assert all(np.nanmax(c.request_rate_per_second) > 0 for c in rates.containers)


def test_bench_runs_on_the_exported_trace(history, tmp_path: Path) -> None:
    namespace, url, start, end = history
    assert _export(url, start, end, tmp_path / "trace", "--namespace", namespace).returncode == 0
    out = tmp_path / "bench"
    proc = subprocess.run([str(THRIFTY), "bench", "--trace", str(tmp_path / "trace" / "usage.tar.gz"),
                           "--out", str(out), "--nodes", "4", "--steps", "30", "--seeds", "0",
                           "--policies", "thrifty-heuristic", "--no-plots"],
                          capture_output=True, text=True, timeout=600, cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    with (out / "results.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [(r["nodes"], r["seed"]) for r in rows if r["policy"] == "thrifty-heuristic"] == [("4", "0")], rows
    assert "usage.tar.gz" in (out / "results.md").read_text(), "results.md does not name the exported trace"


def test_an_empty_range_is_refused_with_a_reason(history, tmp_path: Path) -> None:
    _, url, start, _ = history
    proc = _export(url, start - 7200, start - 3600, tmp_path, "--namespace", "no-such-namespace")
    assert proc.returncode == 2
    assert "no container has both CPU and memory series" in proc.stderr
    assert not (tmp_path / "usage.tar.gz").exists()
