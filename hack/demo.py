#!/usr/bin/env python3
"""`make demo`: Thrifty on a local cluster for a few minutes, then a summary of what it did.

1. builds the control plane if needed (hack/build.sh) and starts a cluster of simulated nodes
   sized from a real inventory (hack/cluster.sh);
2. installs the RLWorkload CRD (crds/);
3. starts, in the background with their logs in a temp dir: Prometheus (hack/prometheus.sh, also
   scraping the simulated kubelets' resource metrics, so `thrifty trace export` can read the run
   back with KEEP=1), `thrifty replay` (real traces as the pods' usage, and their modelled
   latency) and the operator (`thrifty run`, reading that latency through Prometheus);
4. applies the sample application (manifests/samples/: six microservices of a real Alibaba call
   graph) and lets the operator place, scale and resize it for DEMO_SECONDS;
5. prints a summary: placements, resizes, scalings, the power model's energy estimate, SLO
   attainment per workload and an excerpt of `kubectl describe rlw`;
6. stops what it started (the cluster too, unless it was already running), unless KEEP=1.

Environment: DEMO_SECONDS (default 180), DEMO_NODES (12), DEMO_SPEEDUP (trace seconds per wall
second, 20), DEMO_CLUSTER (thrifty-demo), KEEP=1 (leave everything running and say how to stop
it). The latency the workloads are judged by is modelled by `thrifty replay`, not measured: kwok's
pods serve no traffic.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path

import yaml
from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parents[1]
THRIFTY = str(Path(sys.executable).parent / "thrifty")
SAMPLES = REPO / "manifests/samples"
DESCRIBED = "svc-normal-2-2"
"""The workload whose `kubectl describe` the summary shows: the sample's entry service."""
# Faster than the operator's production defaults, so that a three-minute run shows decisions.
OPERATOR_DEMO_FLAGS = (
    "--interval-seconds",
    "10",
    "--scale-in-cooldown-seconds",
    "60",
    "--resize-cooldown-seconds",
    "30",
)


def say(message: str) -> None:
    print(f"demo: {message}", flush=True)


def env_number(name: str, default: float, *, integer: bool = False) -> float:
    text = os.environ.get(name, str(default))
    try:
        value = int(text) if integer else float(text)
    except ValueError:
        sys.exit(f"demo: {name} must be a {'whole ' if integer else ''}number, got {text!r}")
    if value <= 0:
        sys.exit(f"demo: {name} must be positive, got {text!r}")
    return value


def last_line(command: list[str]) -> str:
    """Run a hack/ script (its progress goes to our stderr) and return its last stdout line."""
    proc = subprocess.run(command, cwd=REPO, stdout=subprocess.PIPE, text=True)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"demo: {' '.join(command)} failed (exit {proc.returncode})")
    return lines[-1].strip()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """A /metrics endpoint as {(sample name, sorted labels): value}; empty if it does not answer."""
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    except OSError:
        return {}
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def sample_namespaces() -> list[str]:
    return [
        obj["metadata"]["name"]
        for path in sorted(SAMPLES.glob("*.yaml"))
        for obj in yaml.safe_load_all(path.read_text())
        if obj and obj.get("kind") == "Namespace"
    ]


