"""The operator's Prometheus metrics, on a registry owned by one :class:`Metrics` object.

Every name starts with ``thrifty_``, uses base units (seconds, watts, joules, ratios in 0..1)
and, for counters, ends in ``_total``. Labels are bounded: ``node`` (the cluster's nodes),
``namespace`` and ``rlworkload`` (an RLWorkload's namespace and name: the labels
kube-state-metrics uses, so the two join on ``namespace``), ``container`` (a container of its
template), ``kind``, ``outcome``, ``step``, ``source``, ``verb`` and ``resource`` (of an API call).
Never a pod name: pods come and go, and each would leave a series behind.

A workload's series are removed when it is deleted (:meth:`Metrics.forget_workload`), and a
node's when it leaves the cluster (:meth:`Metrics.set_node_power`), so label sets stay bounded
over time too.
"""

from __future__ import annotations

import math
import platform
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from importlib.metadata import version

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    disable_created_metrics,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from thrifty import __version__
from thrifty.policy.base import PolicyInfo

DECISION_KINDS = ("placement", "horizontal", "vertical")
OUTCOMES = ("applied", "recommended", "rejected", "failed")
FALLBACK_KINDS = ("load", "placement", "sizing")
SOURCES = ("metrics-api", "prometheus")
RECONCILE_KINDS = ("placement", "sizing")
API_OUTCOMES = ("success", "client-error", "server-error", "no-response")
"""Of one Kubernetes API call: a 2xx, 4xx or 5xx answer, or none (connection failed, timeout)."""
WORKLOAD_LABELS = ("namespace", "rlworkload")
LEADER_TRANSITIONS = ("acquired", "lost", "released")
"""This replica's leadership changes: became the leader, lost it (renew deadline, taken over),
gave it up on shutdown."""

DECISION_BUCKETS_SECONDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
"""The pure core's time for one step: sub-millisecond for a few pods, up to seconds at scale."""
STEP_BUCKETS_SECONDS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
"""A whole reconcile step, API round trips included."""
PLACEMENT_LATENCY_BUCKETS_SECONDS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
"""From a pod's creation to its binding, what a user waits for."""


class PendingPods(Collector):
    """Pods waiting for Thrifty to bind them (``schedulerName: thrifty``, no node yet): how many,
    and how long the longest has waited. Ages are computed at scrape time, so they grow between
    two pod events as a wait does."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._created: dict[str, float] = {}
        """Creation time (Unix seconds) by pod key; NaN when the pod carries none yet."""
        # /metrics is served on its own thread while the handlers update the pods on the loop's.
        self._lock = threading.Lock()

    def waiting(self, key: str, created_seconds: float) -> None:
        with self._lock:
            self._created[key] = created_seconds

    def done(self, key: str) -> None:
        """Bound, deleted, or no longer Thrifty's to place."""
        with self._lock:
            self._created.pop(key, None)

    def replace(self, created_seconds: Mapping[str, float]) -> None:
        """All the pods that wait now, from a full pod list (what events may have missed)."""
        with self._lock:
            self._created = dict(created_seconds)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self._lock:
            created = [c for c in self._created.values() if not math.isnan(c)]
            count = len(self._created)
        oldest = max((self._clock() - c for c in created), default=0.0)
        yield GaugeMetricFamily("thrifty_pods_pending", "Pods with schedulerName thrifty that wait for a node.",
                                value=count)
        yield GaugeMetricFamily("thrifty_pods_pending_oldest_seconds",
                                "Time the longest-waiting of those pods has waited since its creation "
                                "(0 when none waits).", value=max(oldest, 0.0))


