"""``thrifty replay``: drive kwok pods with real traces and export their modelled latency.

Every ``--interval-seconds``, for each RLWorkload in ``--namespace`` that has replay annotations
(see :mod:`thrifty.replay` for the format and the model):

1. reads the workload's running pods (label ``thrifty.dev/workload``) and their CPU settings
   (the resources the "kubelet" reports in status, else the spec);
2. writes one kwok ``ResourceUsage`` per pod with the replayed CPU and memory. kwok serves it as
   the simulated kubelet's ``/metrics/resource``; metrics-server scrapes that, and
   ``metrics.k8s.io`` (what the operator reads) reports it one or two scrapes later;
3. sets Prometheus gauges on ``--metrics-port``, among them the **modelled** (not measured) p95
   latency that the sample RLWorkloads' ``spec.slo.latencyQuery`` reads.

A workload whose annotations are wrong is skipped; the error is logged and recorded as a Warning
Event on the RLWorkload, once per distinct message.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from thrifty import replay
from thrifty.commands.flags import positive_float
from thrifty.observe import GROUP, PLURAL, VERSION, WORKLOAD_LABEL, cpu_millicores, is_terminating, parse_time
from thrifty.replay import ReplaySpec, ReplicaCpu, WorkloadSignals
from thrifty.traces import Trace, load

log = logging.getLogger("thrifty.replay")

KWOK_GROUP, KWOK_VERSION, RESOURCE_USAGES = "kwok.x-k8s.io", "v1alpha1", "resourceusages"
FIELD_MANAGER = "thrifty-replay"




def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "replay",
        help="replay real traces as the usage of simulated (kwok) pods and export modelled latency",
        description="Drive kwok pods with real traces and export their modelled latency (see thrifty.replay).",
    )
    parser.add_argument(
        "--kubeconfig", help="kubeconfig file (default: $KUBECONFIG or ~/.kube/config, else in-cluster)"
    )
    parser.add_argument("--namespace", required=True, help="namespace whose RLWorkloads are replayed")
    parser.add_argument(
        "--interval-seconds",
        type=positive_float("--interval-seconds"),
        default=10.0,
        help="wall seconds between two updates (default %(default)s: metrics-server's scrape interval in hack/kwok/)",
    )
    parser.add_argument(
        "--speedup",
        type=positive_float("--speedup"),
        default=1.0,
        help="trace seconds replayed per wall second (default %(default)s; 60 plays an hour of trace per minute)",
    )
    parser.add_argument(
        "--traces-root",
        default=".",
        help="directory that the trace paths in the annotations are relative to (default: the current directory)",
    )
    parser.add_argument(
        "--metrics-address", default="127.0.0.1", help="address of the /metrics endpoint (default %(default)s)"
    )
    parser.add_argument(
        "--metrics-port", type=int, default=9102, help="port of the /metrics endpoint (default %(default)s)"
    )
    parser.add_argument("--once", action="store_true", help="do one update and exit (no /metrics endpoint)")
    parser.set_defaults(func=run)


@dataclass(frozen=True)
class _Pod:
    """What the replayer needs of one running pod."""

    name: str
    uid: str
    container: str
    cpu: ReplicaCpu


def _replica_cpu(pod: dict, container: str) -> ReplicaCpu:
    """The container's CPU: what the kubelet (kwok) reports as actuated, else the spec."""
    spec = next(c for c in pod["spec"]["containers"] if c["name"] == container)
    resources = spec.get("resources") or {}
    for status in pod.get("status", {}).get("containerStatuses") or []:
        if status.get("name") == container and status.get("resources"):
            resources = status["resources"]
    requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
    return ReplicaCpu(
        request_millicores=cpu_millicores(requests["cpu"]) if "cpu" in requests else math.nan,
        limit_millicores=cpu_millicores(limits["cpu"]) if "cpu" in limits else math.inf,
    )


def _running(pod: dict) -> bool:
    return pod.get("status", {}).get("phase") == "Running" and not is_terminating(pod)


