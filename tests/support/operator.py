"""Run ``thrifty run`` as a real subprocess against the test cluster, and read what it does.

The operator is exercised exactly as a user runs it (the console script, flags, SIGTERM and
SIGKILL), so the cluster tests cover the CLI, leader election and the restart behaviour too.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import REPO, Cluster

THRIFTY = REPO / ".venv" / "bin" / "thrifty"
SCRIPTED_POLICY = "tests.support.policies:ScriptedPolicy"
WAIT_S = 60.0
"""Longest wait for any convergence the tests expect (most take a few seconds)."""


def free_port() -> int:
    """A TCP port nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(what: str, check: Callable[[], Any], timeout: float = WAIT_S, interval: float = 0.5,
             diagnose: Callable[[], str] | None = None) -> Any:
    """Poll ``check`` until it returns something truthy and return that; fail naming ``what``.

    An AssertionError raised by ``check`` counts as "not yet", and its message is reported if the
    wait times out, with ``diagnose()`` (for example the operator's log tail).
    """
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = check()
            if last:
                return last
        except AssertionError as error:
            last = error
        if time.monotonic() > deadline:
            extra = f"\n{diagnose()}" if diagnose else ""
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r}){extra}")
        time.sleep(interval)


class Operator:
    """One ``thrifty run`` process; its output goes to ``log_path``."""

    def __init__(self, cluster: Cluster, *, namespace: str, log_path: Path, policy: str = SCRIPTED_POLICY,
                 interval_seconds: float = 1.0, extra_args: Sequence[str] = ()) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.log_path = log_path
        self.metrics_port = free_port()
        self.extender_port = free_port()
        """Kept across restarts, so a kube-scheduler child that outlived a killed operator finds
        the restarted one."""
        self.args = [
            str(THRIFTY), "run", "--kubeconfig", cluster.kubeconfig, "--namespace", namespace,
            "--metrics-port", str(self.metrics_port), "--metrics-address", "127.0.0.1",
            "--extender-port", str(self.extender_port), "--scheduler-lease", f"thrifty-{namespace}",
            # As the cluster's own kube-scheduler runs here (hack/cluster.sh: no client-side limits).
            "--kube-scheduler-qps", "5000", "--kube-scheduler-burst", "10000",
            "--interval-seconds", str(interval_seconds), "--policy", policy, *extra_args,
        ]
        self.process: subprocess.Popen | None = None
        self.orphans: list[int] = []
        """kube-scheduler children left running by :meth:`kill`."""
        pythonpath = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
        self.env = {**os.environ, "PYTHONPATH": pythonpath}
        """The process's environment: the test policies live in the checkout, not in the package."""

    def start(self, leader: bool = True) -> Operator:
        """Start and wait until ready; ``leader``: and until it holds the leader Lease (a
        predecessor killed with -9 holds it up to --lease-duration-seconds longer)."""
        return self.launch().wait_ready(leader=leader)

    def launch(self) -> Operator:
        """Start the process without waiting for it (:meth:`wait_ready` waits)."""
        env = self.env
        with self.log_path.open("a") as log:
            log.write(f"\n===== {' '.join(self.args)}\n")
            log.flush()
            self.process = subprocess.Popen(self.args, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        return self

    def wait_ready(self, leader: bool = True) -> Operator:
        """/metrics answers, the extender's view has listed the cluster (a standby's too), a
        kube-scheduler of Thrifty's profile holds its Lease, and (``leader``) this replica holds
        the leader Lease."""
        wait_for("the operator to serve /metrics", lambda: self._alive() and self.scrape(), timeout=60,
                 diagnose=self.log_tail)
        wait_for("the extender's view to list the cluster", lambda: self._alive() and self.extender_ready(),
                 timeout=60, diagnose=self.log_tail)
        if "--no-kube-scheduler" not in self.args:
            wait_for("a kube-scheduler of Thrifty's profile to hold its Lease", self.scheduler_leads,
                     timeout=60, diagnose=self.log_tail)
        if leader and "--standalone" not in self.args:
            wait_for("the operator to hold the leader Lease", lambda: self._alive() and self.leads(),
                     timeout=60, diagnose=self.log_tail)
        return self

    def leads(self) -> bool:
        """``thrifty_leader`` is 1: this replica holds the leader Lease."""
        return self.sample("thrifty_leader") == 1.0

    def scheduler_leads(self) -> bool:
        """The profile's Lease has a holder (this operator's child, or one that outlived a kill)."""
        lease = self.args[self.args.index("--scheduler-lease") + 1]
        proc = self.cluster.kubectl("get", "lease", lease, "-n", "kube-system", "-o",
                                    "jsonpath={.spec.holderIdentity}", check=False)
        return proc.returncode == 0 and bool(proc.stdout.strip())

    def extender_ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.extender_port}/healthz", timeout=5) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def _alive(self) -> bool:
        assert self.process is not None and self.process.poll() is None, (
            f"thrifty run exited with {self.process.returncode if self.process else None}")
        return True

    def stop(self) -> None:
        """SIGTERM, as Kubernetes stops a pod; SIGKILL if it does not exit in time."""
        self._end_orphans()
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL: no clean-up at all, as after a node failure or an OOM kill. The operator's
        kube-scheduler child outlives it (as the pod's second container would); :meth:`stop`
        ends such orphans."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=15)
            self.orphans.extend(self.scheduler_pids()[len(self.orphans):])

    def scheduler_pids(self) -> list[int]:
        """The kube-scheduler children this operator's runs started, oldest first."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return [int(pid) for pid in re.findall(r"started kube-scheduler \(pid (\d+)\)", text)]

    def _end_orphans(self) -> None:
        for pid in self.orphans:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        self.orphans.clear()

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "operator log (tail):\n" + "\n".join(text.splitlines()[-lines:])

    def scrape(self) -> dict[str, Any]:
        """``/metrics`` parsed: family name -> family. Raises AssertionError if the endpoint does
        not answer (three tries: the test machine may be busy)."""
        failures = []
        for _ in range(3):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10) as response:
                    text = response.read().decode()
                return {family.name: family for family in text_string_to_metric_families(text)}
            except (urllib.error.URLError, OSError) as error:
                failures.append(str(error))
                time.sleep(0.5)
        raise AssertionError(f"GET /metrics on port {self.metrics_port} failed: {failures}")

    def sample(self, family: str, sample: str | None = None, **labels: str) -> float | None:
        """The value of one sample (``sample`` defaults to the family name), or None if no sample
        has those labels yet. A family or sample name that the scrape does not have at all is a
        mistake in the test, not an absent value: AssertionError (the parser drops ``_total``
        from a counter's family name, keeping it on the samples)."""
        metrics = self.scrape()
        assert family in metrics, (f"no metric family {family!r} on /metrics; families like it: "
                                   f"{sorted(n for n in metrics if n.startswith(family[:12]))}")
        name = sample or family
        samples = [s for s in metrics[family].samples if s.name == name]
        assert samples, f"family {family!r} has no sample {name!r}: {sorted({s.name for s in metrics[family].samples})}"
        for s in samples:
            if all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
        return None


class Kubectl:
    """JSON helpers over ``cluster.kubectl`` for one namespace."""

    def __init__(self, cluster: Cluster, namespace: str) -> None:
        self.cluster = cluster
        self.namespace = namespace

    def apply(self, obj: dict) -> None:
        self.cluster.kubectl("apply", "-n", self.namespace, "-f", "-", input=json.dumps(obj))

    def get(self, kind: str, name: str) -> dict:
        return json.loads(self.cluster.kubectl("get", kind, name, "-n", self.namespace, "-o", "json").stdout)

    def items(self, kind: str, *selector: str) -> list[dict]:
        listing = self.cluster.kubectl("get", kind, "-n", self.namespace, *selector, "-o", "json")
        return json.loads(listing.stdout)["items"]

    def pods_of(self, workload: str) -> list[dict]:
        """Live pods of an RLWorkload (by Thrifty's label), oldest first."""
        pods = [p for p in self.items("pods", "-l", f"thrifty.dev/workload={workload}")
                if not p["metadata"].get("deletionTimestamp")]
        return sorted(pods, key=lambda p: (p["metadata"]["creationTimestamp"], p["metadata"]["name"]))

    def events(self, name: str, kind: str | None = None) -> list[dict]:
        """Events on the object ``name`` (and of ``kind`` if given), oldest first."""
        events = [e for e in self.items("events") if e["involvedObject"]["name"] == name
                  and (kind is None or e["involvedObject"]["kind"] == kind)]
        return sorted(events, key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")

    def patch(self, kind: str, name: str, patch: dict) -> None:
        self.cluster.kubectl("patch", kind, name, "-n", self.namespace, "--type", "merge", "-p", json.dumps(patch))


def create_namespace(cluster: Cluster, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", name)
    wait_for(f"the default ServiceAccount of {name}",
             lambda: cluster.kubectl("get", "serviceaccount", "default", "-n", name, check=False).returncode == 0)
    return name


def delete_namespace(cluster: Cluster, name: str) -> None:
    """Delete a test namespace without waiting. RLWorkloads carry the operator's finalizer (kopf's,
    for their timers); with no operator left to remove it, it is removed here, or the namespace
    would stay Terminating."""
    for workload in json.loads(cluster.kubectl("get", "rlw", "-n", name, "-o", "json").stdout)["items"]:
        cluster.kubectl("patch", "rlw", workload["metadata"]["name"], "-n", name, "--type", "merge",
                        "-p", '{"metadata": {"finalizers": null}}', check=False)
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def install_crds(cluster: Cluster) -> None:
    """The RLWorkload CRD, Established."""
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))
    for crd in ("rlworkloads.thrifty.dev",):
        cluster.kubectl("wait", "--for=condition=Established", f"crd/{crd}", "--timeout=60s")


def rlworkload(name: str, *, mode: str = "Auto", replicas: dict | None = None, cpu: str = "100m",
               memory: str = "64Mi", bounds: list | None = None, scheduler: str | None = None,
               dependencies: list | None = None, slo: dict | None = None, usage_cpu: str | None = None) -> dict:
    """An RLWorkload of pause containers, small enough for many on one node. ``usage_cpu`` is the
    CPU usage kwok reports for its pods (through metrics-server), 1m when not given."""
    spec: dict[str, Any] = {"containers": [{
        "name": "app", "image": "registry.k8s.io/pause:3.10",
        "resources": {"requests": {"cpu": cpu, "memory": memory}, "limits": {"memory": "512Mi"}},
    }]}
    if scheduler:
        spec["schedulerName"] = scheduler
    return {
        "apiVersion": "thrifty.dev/v1alpha1", "kind": "RLWorkload", "metadata": {"name": name},
        "spec": {
            "template": {"metadata": {"labels": {"app": name}, "annotations": (
                {"kwok.x-k8s.io/usage-cpu": usage_cpu} if usage_cpu else {})}, "spec": spec},
            "replicas": replicas or {"min": 1, "max": 3},
            "containers": bounds if bounds is not None else [{"name": "app", "cpu": {"min": "50m", "max": "1"}}],
            "slo": slo or {"latencyP95Milliseconds": 200},
            "dependencies": dependencies or [],
            "policy": {"mode": mode},
        },
    }


def condition(obj: dict, kind: str) -> dict:
    """The status condition of type ``kind`` (empty if absent)."""
    return next((c for c in obj.get("status", {}).get("conditions", []) if c["type"] == kind), {})
