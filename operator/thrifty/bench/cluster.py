"""kube-scheduler against Thrifty on a real cluster: one pod stream, scheduled twice.

The same pods, a run of the openb pod stream in creation order with their real CPU and memory
requests (pause containers), are created twice in one invocation: first with the default
``schedulerName`` (the cluster's kube-scheduler), then with ``schedulerName: thrifty`` while a
Thrifty operator watches the namespace. Each run gets a fresh namespace, deleted (and its pods
gone) before the next starts, so both find the same empty nodes. Pods are created as fast as the API
server takes them, by several clients at once; none is deleted during a run. Requests may be
scaled by one factor for both runs (``request_scale``), so that a small cluster is not saturated.

Per run (:class:`SchedulerRun`):

* ``powered_on_nodes``: nodes holding at least one of the run's pods;
* ``energy_watts``: :meth:`thrifty.energy.PowerModel.node_watts` with each node's utilisation
  taken as its requested CPU (no usage is measured on kwok nodes) and an empty node counted at
  standby power, the same rule for both schedulers;
* ``pods_per_second``: pods bound / (last binding seen - first creation sent);
* ``latency_*_ms``: creation sent -> binding seen on a watch, client-side (millisecond clock);
  ``condition_latency_*_s``: ``creationTimestamp`` -> the ``PodScheduled`` condition's
  ``lastTransitionTime``, the API's own record (whole seconds).

:func:`summarise` is pure (JSON objects in, figures out); :func:`compare_schedulers` does the I/O
through the official Kubernetes client.
"""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from thrifty.energy import PowerModel, power_class_for_cpu
from thrifty.observe import (
    POWER_CLASS_LABEL,
    cpu_millicores,
    format_cpu,
    format_memory,
    memory_bytes,
    parse_time,
    pod_requests,
)
from thrifty.snapshot import NodeTable
from thrifty.traces import PodStream

DEFAULT_SCHEDULER = "default-scheduler"
THRIFTY_SCHEDULER = "thrifty"
PAUSE_IMAGE = "registry.k8s.io/pause:3.10"
RUN_LABEL = "thrifty.dev/bench-run"
CREATORS = 8
"""Pods created concurrently."""


@dataclass(frozen=True)
class SchedulerRun:
    """What one scheduler did with the stream (see the module docstring)."""

    scheduler: str
    pods: int
    scheduled: int
    powered_on_nodes: int
    energy_watts: float
    pods_per_second: float
    latency_p50_ms: float
    latency_p99_ms: float
    condition_latency_p50_s: float
    condition_latency_p99_s: float
    wall_seconds: float


def pod_manifests(stream: PodStream, count: int, scheduler: str, run_id: str,
                  request_scale: float = 1.0) -> list[dict]:
    """The first ``count`` pods of ``stream`` by creation time, as pause pods for ``scheduler``,
    with their requests times ``request_scale``."""
    order = np.argsort(np.asarray(stream.creation_seconds, dtype=float), kind="stable")[:count]
    pods = []
    for i, row in enumerate(order.tolist()):
        spec: dict = {
            "terminationGracePeriodSeconds": 0,
            "containers": [{"name": "main", "image": PAUSE_IMAGE, "resources": {"requests": {
                "cpu": format_cpu(float(stream.cpu_request_millicores[row]) * request_scale),
                "memory": format_memory(
                    round(float(stream.memory_request_bytes[row]) * request_scale / 2**20) * 2**20)}}}],
        }
        if scheduler != DEFAULT_SCHEDULER:
            spec["schedulerName"] = scheduler
        pods.append({"apiVersion": "v1", "kind": "Pod",
                     "metadata": {"name": f"openb-{i:05d}", "labels": {RUN_LABEL: run_id}}, "spec": spec})
    return pods


def _condition_latency(pod: Mapping) -> float:
    for condition in pod.get("status", {}).get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "True":
            return parse_time(condition.get("lastTransitionTime")) - parse_time(pod["metadata"]["creationTimestamp"])
    return float("nan")