class _Gauges:
    """The replayer's Prometheus gauges, labelled ``namespace`` and ``rlworkload`` as the operator's."""

    def __init__(self) -> None:
        from prometheus_client import Gauge

        labels = ("namespace", "rlworkload")
        self.latency = Gauge(
            "thrifty_replay_latency_p95_seconds",
            "MODELLED, not measured: p95 response time of the workload from the M/M/c queue of "
            "thrifty.latency, given the replayed arrival rate, its running replicas and their CPU.",
            labels,
        )
        self.rate = Gauge(
            "thrifty_replay_request_rate_per_second", "Replayed request arrival rate of the workload.", labels
        )
        self.demand = Gauge(
            "thrifty_replay_cpu_demand_millicores",
            "CPU the workload's replayed requests need, over all replicas.",
            labels,
        )
        self.usage = Gauge(
            "thrifty_replay_cpu_usage_millicores",
            "CPU usage written to kwok for the workload's pods (demand split over replicas, capped at limits).",
            labels,
        )
        self.utilisation = Gauge(
            "thrifty_replay_utilisation",
            "Modelled utilisation of the workload's CPU capacity (above 1: saturated).",
            labels,
        )
        self.replicas = Gauge(
            "thrifty_replay_running_replicas", "Running pods of the workload seen by the replayer.", labels
        )
        self.trace_seconds = Gauge(
            "thrifty_replay_trace_seconds",
            "Position in the workload's trace, in trace seconds since its start.",
            labels,
        )
        self._all = (
            self.latency,
            self.rate,
            self.demand,
            self.usage,
            self.utilisation,
            self.replicas,
            self.trace_seconds,
        )
        self._seen: set[str] = set()

    def record(
        self,
        key: str,
        *,
        demand: replay.Demand,
        usage_millicores: float,
        latency_seconds: float,
        utilisation: float,
        replicas: int,
        trace_seconds: float,
    ) -> None:
        """Set one workload's series; ``key`` is ``namespace/name``."""
        labels = key.split("/", 1)
        self.latency.labels(*labels).set(latency_seconds)
        self.rate.labels(*labels).set(demand.request_rate_per_second)
        self.demand.labels(*labels).set(demand.cpu_millicores)
        self.usage.labels(*labels).set(usage_millicores)
        self.utilisation.labels(*labels).set(utilisation)
        self.replicas.labels(*labels).set(replicas)
        self.trace_seconds.labels(*labels).set(trace_seconds)

    def forget_except(self, keep: set[str]) -> None:
        """Drop the series of workloads that are gone or no longer replayed."""
        for key in self._seen - keep:
            for gauge in self._all:
                gauge.remove(*key.split("/", 1))
        self._seen = set(keep)


