#!/usr/bin/env python3
"""The operator at cluster scale, measured from outside: ``make perf-cluster``.

A local control plane with ``--nodes`` kwok nodes (hack/cluster.sh), ``--workloads`` RLWorkloads
of ``--replicas`` pods each, created at once in a fresh namespace, and the real ``thrifty run``
(the CLI, as the image starts it) watching that namespace with its child kube-scheduler. Once
every pod is bound, the steady state is measured over ``--window-seconds`` from two scrapes of
the operator's ``/metrics`` and from ``/proc``; prints ``name: value unit`` lines:

    placement_seconds: time from the RLWorkloads' creation to the last pod bound
    sizing_steps_per_second: workload sizing steps (one RLWorkload sized once) per second
    sizing_pass_seconds: window / passes, a pass being as many steps as there are workloads
    api_requests_per_sizing_pass: the operator's Kubernetes API calls (every verb) per pass
    sizing_step_p99_seconds: p99 of one workload's sizing step, in the window
    watch_events_per_second: watch events the operator's informer received
    operator_rss_mb: resident memory of the ``thrifty run`` process (its kube-scheduler aside)
    kube_scheduler_rss_mb: resident memory of that child kube-scheduler
    operator_heavy_modules_loaded: files of ray, torch, gymnasium or matplotlib it maps

A pass is counted from steps because the operator sizes each RLWorkload on its own timer (a kopf
daemon per workload); with ``W`` workloads, ``W`` steps size every workload once.
"""

from __future__ import annotations

import argparse
import functools
import json
import re
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from thrifty.bench.extender_latency import buckets_quantile, histogram_buckets

REPO = Path(__file__).resolve().parents[2]
HEAVY = re.compile(r"/site-packages/(ray|torch|gymnasium|matplotlib)/")


def sh(*args: str, check: bool = True, stdin: str | None = None) -> str:
    return subprocess.run(args, check=check, capture_output=True, text=True, input=stdin).stdout


@functools.cache
def binaries() -> str:
    """hack/build.sh's last line: the bin dir of the release the cluster runs (a no-op once built)."""
    return sh(str(REPO / "hack/build.sh")).strip().splitlines()[-1]


def kubectl(kubeconfig: str, *args: str, stdin: str | None = None) -> str:
    return sh(f"{binaries()}/kubectl", "--kubeconfig", kubeconfig, *args, stdin=stdin)


def rlworkload(name: str, namespace: str, replicas: int) -> dict:
    """A pinned-size workload: the steady state is the sizing loop observing, not pods churning."""
    return {
        "apiVersion": "thrifty.dev/v1alpha1", "kind": "RLWorkload",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "template": {"metadata": {"labels": {"app.kubernetes.io/name": name}}, "spec": {
                "schedulerName": "thrifty", "nodeSelector": {"type": "kwok"},
                "containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10",
                                "resources": {"requests": {"cpu": "10m", "memory": "16Mi"},
                                              "limits": {"cpu": "20m", "memory": "32Mi"}}}]}},
            "replicas": {"min": replicas, "max": replicas, "initial": replicas},
            "containers": [{"name": "app", "cpu": {"min": "10m", "max": "10m"},
                            "memory": {"min": "16Mi", "max": "16Mi"}}],
            "slo": {"latencyP95Milliseconds": 200},
        },
    }


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as response:
        return response.read().decode()