def node_energy_watts(nodes: Sequence[Mapping], pods: Sequence[Mapping],
                      power_model: PowerModel | None = None) -> tuple[float, int]:
    """Cluster watts on requests and the number of nodes holding a pod (see the module docstring)."""
    names = [n["metadata"]["name"] for n in nodes]
    position = {name: i for i, name in enumerate(names)}
    cpu_capacity = np.array([cpu_millicores(n["status"]["allocatable"]["cpu"]) for n in nodes])
    memory_capacity = np.array([memory_bytes(n["status"]["allocatable"]["memory"]) for n in nodes])
    cpu, memory, count = np.zeros(len(nodes)), np.zeros(len(nodes)), np.zeros(len(nodes), dtype=int)
    for pod in pods:
        node = pod.get("spec", {}).get("nodeName")
        if node in position:
            pod_cpu, pod_memory = pod_requests(pod)
            cpu[position[node]] += pod_cpu
            memory[position[node]] += pod_memory
            count[position[node]] += 1
    table = NodeTable(
        names=tuple(names), cpu_capacity_millicores=cpu_capacity, memory_capacity_bytes=memory_capacity,
        cpu_requested_millicores=cpu, memory_requested_bytes=memory,
        cpu_usage_millicores=np.full(len(nodes), np.nan), memory_usage_bytes=np.full(len(nodes), np.nan),
        power_class=tuple(n["metadata"].get("labels", {}).get(POWER_CLASS_LABEL) or power_class_for_cpu(c)
                          for n, c in zip(nodes, cpu_capacity, strict=True)),
        schedulable=np.ones(len(nodes), dtype=bool), standby=count == 0,
    )
    return float((power_model or PowerModel()).node_watts(table).sum()), int(np.count_nonzero(count))


def summarise(scheduler: str, pods: Sequence[Mapping], nodes: Sequence[Mapping], created: Mapping[str, float],
              bound: Mapping[str, float], wall_seconds: float) -> SchedulerRun:
    """The figures of one run from its pods and the cluster's nodes (JSON objects as the API
    returns them) and the client-side clock: ``created`` (creation request sent) and ``bound``
    (binding first seen), monotonic seconds by pod name."""
    scheduled = [p for p in pods if p.get("spec", {}).get("nodeName")]
    watts, occupied = node_energy_watts(nodes, scheduled)
    latencies_ms = np.array([(bound[n] - created[n]) * 1000.0 for n in bound if n in created])
    conditions = np.array([_condition_latency(p) for p in scheduled])
    conditions = conditions[np.isfinite(conditions)]
    span = (max(bound.values()) - min(created.values())) if bound and created else float("nan")

    def percentile(values: np.ndarray, q: float) -> float:
        return float(np.percentile(values, q)) if len(values) else float("nan")

    return SchedulerRun(
        scheduler=scheduler, pods=len(pods), scheduled=len(scheduled), powered_on_nodes=occupied,
        energy_watts=watts, pods_per_second=len(bound) / span if span and span > 0 else float("nan"),
        latency_p50_ms=percentile(latencies_ms, 50), latency_p99_ms=percentile(latencies_ms, 99),
        condition_latency_p50_s=percentile(conditions, 50), condition_latency_p99_s=percentile(conditions, 99),
        wall_seconds=wall_seconds,
    )


def _watch_bindings(core, namespace: str, bound: dict[str, float], stop: threading.Event) -> None:
    """Record when each pod of ``namespace`` is first seen bound, until ``stop`` is set."""
    from kubernetes import watch

    while not stop.is_set():
        stream = watch.Watch()
        for event in stream.stream(core.list_namespaced_pod, namespace, timeout_seconds=5):
            pod = event["raw_object"]
            name = pod["metadata"]["name"]
            if pod.get("spec", {}).get("nodeName") and name not in bound:
                bound[name] = time.monotonic()
            if stop.is_set():
                stream.stop()
                break


def _list(call, *args) -> list[dict]:
    return json.loads(call(*args, _preload_content=False).data)["items"]


def _run_stream(core, namespace: str, manifests: Sequence[dict], scheduler: str, *,
                settle_seconds: float, timeout_seconds: float) -> SchedulerRun:
    bound: dict[str, float] = {}
    created: dict[str, float] = {}
    stop = threading.Event()
    watcher = threading.Thread(target=_watch_bindings, args=(core, namespace, bound, stop), daemon=True)
    watcher.start()
    time.sleep(0.5)  # let the watch open before the first pod exists
    started = time.monotonic()

    def create(manifest: dict) -> None:
        created[manifest["metadata"]["name"]] = time.monotonic()
        core.create_namespaced_pod(namespace, manifest)

    # Several clients at once, so that the scheduler, not one client's round trips, sets the pace.
    with ThreadPoolExecutor(max_workers=CREATORS) as pool:
        list(pool.map(create, manifests))
    deadline = started + timeout_seconds
    last_change, seen = time.monotonic(), -1
    while len(bound) < len(manifests) and time.monotonic() < deadline:
        if len(bound) != seen:
            seen, last_change = len(bound), time.monotonic()
        elif time.monotonic() - last_change > settle_seconds:
            break  # nothing bound for a while: the rest is unschedulable
        time.sleep(0.2)
    stop.set()
    watcher.join(timeout=10)
    wall = time.monotonic() - started
    pods = _list(core.list_namespaced_pod, namespace)
    nodes = _list(core.list_node)
    return summarise(scheduler, pods, nodes, created, bound, wall)