class Demo:
    def __init__(self) -> None:
        self.seconds = env_number("DEMO_SECONDS", 180)
        self.nodes = int(env_number("DEMO_NODES", 12, integer=True))
        self.speedup = env_number("DEMO_SPEEDUP", 20)
        self.cluster = os.environ.get("DEMO_CLUSTER", "thrifty-demo")
        self.keep = os.environ.get("KEEP") == "1"
        self.work = Path(tempfile.mkdtemp(prefix="thrifty-demo."))
        self.processes: dict[str, subprocess.Popen] = {}
        self.prometheus_dir = self.work / "prometheus"
        self.prometheus_up = False
        self.cluster_was_running = False
        self.kubeconfig = ""
        self.kubectl_bin = ""
        self.namespace = ""
        self.ports = {"replayer": free_port(), "operator": free_port(), "prometheus": free_port()}

    def kubectl(self, *args: str, check: bool = True) -> str:
        proc = subprocess.run(
            [self.kubectl_bin, "--kubeconfig", self.kubeconfig, *args], capture_output=True, text=True
        )
        if check and proc.returncode != 0:
            raise SystemExit(f"demo: kubectl {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc.stdout

    def start(self, name: str, command: list[str]) -> None:
        log = open(self.work / f"{name}.log", "w")
        self.processes[name] = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)

    def check_alive(self) -> None:
        for name, proc in self.processes.items():
            if proc.poll() is not None:
                tail = (self.work / f"{name}.log").read_text().splitlines()[-25:]
                raise SystemExit(f"demo: {name} exited with {proc.returncode}; its log ends:\n" + "\n".join(tail))

    def up(self) -> None:
        t0 = time.monotonic()
        self.kubectl_bin = str(Path(last_line([str(REPO / "hack/build.sh")])) / "kubectl")
        self.cluster_was_running = (
            subprocess.run(
                [str(REPO / "hack/cluster.sh"), "kubeconfig", "--name", self.cluster], cwd=REPO, capture_output=True
            ).returncode
            == 0
        )
        self.kubeconfig = last_line(
            [str(REPO / "hack/cluster.sh"), "up", "--name", self.cluster, "--nodes", str(self.nodes)]
        )
        say(f"cluster '{self.cluster}', {self.nodes} nodes, up in {time.monotonic() - t0:.0f} s: {self.kubeconfig}")
        self.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))
        self.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd/rlworkloads.thrifty.dev")
        [self.namespace] = sample_namespaces()

        url = last_line(
            [str(REPO / "hack/prometheus.sh"), "up", "--replayer-port", str(self.ports["replayer"]),
             "--operator-port", str(self.ports["operator"]), "--port", str(self.ports["prometheus"]),
             "--kubeconfig", self.kubeconfig, "--dir", str(self.prometheus_dir)]
        )  # fmt: skip
        self.prometheus_up = True
        say(f"Prometheus at {url}")
        self.start(
            "replayer",
            [THRIFTY, "replay", "--kubeconfig", self.kubeconfig, "--namespace", self.namespace,
             "--traces-root", str(REPO), "--speedup", f"{self.speedup:g}",
             "--metrics-port", str(self.ports["replayer"])],
        )  # fmt: skip
        self.start(
            "operator",
            [THRIFTY, "run", "--kubeconfig", self.kubeconfig, "--namespace", self.namespace, "--standalone",
             "--metrics-address", "127.0.0.1", "--metrics-port", str(self.ports["operator"]),
             "--prometheus-url", url, *OPERATOR_DEMO_FLAGS],
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while not scrape(self.ports["operator"]):
            self.check_alive()
            if time.monotonic() > deadline:
                raise SystemExit(
                    f"demo: the operator's /metrics did not answer within 60 s (log: {self.work}/operator.log)"
                )
            time.sleep(1)
        say(f"replayer (trace speed {self.speedup:g}x) and operator running; logs in {self.work}")
        self.kubectl("apply", "-f", str(SAMPLES))
        say(f"applied {SAMPLES.relative_to(REPO)}/ into namespace {self.namespace}; running for {self.seconds:.0f} s")

    def pods(self) -> list[dict]:
        return json.loads(self.kubectl("get", "pods", "-n", self.namespace, "-o", "json"))["items"]

    def events(self) -> Counter:
        items = json.loads(self.kubectl("get", "events", "-n", self.namespace, "-o", "json"))["items"]
        return Counter((e["reason"], e["involvedObject"]["kind"]) for e in items for _ in range(e.get("count") or 1))

    def run(self) -> None:
        start = time.monotonic()
        next_report = start + 30
        while (now := time.monotonic()) < start + self.seconds:
            self.check_alive()
            if now >= next_report:
                next_report += 30
                pods = self.pods()
                running = [p for p in pods if p["status"].get("phase") == "Running"]
                nodes = len({p["spec"].get("nodeName") for p in running})
                power = scrape(self.ports["operator"]).get(("thrifty_cluster_power_watts", ()), float("nan"))
                pods_text = f"{len(running)}/{len(pods)} pods running on {nodes} nodes"
                say(f"t={now - start:3.0f}s  {pods_text}, cluster {power:.0f} W")
            time.sleep(2)

    def summary(self) -> None:
        operator, replayer = scrape(self.ports["operator"]), scrape(self.ports["replayer"])
        pods = self.pods()
        running = [p for p in pods if p["status"].get("phase") == "Running"]
        per_node = ", ".join(
            f"{n}: {c}" for n, c in sorted(Counter(p["spec"].get("nodeName") for p in running).items())
        )
        used_nodes = len({p["spec"].get("nodeName") for p in running})
        restarts = sum(s["restartCount"] for p in running for s in p["status"].get("containerStatuses", []))
        events = self.events()
        nodes = json.loads(self.kubectl("get", "nodes", "-o", "json"))["items"]
        standby = sum((n["metadata"].get("labels") or {}).get("thrifty.dev/standby") == "true" for n in nodes)

        def decisions(kind: str, outcome: str) -> int:
            return int(operator.get(("thrifty_decisions_total", (("kind", kind), ("outcome", outcome))), 0))

        title = f"{self.seconds:.0f} s, {self.nodes} simulated nodes, traces replayed at {self.speedup:g}x"
        print(f"\n===== Thrifty demo: {title} =====")
        print(f"\nkubectl get rlw -n {self.namespace} -o wide")
        print(self.kubectl("get", "rlw", "-n", self.namespace, "-o", "wide").rstrip())
        print(
            f"\nPlacement: {decisions('placement', 'applied')} pods placed by Thrifty; {len(running)} of {len(pods)} "
            f"pods running on {used_nodes} of {self.nodes} nodes ({per_node}); {standby} empty nodes marked for standby"
        )
        print(
            f"Scaling:   {decisions('horizontal', 'applied')} applied, {decisions('horizontal', 'recommended')} "
            f"recommended (Recommend mode); Events: Scaled {events['Scaled', 'RLWorkload']}, "
            f"ScaleRecommended {events['ScaleRecommended', 'RLWorkload']}"
        )
        print(
            f"Resizing:  {decisions('vertical', 'applied')} applied, {decisions('vertical', 'recommended')} "
            f"recommended, {decisions('vertical', 'rejected')} rejected by the safety layer; "
            f"Events: {events['Resized', 'Pod']} in-place pod resizes (container restarts: {restarts})"
        )
        watts = operator.get(("thrifty_cluster_power_watts", ()), float("nan"))
        joules = operator.get(("thrifty_cluster_energy_joules_total", ()), float("nan"))
        print(
            f"Energy:    cluster {watts:.0f} W now, {joules / 1000:.1f} kJ since the operator started (the operator's "
            "power model over the nodes' idle and peak watts; an estimate, kwok nodes draw nothing)"
        )
        print(
            "\nSLO per workload (p95 latency modelled by `thrifty replay`, not measured; attainment by the operator):"
        )
        print(f"  {'workload':<22} {'SLO p95':>8} {'p95 now':>8} {'attainment':>10} {'req/s':>7} {'watts':>6}")
        for rlw in json.loads(self.kubectl("get", "rlw", "-n", self.namespace, "-o", "json"))["items"]:
            name, slo = rlw["metadata"]["name"], rlw["spec"]["slo"]["latencyP95Milliseconds"]
            key = (("namespace", self.namespace), ("rlworkload", name))
            latency = replayer.get(("thrifty_replay_latency_p95_seconds", key), float("nan")) * 1000
            rate = replayer.get(("thrifty_replay_request_rate_per_second", key), float("nan"))
            attainment = operator.get(("thrifty_slo_attainment_ratio", key), float("nan"))
            power = operator.get(("thrifty_workload_power_watts", key), float("nan"))
            print(f"  {name:<22} {slo:>5} ms {latency:>5.0f} ms {attainment:>10.2f} {rate:>7.1f} {power:>6.1f}")
        described = self.kubectl("describe", "rlw", "-n", self.namespace, DESCRIBED).splitlines()
        status_at = next((i for i, line in enumerate(described) if line.startswith("Status:")), 0)
        events_at = next((i for i, line in enumerate(described) if line.startswith("Events:")), len(described))
        print(
            f"\nkubectl describe rlw -n {self.namespace} {DESCRIBED}  (excerpt: the start of Status, the last Events)"
        )
        print("\n".join(described[status_at : min(status_at + 30, events_at)]))
        print("  ...")
        print("\n".join(described[events_at : events_at + 3] + described[max(events_at + 3, len(described) - 10) :]))

    def down(self) -> None:
        if self.keep:
            pids = " ".join(str(p.pid) for p in self.processes.values())
            say(f"KEEP=1: left running; kubeconfig {self.kubeconfig}; logs in {self.work}. Stop with:")
            say(f"  kill {pids}; hack/prometheus.sh down --dir {self.prometheus_dir}")
            say(f"  hack/cluster.sh down --name {self.cluster}")
            return
        for proc in self.processes.values():
            proc.terminate()
        for proc in self.processes.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        if self.prometheus_up:
            subprocess.run([str(REPO / "hack/prometheus.sh"), "down", "--dir", str(self.prometheus_dir)], cwd=REPO)
        if self.cluster_was_running and self.namespace:
            self.kubectl("delete", "namespace", self.namespace, "--wait=false", check=False)
            say(f"cluster '{self.cluster}' was running before the demo: left up, namespace {self.namespace} deleted")
        elif self.kubeconfig:
            subprocess.run([str(REPO / "hack/cluster.sh"), "down", "--name", self.cluster], cwd=REPO)
        say(f"stopped everything it started; logs kept in {self.work}")


def main() -> int:
    # `make` forwards SIGTERM; turn it into an exit so that the cleanup below runs.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    demo = Demo()
    try:
        demo.up()
        demo.run()
        demo.summary()
    finally:
        demo.down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