def counter_sum(text: str, name: str, **labels: str) -> float:
    """The sum of the samples named ``name`` with ``labels`` (prometheus_client's parser)."""
    return sum(sample.value for family in text_string_to_metric_families(text) for sample in family.samples
               if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()))


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def wait(what: str, check, timeout_seconds: float, interval_seconds: float = 2.0) -> None:
    deadline = time.monotonic() + timeout_seconds
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"cluster_bench: timed out after {timeout_seconds:.0f} s waiting for {what}")
        time.sleep(interval_seconds)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--workloads", type=int, default=500)
    parser.add_argument("--replicas", type=int, default=20)
    parser.add_argument("--window-seconds", type=float, default=120.0)
    parser.add_argument("--interval-seconds", type=float, default=15.0, help="thrifty run --interval-seconds")
    parser.add_argument("--cluster", default="perf-cluster", help="name of the local cluster (hack/cluster.sh)")
    parser.add_argument("--placement-timeout-seconds", type=float, default=1800.0)
    args = parser.parse_args()

    up = sh(str(REPO / "hack/cluster.sh"), "up", "--name", args.cluster, "--nodes", str(args.nodes))
    kubeconfig = up.strip().splitlines()[-1]
    kubectl(kubeconfig, "apply", "--server-side", "-f", str(REPO / "crds"))
    namespace = f"perf-{int(time.time())}"
    kubectl(kubeconfig, "create", "namespace", namespace)
    metrics_port, extender_port = free_port(), free_port()
    log = Path(tempfile.mkdtemp(prefix="thrifty-perf-")) / "operator.log"
    command = [str(Path(sys.executable).with_name("thrifty")), "run", "--kubeconfig", kubeconfig,
               "--namespace", namespace, "--standalone", "--metrics-address", "127.0.0.1",
               "--metrics-port", str(metrics_port), "--extender-port", str(extender_port),
               "--scheduler-lease", f"thrifty-{namespace}", "--kube-scheduler-qps", "5000",
               "--kube-scheduler-burst", "10000", "--interval-seconds", str(args.interval_seconds)]
    print(f"cluster_bench: {args.nodes} nodes, {args.workloads} RLWorkloads x {args.replicas} pods; "
          f"operator log {log}", file=sys.stderr)
    with log.open("w") as out:
        operator = subprocess.Popen(command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    try:
        def serving() -> bool:
            if operator.poll() is not None:
                raise SystemExit(f"cluster_bench: thrifty run exited with {operator.returncode}; see {log}")
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{extender_port}/healthz", timeout=5).close()
                return True
            except (urllib.error.URLError, OSError):
                return False
        wait("the operator's extender", serving, 120)

        workloads = {"apiVersion": "v1", "kind": "List", "items": [
            rlworkload(f"w{i:04d}", namespace, args.replicas) for i in range(args.workloads)]}
        started = time.monotonic()
        kubectl(kubeconfig, "apply", "--server-side", "-f", "-", stdin=json.dumps(workloads))
        want = args.workloads * args.replicas

        def bound() -> bool:
            names = kubectl(kubeconfig, "get", "pods", "-n", namespace, "-o",
                            "jsonpath={range .items[*]}{.spec.nodeName}{'\\n'}{end}")
            return sum(1 for n in names.splitlines() if n.strip()) >= want
        wait(f"{want} pods bound", bound, args.placement_timeout_seconds, interval_seconds=5.0)
        placement_seconds = time.monotonic() - started

        before, t0 = scrape(metrics_port), time.monotonic()
        time.sleep(args.window_seconds)
        after, t1 = scrape(metrics_port), time.monotonic()
        window = t1 - t0
        steps = (counter_sum(after, "thrifty_step_duration_seconds_count", step="sizing")
                 - counter_sum(before, "thrifty_step_duration_seconds_count", step="sizing"))
        requests = (counter_sum(after, "thrifty_kube_api_requests_total")
                    - counter_sum(before, "thrifty_kube_api_requests_total"))
        events = (counter_sum(after, "thrifty_watch_events_total")
                  - counter_sum(before, "thrifty_watch_events_total"))
        family = "thrifty_step_duration_seconds"
        b0 = dict(histogram_buckets(before, family, step="sizing"))
        delta = [(le, count - b0.get(le, 0.0)) for le, count in histogram_buckets(after, family, step="sizing")]
        passes = steps / args.workloads
        children = [int(p) for p in re.findall(r"started kube-scheduler \(pid (\d+)\)", log.read_text())]
        maps = Path(f"/proc/{operator.pid}/maps").read_text()

        print(f"placement_seconds: {placement_seconds:.1f} s")
        print(f"sizing_steps_per_second: {steps / window:.2f} 1/s")
        print(f"sizing_pass_seconds: {window / passes if passes else float('nan'):.1f} s")
        print(f"api_requests_per_sizing_pass: {requests / passes if passes else float('nan'):.0f} requests")
        print(f"sizing_step_p99_seconds: {buckets_quantile(delta, 0.99):.3f} s")
        print(f"watch_events_per_second: {events / window:.1f} 1/s")
        print(f"operator_rss_mb: {rss_mb(operator.pid):.0f} MB")
        if children:
            print(f"kube_scheduler_rss_mb: {rss_mb(children[-1]):.0f} MB")
        print(f"operator_heavy_modules_loaded: {len(set(HEAVY.findall(maps)))} packages")
    finally:
        operator.terminate()
        try:
            operator.wait(timeout=30)
        except subprocess.TimeoutExpired:
            operator.kill()
        kubectl(kubeconfig, "delete", "namespace", namespace, "--wait=false")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