@contextlib.contextmanager
def _namespace(core, prefix: str, timeout_seconds: float = 120.0) -> Iterator[str]:
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    try:
        yield name
    finally:
        core.delete_namespace(name)
        deadline = time.monotonic() + timeout_seconds
        # The next run needs the nodes empty again: wait for the pods to go.
        while time.monotonic() < deadline and _list(core.list_namespaced_pod, name):
            time.sleep(0.5)


def compare_schedulers(kubeconfig: str, stream: PodStream, count: int,
                       thrifty_operator: Callable[[str], AbstractContextManager], *, request_scale: float = 1.0,
                       settle_seconds: float = 15.0, timeout_seconds: float = 600.0) -> list[SchedulerRun]:
    """kube-scheduler, then Thrifty, on the first ``count`` pods of ``stream``.

    ``thrifty_operator(namespace)`` is a context manager that runs a Thrifty operator watching
    ``namespace`` for the duration of the second run. ``request_scale`` shrinks every request
    alike, to fit a stream of big pods (openb's median is 11 cores) on a small cluster without
    saturating it: on a full cluster every scheduler uses every node.
    """
    from kubernetes import client, config

    core = client.CoreV1Api(config.new_client_from_config(config_file=kubeconfig))
    runs = []
    for scheduler in (DEFAULT_SCHEDULER, THRIFTY_SCHEDULER):
        run_id = uuid.uuid4().hex[:8]
        manifests = pod_manifests(stream, count, scheduler, run_id, request_scale)
        with _namespace(core, f"bench-{scheduler.split('-')[0]}") as namespace:
            operator = thrifty_operator(namespace) if scheduler == THRIFTY_SCHEDULER else contextlib.nullcontext()
            with operator:
                runs.append(_run_stream(core, namespace, manifests, scheduler,
                                        settle_seconds=settle_seconds, timeout_seconds=timeout_seconds))
    return runs


def _wait_for_lease(kubeconfig: str, lease: str, deadline: float) -> None:
    """Until the child kube-scheduler holds ``lease`` (in kube-system)."""
    from kubernetes import client, config

    coordination = client.CoordinationV1Api(config.new_client_from_config(config_file=kubeconfig))
    while True:
        try:
            spec = coordination.read_namespaced_lease(lease, "kube-system").spec
            if spec is not None and spec.holder_identity:
                return
        except client.ApiException as error:
            if error.status != 404:
                raise
        if time.monotonic() > deadline:
            raise RuntimeError(f"no kube-scheduler took the Lease kube-system/{lease}")
        time.sleep(0.2)


@contextlib.contextmanager
def operator_process(kubeconfig: str, namespace: str, log_path: Path, *, start_timeout_seconds: float = 60.0,
                     metrics_out: list[str] | None = None, extra_args: Sequence[str] = ()) -> Iterator[None]:
    """``thrifty run`` (this Python's) watching ``namespace``, standalone, for the ``with`` block.

    Its child kube-scheduler gets the client limits of the cluster's own (hack/cluster.sh: 5000
    requests/s), a Lease of its own, and holds it before the block starts, so both runs start with
    a scheduler ready. ``metrics_out`` receives the operator's ``/metrics`` text at the end;
    ``extra_args`` go to ``thrifty run``.
    """
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        extender_port = probe.getsockname()[1]
    lease = f"thrifty-{namespace}"
    command = [sys.executable, "-m", "thrifty.cli", "run", "--kubeconfig", kubeconfig, "--namespace", namespace,
               "--standalone", "--metrics-address", "127.0.0.1", "--metrics-port", str(port),
               "--extender-port", str(extender_port), "--scheduler-lease", lease,
               "--kube-scheduler-qps", "5000", "--kube-scheduler-burst", "10000", *extra_args]
    with log_path.open("a") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + start_timeout_seconds
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"thrifty run exited with {process.returncode}; see {log_path}")
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"thrifty run did not serve /metrics within {start_timeout_seconds:.0f} s; "
                                       f"see {log_path}") from None
                time.sleep(0.5)
        _wait_for_lease(kubeconfig, lease, deadline)
        yield
        if metrics_out is not None:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
                metrics_out.append(response.read().decode())
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def markdown(runs: Sequence[SchedulerRun]) -> str:
    """The comparison as a markdown table, one row per scheduler."""
    lines = ["| scheduler | pods | scheduled | nodes with pods | energy W | pods/s | latency p50 ms | latency p99 ms "
             "| PodScheduled p50 s | PodScheduled p99 s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in runs:
        lines.append(f"| {r.scheduler} | {r.pods} | {r.scheduled} | {r.powered_on_nodes} | {r.energy_watts:.0f} | "
                     f"{r.pods_per_second:.1f} | {r.latency_p50_ms:.0f} | {r.latency_p99_ms:.0f} | "
                     f"{r.condition_latency_p50_s:.0f} | {r.condition_latency_p99_s:.0f} |")
    return "\n".join(lines)