class Replayer:
    """One namespace's replay: the Kubernetes I/O around the pure model of :mod:`thrifty.replay`."""

    def __init__(self, api_client, namespace: str, traces_root: Path, speedup: float, gauges: _Gauges) -> None:
        from kubernetes import client

        self.namespace = namespace
        self.traces_root = traces_root
        self.speedup = speedup
        self.gauges = gauges
        self.core = client.CoreV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)
        self._traces: dict[str, Trace] = {}
        self._signals: dict[ReplaySpec, WorkloadSignals] = {}
        self._reported: dict[str, str] = {}  # workload -> last error reported, to report each once

    def _load_trace(self, path: str) -> Trace:
        if path not in self._traces:
            self._traces[path] = load(self.traces_root / path)  # an absolute path stays as it is
        return self._traces[path]

    def _list(self, call, *args, **kwargs) -> list[dict]:
        # Raw JSON: the pods are only read, and dicts keep field names as in the API.
        response = call(*args, _preload_content=False, **kwargs)
        return json.loads(response.data)["items"]

    def step(self, now: float) -> None:
        """One update of every replayed workload's ResourceUsages and gauges (``now``: Unix s)."""
        workloads = self._list(self.custom.list_namespaced_custom_object, GROUP, VERSION, self.namespace, PLURAL)
        running: dict[str, list[dict]] = {}
        for pod in self._list(self.core.list_namespaced_pod, self.namespace, label_selector=WORKLOAD_LABEL):
            if _running(pod):
                running.setdefault(pod["metadata"]["labels"][WORKLOAD_LABEL], []).append(pod)
        existing = {
            usage["metadata"]["name"]: usage
            for usage in self._list(
                self.custom.list_namespaced_custom_object,
                KWOK_GROUP,
                KWOK_VERSION,
                self.namespace,
                RESOURCE_USAGES,
                label_selector=f"{replay.MANAGED_BY_LABEL}={replay.MANAGED_BY}",
            )
        }
        written: set[str] = set()
        replayed: set[str] = set()
        for workload in workloads:
            pods = self._replay(workload, running.get(workload["metadata"]["name"], []), existing, now)
            if pods is not None:
                written |= pods
                replayed.add(f"{self.namespace}/{workload['metadata']['name']}")
        for stale in existing.keys() - written:
            self._delete(stale)
        self.gauges.forget_except(replayed)

    def _replay(self, workload: dict, pods: list[dict], existing: dict[str, dict], now: float) -> set[str] | None:
        """Replay one workload onto its running ``pods``; the pods written, None if not replayed."""
        name = workload["metadata"]["name"]
        key = f"{self.namespace}/{name}"
        try:
            spec = replay.parse_replay_spec(key, workload["metadata"].get("annotations") or {})
            if spec is None:
                return None
            if spec not in self._signals:
                self._signals[spec] = replay.resolve_signals(spec, key, self._load_trace)
            replicas = [self._pod(pod, spec, key) for pod in pods]
        except replay.ReplayAnnotationError as err:
            self._report(workload, str(err))
            return None
        self._reported.pop(key, None)
        # Anchored on the workload's creation, so a restarted replayer picks up where it was.
        trace_seconds = self.speedup * max(now - parse_time(workload["metadata"]["creationTimestamp"]), 0.0)
        demand = replay.demand_at(self._signals[spec], spec.cpu_seconds_per_request, trace_seconds)
        shares = replay.split_cpu(demand.cpu_millicores, [pod.cpu for pod in replicas])
        for pod, cpu in zip(replicas, shares, strict=True):
            manifest = replay.resource_usage_manifest(
                namespace=self.namespace,
                pod_name=pod.name,
                pod_uid=pod.uid,
                workload=name,
                container=pod.container,
                cpu_millicores=cpu,
                memory_bytes=demand.memory_bytes_per_replica,
            )
            old = existing.get(pod.name)
            if old is None or old.get("spec") != manifest["spec"]:
                self._apply(manifest)
        latency, utilisation = replay.modelled_latency_p95_seconds(
            demand, [pod.cpu for pod in replicas], spec.cpu_seconds_per_request
        )
        self.gauges.record(
            key,
            demand=demand,
            usage_millicores=float(shares.sum()),
            latency_seconds=latency,
            utilisation=utilisation,
            replicas=len(replicas),
            trace_seconds=trace_seconds,
        )
        return {pod.name for pod in replicas}

    def _pod(self, pod: dict, spec: ReplaySpec, workload: str) -> _Pod:
        names = [c["name"] for c in pod["spec"]["containers"]]
        container = spec.container or names[0]
        if container not in names:
            raise replay.ReplayAnnotationError(
                workload,
                replay.CONTAINER_ANNOTATION,
                f"pod {pod['metadata']['name']} has no container {container!r} (it has {', '.join(names)})",
            )
        return _Pod(
            name=pod["metadata"]["name"],
            uid=pod["metadata"]["uid"],
            container=container,
            cpu=_replica_cpu(pod, container),
        )

    def _apply(self, manifest: dict) -> None:
        from kubernetes.client.exceptions import ApiException

        try:
            self.custom.patch_namespaced_custom_object(
                KWOK_GROUP,
                KWOK_VERSION,
                self.namespace,
                RESOURCE_USAGES,
                manifest["metadata"]["name"],
                manifest,
                field_manager=FIELD_MANAGER,
                force=True,
                _content_type="application/apply-patch+yaml",
            )
        except ApiException as err:
            if err.status == 404 and "resourceusages" in str(err.body):
                raise SystemExit(
                    "thrifty replay: this cluster does not serve kwok ResourceUsages (kwok.x-k8s.io/v1alpha1); "
                    "create it with hack/cluster.sh, which enables that CRD (hack/kwok/kwokctl.yaml)"
                ) from None
            # The pod may have gone between the list and the apply (the ownerReference then
            # points at nothing): the next step sees the new state.
            log.warning(
                "writing ResourceUsage %s/%s failed: %s", self.namespace, manifest["metadata"]["name"], err.reason
            )

    def _delete(self, name: str) -> None:
        from kubernetes.client.exceptions import ApiException

        try:
            self.custom.delete_namespaced_custom_object(KWOK_GROUP, KWOK_VERSION, self.namespace, RESOURCE_USAGES, name)
        except ApiException as err:
            if err.status != 404:
                log.warning("deleting ResourceUsage %s/%s failed: %s", self.namespace, name, err.reason)

    def _report(self, workload: dict, message: str) -> None:
        """Log an annotation error and record it as an Event on the RLWorkload, once per message."""
        from kubernetes.client import CoreV1Event
        from kubernetes.client.exceptions import ApiException

        key = f"{self.namespace}/{workload['metadata']['name']}"
        if self._reported.get(key) == message:
            return
        self._reported[key] = message
        log.error("%s", message)
        stamp = datetime.now(UTC).isoformat()
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{workload['metadata']['name']}.", "namespace": self.namespace},
            "involvedObject": {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "RLWorkload",
                "name": workload["metadata"]["name"],
                "namespace": self.namespace,
                "uid": workload["metadata"]["uid"],
            },
            "reason": "ReplayAnnotationInvalid",
            "message": message,
            "type": "Warning",
            "source": {"component": FIELD_MANAGER},
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        try:
            # model_validate is what the client's validate_call does to a dict body.
            self.core.create_namespaced_event(self.namespace, CoreV1Event.model_validate(event))
        except ApiException as err:
            log.warning("recording an Event on %s failed: %s", key, err.reason)


def run(args: argparse.Namespace) -> int:
    from kubernetes import client, config
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.kubeconfig:
        config.load_kube_config(config_file=args.kubeconfig)
    else:
        try:
            config.load_kube_config()
        except config.ConfigException:
            config.load_incluster_config()
    gauges = _Gauges()
    replayer = Replayer(client.ApiClient(), args.namespace, Path(args.traces_root), args.speedup, gauges)
    if args.once:
        replayer.step(time.time())
        return 0
    from prometheus_client import start_http_server

    start_http_server(args.metrics_port, addr=args.metrics_address)
    log.info(
        "replaying RLWorkloads of namespace %s every %.0f s at %gx; modelled latency on http://%s:%d/metrics",
        args.namespace,
        args.interval_seconds,
        args.speedup,
        args.metrics_address,
        args.metrics_port,
    )
    while True:
        started = time.monotonic()
        try:
            replayer.step(time.time())
        except (ApiException, HTTPError, OSError) as err:  # the API server may be briefly away
            log.warning("replay step failed, retrying in %.0f s: %s", args.interval_seconds, err)
        time.sleep(max(args.interval_seconds - (time.monotonic() - started), 0.0))