class Metrics:
    """All collectors of one operator, on their own registry (a fresh one per test)."""

    def __init__(self, registry: CollectorRegistry | None = None, clock: Callable[[], float] = time.time) -> None:
        # No `*_created` series: they would double the series of every counter and histogram,
        # and Prometheus does not need them to compute rates. (A process-wide switch.)
        disable_created_metrics()
        self.registry = registry or CollectorRegistry()
        r = self.registry
        w = WORKLOAD_LABELS
        self.build = Info("thrifty_build", "The running operator's version, and those of Python and kopf.",
                          registry=r)
        self.build.info({"version": __version__, "python_version": platform.python_version(),
                         "kopf_version": version("kopf")})
        self.reward = Gauge("thrifty_reward", "Reward of the workload's last step (higher is better).", w, registry=r)
        self.node_power = Gauge("thrifty_node_power_watts", "Estimated power draw of the node.", ["node"], registry=r)
        self.node_energy = Counter("thrifty_node_energy_joules_total", "Estimated energy used by the node.",
                                   ["node"], registry=r)
        self.workload_power = Gauge("thrifty_workload_power_watts",
                                    "Power attributed to the workload's pods (CPU share of their nodes' power).",
                                    w, registry=r)
        self.workload_energy = Counter("thrifty_workload_energy_joules_total",
                                       "Energy attributed to the workload's pods.", w, registry=r)
        self.cluster_power = Gauge("thrifty_cluster_power_watts", "Estimated power draw of all nodes.", registry=r)
        self.cluster_energy = Counter("thrifty_cluster_energy_joules_total", "Estimated energy used by all nodes.",
                                      registry=r)
        self.decisions = Counter("thrifty_decisions_total", "Decisions recorded, by kind and outcome.",
                                 ["kind", "outcome"], registry=r)
        self.decision_duration = Histogram("thrifty_decision_duration_seconds",
                                           "Time of the pure decision core (policy and safety) for one step.",
                                           ["step"], buckets=DECISION_BUCKETS_SECONDS, registry=r)
        self.step_duration = Histogram("thrifty_step_duration_seconds",
                                       "Time of a whole reconcile step: observe, decide, act and record.",
                                       ["step"], buckets=STEP_BUCKETS_SECONDS, registry=r)
        self.reconcile_errors = Counter("thrifty_reconcile_errors_total",
                                        "Reconcile steps stopped by an error (the API, or a bug), by kind of step.",
                                        ["kind"], registry=r)
        self.placement_latency = Histogram("thrifty_placement_latency_seconds",
                                           "Time from a pod's creation to its binding, as the operator's watch "
                                           "saw it (pods of Thrifty's scheduler).",
                                           buckets=PLACEMENT_LATENCY_BUCKETS_SECONDS, registry=r)
        self.pending_pods = PendingPods(clock)
        r.register(self.pending_pods)
        self.slo_attainment = Gauge("thrifty_slo_attainment_ratio",
                                    "Fraction of recent steps whose p95 latency met the SLO.", w, registry=r)
        self.latency = Gauge("thrifty_latency_p95_seconds", "Observed p95 latency of the workload.", w, registry=r)
        self.replicas = Gauge("thrifty_workload_replicas", "Pods the workload has.", w, registry=r)
        self.cpu_request = Gauge("thrifty_workload_cpu_request_cores",
                                 "CPU request of each sized container of the workload's pods.",
                                 [*w, "container"], registry=r)
        self.memory_request = Gauge("thrifty_workload_memory_request_bytes",
                                    "Memory request of each sized container of the workload's pods.",
                                    [*w, "container"], registry=r)
        self.policy = Info("thrifty_policy", "The policy serving decisions.", registry=r)
        self.fallbacks = Counter("thrifty_policy_fallbacks_total",
                                 "Times the heuristic decided because the policy failed to load or to decide.",
                                 ["kind"], registry=r)
        self.source_up = Gauge("thrifty_metrics_source_up", "1 if the metrics source answered its last query.",
                               ["source"], registry=r)
        self.source_errors = Counter("thrifty_metrics_source_errors_total", "Failed queries to a metrics source.",
                                     ["source"], registry=r)
        self.api_requests = Counter("thrifty_kube_api_requests_total",
                                    "Kubernetes API calls Thrifty made (kopf's own watches and patches aside), "
                                    "by verb, resource and outcome.", ["verb", "resource", "outcome"], registry=r)
        self.watch_events = Counter("thrifty_watch_events_total",
                                    "Watch events the operator's informer received, by kind (nodes, pods, "
                                    "rlworkloads); kopf's own watch of RLWorkloads aside.", ["kind"], registry=r)
        self.leader = Gauge("thrifty_leader",
                            "1 while this replica holds the leader Lease and may write, else 0 (standby).",
                            registry=r)
        self.leader_transitions = Counter("thrifty_leader_transitions_total",
                                          "Changes of this replica's leadership, by outcome (acquired, lost, "
                                          "released).", ["outcome"], registry=r)
        self.fenced_writes = Counter("thrifty_fenced_writes_total",
                                     "Writes refused before they were sent because this replica was not the "
                                     "leader, by resource.", ["resource"], registry=r)
        for outcome in LEADER_TRANSITIONS:
            self.leader_transitions.labels(outcome)
        # Zero-valued series exist from the start, so rate() and alerts see them before the first event.
        for kind in DECISION_KINDS:
            for outcome in OUTCOMES:
                self.decisions.labels(kind, outcome)
        for kind in FALLBACK_KINDS:
            self.fallbacks.labels(kind)
        for source in SOURCES:
            self.source_errors.labels(source)
        for kind in RECONCILE_KINDS:
            self.reconcile_errors.labels(kind)
        self._nodes: set[str] = set()
        self._containers: dict[tuple[str, str], set[str]] = {}

    def serve(self, port: int, address: str = "0.0.0.0") -> None:
        """Serve ``/metrics`` over HTTP on a daemon thread (raises OSError if the port is taken)."""
        start_http_server(port, addr=address, registry=self.registry)

    def set_policy(self, info: PolicyInfo) -> None:
        self.policy.info({"name": info.name, "version": info.version, "backend": info.backend})

    def count_decision(self, kind: str, outcome: str) -> None:
        """``kind`` and ``outcome`` as in ``status.lastDecisions`` (any case)."""
        self.decisions.labels(kind.lower(), outcome.lower()).inc()

    def count_fallback(self, kind: str) -> None:
        self.fallbacks.labels(kind).inc()

    def count_reconcile_error(self, kind: str) -> None:
        """``kind``: one of :data:`RECONCILE_KINDS`."""
        self.reconcile_errors.labels(kind).inc()

    def count_api_request(self, verb: str, resource: str, status: int) -> None:
        """One API call: its Kubernetes verb (``list``, ``create`` ...), the resource or
        subresource (``pods``, ``pods/binding`` ...) and its HTTP status (0: no answer)."""
        outcome = ("no-response" if status == 0 else "success" if 200 <= status < 300
                   else "client-error" if status < 500 else "server-error")
        self.api_requests.labels(verb, resource, outcome).inc()

    def watch_leadership(self, is_leader: Callable[[], bool]) -> None:
        """``thrifty_leader`` is read from ``is_leader`` at each scrape (the fence's own answer,
        so a lapsed renew shows as 0 at once)."""
        self.leader.set_function(lambda: 1.0 if is_leader() else 0.0)

    def count_leader_transition(self, outcome: str) -> None:
        """``outcome``: one of :data:`LEADER_TRANSITIONS`."""
        self.leader_transitions.labels(outcome).inc()

    def count_fenced_write(self, resource: str) -> None:
        self.fenced_writes.labels(resource).inc()

    def set_source(self, source: str, *, up: bool) -> None:
        self.source_up.labels(source).set(1.0 if up else 0.0)
        if not up:
            self.source_errors.labels(source).inc()

    def set_node_power(self, watts: Mapping[str, float], elapsed_seconds: float) -> None:
        """Node and cluster power now, and the energy used over the ``elapsed_seconds`` before."""
        for gone in self._nodes - watts.keys():
            self.node_power.remove(gone)
            self.node_energy.remove(gone)
        self._nodes = set(watts)
        for node, value in watts.items():
            self.node_power.labels(node).set(value)
            self.node_energy.labels(node).inc(value * elapsed_seconds)
        total = sum(watts.values())
        self.cluster_power.set(total)
        self.cluster_energy.inc(total * elapsed_seconds)

    def set_workload(self, namespace: str, name: str, *, watts: float, elapsed_seconds: float, replicas: int,
                     reward: float, latency_p95_seconds: float, slo_attainment: float | None) -> None:
        """The workload's figures after one sizing step; unknown figures (NaN, None) are left out."""
        self.workload_power.labels(namespace, name).set(watts)
        self.workload_energy.labels(namespace, name).inc(watts * elapsed_seconds)
        self.replicas.labels(namespace, name).set(replicas)
        if reward == reward:
            self.reward.labels(namespace, name).set(reward)
        if latency_p95_seconds == latency_p95_seconds:
            self.latency.labels(namespace, name).set(latency_p95_seconds)
        if slo_attainment is not None:
            self.slo_attainment.labels(namespace, name).set(slo_attainment)

    def set_container_requests(self, namespace: str, name: str, requests: Mapping[str, tuple[float, float]]) -> None:
        """``{container: (cpu cores, memory bytes)}`` of the workload's sized containers now."""
        workload = (namespace, name)
        for gone in self._containers.get(workload, set()) - requests.keys():
            self.cpu_request.remove(namespace, name, gone)
            self.memory_request.remove(namespace, name, gone)
        self._containers[workload] = set(requests)
        for container, (cores, memory) in requests.items():
            self.cpu_request.labels(namespace, name, container).set(cores)
            self.memory_request.labels(namespace, name, container).set(memory)

    def forget_workload(self, namespace: str, name: str) -> None:
        """Drop a deleted workload's series."""
        for metric in (self.reward, self.workload_power, self.workload_energy, self.slo_attainment,
                       self.latency, self.replicas):
            try:
                metric.remove(namespace, name)
            except KeyError:
                pass
        self.set_container_requests(namespace, name, {})
        del self._containers[(namespace, name)]
