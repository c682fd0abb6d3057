"""The operator's reconcile steps and the thin kopf handlers that trigger them.

One step, as in the design::

    observe ──► snapshot ──► features ──► policy ──► safety ──► actuate ──► record
    (adapter)   (observe)    (inside the policy)     (core)     (adapter)   (record, metrics)

Placement is not a step here: kube-scheduler's ``thrifty`` profile filters every pod with
``schedulerName: thrifty`` and Thrifty's extender (:mod:`thrifty.extender`) scores and binds it
(docs/placement.md).

**Sizing** (:meth:`Reconciler.reconcile`) is a per-RLWorkload kopf timer. The snapshot covers the
whole cluster, so dependencies and capacity count; the core sizes every workload in one policy
step, and the step acts on its own workload only. Acting on one workload per timer keeps a
failing workload from stalling the others. Only the leader runs kopf (:mod:`thrifty.leadership`,
``thrifty run``); a step also checks leadership before it starts and is cancelled if leadership
is lost while it runs. One lock serialises the steps (and the extender's writes to
``status.lastDecisions``), so each acts on a snapshot nobody else is changing.

Replica count. ``spec.replicas.desired`` (the scale subresource's field) is the count the
workload runs: set to ``initial`` on the first step, in ``Auto`` to each count the policy decides
(which decides from it, as an HPA decides from a Deployment's ``spec.replicas``), or by
``kubectl scale``. Every step brings the pods to it: finished pods (failed, evicted by the
kubelet) are deleted and replaced, missing pods created, surplus running pods evicted through the
Eviction API, so PodDisruptionBudgets hold; a budget's refusal sets ``ScaleInBlocked`` and the
next step tries again.

Modes. ``Auto`` applies decisions. ``Recommend`` records them (Events, ``status.lastDecisions``
with outcome Recommended, ``status.recommendedReplicas`` and ``recommendedRequests``) and applies
none; it only keeps the workload at ``spec.replicas.desired`` (``initial`` until someone runs
``kubectl scale``). Those pods keep the template's ``schedulerName``, so kube-scheduler places
them unless the template names ``thrifty``; where Thrifty would have placed each is recorded as a
recommendation. Recommend never changes the count by itself and never resizes.

Restart safety. Nothing needed for correctness lives only in memory: the pods are counted from
the API (label and controller ownerReference) before any is created; the count is in
``spec.replicas.desired``; pod names are the lowest
free ``<workload>-<n>``, so two replicas racing (or a restarted one repeating a step) collide on a
name instead of creating duplicates; the churn ledger is seeded from ``status.lastDecisions``. A
kill -9 therefore loses at most the usage history, which refills, and a few Events.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import kopf
import numpy as np

from thrifty.actions import ContainerResources, container_groups
from thrifty.adapter import (
    EvictionBlocked,
    Fenced,
    Kube,
    KubeError,
    MetricsSourceError,
    Prometheus,
    pod_manifest,
    post_explanation,
)
from thrifty.core import (
    ContainerDecision,
    WorkloadDecision,
    plan_placements,
    plan_sizing,
    pods_to_remove,
    sizing_signals,
    with_replicas,
)
from thrifty.energy import PowerModel
from thrifty.history import UsageHistory
from thrifty.leadership import LeaderElectionConfig, Leadership, NotLeader
from thrifty.metrics import Metrics
from thrifty.observe import (
    AUTO,
    GROUP,
    PLURAL,
    SCHEDULER_NAME,
    VERSION,
    WorkloadSpec,
    build_snapshot,
    container_resources,
    finished_pods,
    finished_reason,
    is_finished,
    is_ready,
    is_terminating,
    needs_placement,
    node_usage,
    object_key,
    owns,
    parse_time,
    parse_workload,
    pod_selector,
    usage_by_uid,
)
from thrifty.policy.base import Policy
from thrifty.policy.heuristic import HeuristicPolicy
from thrifty.record import (
    APPLIED,
    FAILED,
    RECOMMENDED,
    REJECTED,
    ContainerState,
    DecisionRecord,
    EventText,
    churn_times,
    decision_event,
    fallback_event,
    finished_pod_event,
    format_time,
    horizontal_record,
    merge_conditions,
    merge_last_decisions,
    metrics_condition,
    metrics_unavailable_event,
    placement_record,
    policy_condition,
    policy_load_event,
    ready_condition,
    scale_in_blocked_event,
    scale_in_condition,
    sizing_held_event,
    slo_attainment,
    slo_condition,
    status_needs_write,
    vertical_record,
    workload_status,
)
from thrifty.reward import workload_rewards
from thrifty.safety import ChurnLedger, InvalidPolicyOutput, SafetyConfig
from thrifty.snapshot import ClusterSnapshot

logger = logging.getLogger("thrifty")

METRICS_API, PROMETHEUS = "metrics-api", "prometheus"


@dataclass(frozen=True, kw_only=True)
class OperatorConfig:
    """Everything ``thrifty run`` is configured with."""

    kubeconfig_path: str | None = None
    """Kubeconfig file; None: in-cluster credentials, else ``$KUBECONFIG`` or ``~/.kube/config``."""
    namespace: str | None = None
    """Namespace whose RLWorkloads and Pending pods Thrifty handles; None: every namespace. Pods
    of all namespaces are read either way: their requests fill the nodes."""
    reconcile_interval_seconds: float = 15.0
    """Seconds between two sizing steps of one RLWorkload (also the usage history's step)."""
    metrics_port: int = 8000
    """TCP port of the Prometheus ``/metrics`` endpoint."""
    metrics_address: str = "0.0.0.0"
    """Address the ``/metrics`` endpoint listens on."""
    liveness_endpoint: str | None = None
    """URL of kopf's health endpoint (``http://0.0.0.0:8080/healthz``); None serves none."""
    prometheus_url: str | None = None
    """Base URL of the Prometheus that answers ``spec.slo.latencyQuery``; None: no latency source."""
    prometheus_timeout_seconds: float = 5.0
    """Longest wait for one Prometheus query."""
    policy_spec: str = "heuristic"
    """``heuristic``, a policy directory, or ``module:Class`` (see :mod:`thrifty.policy.loader`)."""
    policy_backend: str = "numpy"
    """Backend that serves a policy directory: ``numpy`` or ``rllib``."""
    leader_election: LeaderElectionConfig | None = None
    """The Lease the replicas compete for and the election's timings; None: no election, this
    replica always leads (``--standalone``: one replica only, or a development run)."""
    history_window_samples: int = 60
    """Usage samples kept per container (one per reconcile interval)."""
    last_decisions_limit: int = 10
    """Entries kept in ``status.lastDecisions`` (at most 20)."""
    status_refresh_seconds: float = 60.0
    """Longest the status's measured figures (energy, reward, latency) go unwritten while nothing
    else in the status changes; a change of anything else is written at the step that makes it."""
    slo_window_steps: int = 40
    """Recent sizing steps over which ``status.sloAttainment`` is computed."""
    safety: SafetyConfig = field(default_factory=SafetyConfig)
    """Bounds, step limits and cooldowns applied to every policy output."""

    def __post_init__(self) -> None:
        def fail(name: str, problem: str) -> None:
            raise ValueError(f"OperatorConfig.{name}: {problem}")

        for name in ("reconcile_interval_seconds", "prometheus_timeout_seconds", "status_refresh_seconds"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                fail(name, f"must be finite and > 0, got {value!r}")
        if not 1 <= self.metrics_port <= 65535:
            fail("metrics_port", f"must be a TCP port (1 to 65535), got {self.metrics_port!r}")
        if self.history_window_samples < 1:
            fail("history_window_samples", f"must be >= 1, got {self.history_window_samples!r}")
        if not 1 <= self.last_decisions_limit <= 20:
            fail("last_decisions_limit", f"must lie in [1, 20] (the CRD's maxItems), got {self.last_decisions_limit!r}")
        if self.slo_window_steps < 1:
            fail("slo_window_steps", f"must be >= 1, got {self.slo_window_steps!r}")
        if self.prometheus_url is not None and not self.prometheus_url.startswith(("http://", "https://")):
            fail("prometheus_url", f"must start with http:// or https://, got {self.prometheus_url!r}")


@dataclass
class Observation:
    """What one step read from the API and the metrics sources."""

    time_seconds: float
    nodes: list[dict]
    pods: list[dict]
    """Kept up to date (:meth:`put`) as the step binds, creates and resizes pods."""
    workloads: list[WorkloadSpec]
    objects: dict[str, dict]
    """RLWorkload objects by key (for Events)."""
    node_usage: dict[str, tuple[float, float]]
    container_usage: dict[tuple[str, str], tuple[float, float]]
    latency_seconds: dict[str, float]
    source_errors: dict[str, list[str]]
    """Per workload key: why its usage or latency is unknown (empty when both are fine)."""

    def __post_init__(self) -> None:
        self._rows = {object_key(p): i for i, p in enumerate(self.pods)}

    def workload(self, key: str) -> WorkloadSpec | None:
        return next((w for w in self.workloads if w.key == key), None)

    def pod(self, key: str) -> dict | None:
        row = self._rows.get(key)
        return None if row is None else self.pods[row]

    def put(self, pod: dict) -> None:
        """Add a pod the step created, or replace one with the API's newer version of it."""
        key = object_key(pod)
        if key in self._rows:
            self.pods[self._rows[key]] = pod
        else:
            self._rows[key] = len(self.pods)
            self.pods.append(pod)


@dataclass
class _Memory:
    """What the operator remembers about one workload between its steps (all rebuildable)."""

    slo_met: deque
    last_step_seconds: float | None = None
    energy_joules_total: float = 0.0
    announced: set[str] = field(default_factory=set)
    """One-off warnings already posted (policy load failure, the current metrics outage)."""
    last_recommendation: object = None
    last_status_write_seconds: float | None = None
    """When this process last wrote the workload's status (the step's clock, Unix seconds)."""


@dataclass
class _Applied:
    """What a step did to its workload."""

    created: int = 0
    deleted: int = 0
    resized_pods: int = 0
    records: list[DecisionRecord] = field(default_factory=list)
    resize_events: list[tuple[dict, EventText]] = field(default_factory=list)
    """Events to post on the pods that were resized."""
    sizes: dict[str, ContainerResources] = field(default_factory=dict)
    """Container sizes of the pods the step creates."""
    new_pods: list[dict] = field(default_factory=list)
    """The pods the step created, as the API returned them."""
    removed: set[str] = field(default_factory=set)
    """``namespace/name`` of the pods whose eviction the API accepted."""
    blocked: str | None = None
    """Which pods a PodDisruptionBudget kept from eviction, and the budget's words; None: none."""
    workload_events: list[EventText] = field(default_factory=list)
    """Events to post on the workload besides the decisions' own (finished pods removed, a
    scale-in held up in Recommend mode)."""


def _workload_event_object(obj: Mapping) -> dict:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "RLWorkload", "metadata": obj["metadata"]}


def _pod_event_object(pod: Mapping) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": pod["metadata"]}


def initial_sizes(workload: WorkloadSpec) -> dict[str, ContainerResources]:
    """Sizes of the first pods: the template's, with the named requests moved into the spec's
    bounds (and a limit raised to its request if that moved it above)."""
    sizes = {}
    for container in (workload.template.get("spec") or {}).get("containers", []):
        bounds = workload.container_bounds.get(container["name"])
        if bounds is None:
            continue
        size = container_resources(container)
        cpu = float(np.clip(size.cpu_request_millicores, np.nan_to_num(bounds.cpu_min_millicores, nan=0.0),
                            np.nan_to_num(bounds.cpu_max_millicores, nan=np.inf)))
        memory = float(np.clip(size.memory_request_bytes, np.nan_to_num(bounds.memory_min_bytes, nan=0.0),
                               np.nan_to_num(bounds.memory_max_bytes, nan=np.inf)))
        sizes[container["name"]] = ContainerResources(cpu, max(size.cpu_limit_millicores, cpu),
                                                      memory, max(size.memory_limit_bytes, memory))
    return sizes


def free_pod_names(workload: WorkloadSpec, pods: Iterable[Mapping], count: int) -> list[str]:
    """The ``count`` lowest free names ``<workload>-<n>`` in the workload's namespace.

    Deterministic on purpose: two operators (or one repeating a step after a restart) that
    decide the same scale-out pick the same names, and the API server refuses the duplicate.
    """
    taken = {p["metadata"]["name"] for p in pods if p["metadata"].get("namespace") == workload.namespace}
    names: list[str] = []
    index = 0
    while len(names) < count:
        candidate = f"{workload.name}-{index}"
        if candidate not in taken:
            names.append(candidate)
        index += 1
    return names


def hold(snapshot: ClusterSnapshot, workload: int, why: str) -> WorkloadDecision:
    """The decision when sizing cannot be trusted (a metrics source is down, no policy gave a
    valid answer): no sizing change, except bringing the replica count back into ``[min, max]``,
    which needs no measurement."""
    workloads, containers = snapshot.workloads, snapshot.containers
    current = int(workloads.replicas[workload])
    target = int(np.clip(current, workloads.replicas_min[workload], workloads.replicas_max[workload]))
    verb = f"scaled {current}\u2192{target}: restoring spec.replicas bounds" if target != current \
        else f"kept {current} replicas"
    kept = []
    for name, rows in container_groups(snapshot, workload).items():
        r = rows[0]
        size = ContainerResources(
            float(containers.cpu_request_millicores[r]), float(containers.cpu_limit_millicores[r]),
            float(containers.memory_request_bytes[r]), float(containers.memory_limit_bytes[r]))
        kept.append(ContainerDecision(name, size, size, f"kept {name} ({why})"))
    return WorkloadDecision(
        workload=workloads.names[workload], replicas_from=current, replicas_to=target,
        remove_pods=tuple(snapshot.pods.names[p] for p in pods_to_remove(snapshot, workload, current - target)),
        containers=tuple(kept), horizontal_reason=f"{verb} ({why})",
    )


def replica_base(workload: WorkloadSpec, live: int, first_step: bool) -> int:
    """The count the step starts from: ``spec.replicas.desired`` (the scale subresource's, set by
    Thrifty or ``kubectl scale``); without it, ``initial`` on the first step, else the pods that
    exist (a workload from before the field, or one whose field was removed)."""
    if workload.replicas_desired is not None:
        return workload.replicas_desired
    return workload.replicas_initial if first_step else live


@dataclass(frozen=True)
class Moves:
    """What it takes to bring a workload's pods to a count."""

    create: int
    """Pods to create."""
    remove_pods: tuple[str, ...]
    """``namespace/name`` of the pods to evict, best first (:func:`pods_to_remove`)."""


def converge(snapshot: ClusterSnapshot, workload: int, *, live: int, target: int) -> Moves:
    """From the ``live`` pods of ``workload`` (finished ones not counted) to ``target``."""
    remove = pods_to_remove(snapshot, workload, live - target)
    return Moves(create=max(target - live, 0), remove_pods=tuple(snapshot.pods.names[p] for p in remove))


def moves_reason(decision: WorkloadDecision, *, base: int, live: int) -> str:
    """The horizontal reason once the pods that exist (``live``) are told apart from the count
    the policy decided from (``base``, the scale subresource's)."""
    if base == live:
        return decision.horizontal_reason
    if decision.replicas_to == base:
        return (f"scaled {live}\u2192{base}: spec.replicas.desired is {base} "
                f"({live} running pods; {decision.horizontal_reason})")
    return f"{decision.horizontal_reason} ({live} running pods)"


def blocked_message(blocked: Sequence[tuple[str, str]]) -> str:
    """One line for the pods a PodDisruptionBudget kept: which pods, and the budgets' words."""
    pods = ", ".join(pod for pod, _ in blocked)
    budgets = "; ".join(dict.fromkeys(why for _, why in blocked))
    return f"eviction of {pods} refused: {budgets}"


def start_with_initial(decision: WorkloadDecision, workload: WorkloadSpec) -> WorkloadDecision:
    """The first step of a new workload starts it at ``spec.replicas.initial``."""
    if decision.replicas_from >= workload.replicas_initial:
        return decision
    return dataclasses.replace(
        decision, replicas_to=workload.replicas_initial, remove_pods=(),
        horizontal_reason=f"scaled {decision.replicas_from}\u2192{workload.replicas_initial}: "
                          "initial replicas (spec.replicas.initial)",
    )


class Reconciler:
    """The operator's state and its two steps; see the module docstring."""

    def __init__(self, *, config: OperatorConfig, kube: Kube, prometheus: Prometheus | None, metrics: Metrics,
                 policy: Policy, policy_error: str | None, clock: Callable[[], float] = time.time,
                 leadership: Leadership | None = None) -> None:
        self.config = config
        self.leadership = leadership or Leadership.always()
        """Steps run only while this replica leads, and are cancelled when it stops leading."""
        self.kube = kube
        self.prometheus = prometheus
        self.metrics = metrics
        self.policy = policy
        self.policy_error = policy_error
        self.fallback = HeuristicPolicy()
        self.clock = clock
        self.power = PowerModel()
        self.history = UsageHistory(window_samples=config.history_window_samples,
                                    step_seconds=config.reconcile_interval_seconds)
        self.ledger = ChurnLedger()
        self._seeded: set[str] = set()
        self._memory: dict[str, _Memory] = {}
        self.lock = asyncio.Lock()
        """Serialises the sizing steps and the extender's status writes."""
        self._energy_time: float | None = None

    # --- Observe -------------------------------------------------------------------------------

    async def _observe(self, latency_of: str | None = None) -> Observation:
        """Read the cluster and the metrics sources; ``latency_of`` names the workload whose
        latency query runs (the one being sized: only its decision is acted on)."""
        now = self.clock()
        nodes, pods, objects = await asyncio.gather(self.kube.list_nodes(), self.kube.list_pods(),
                                                    self.kube.list_workloads())
        workloads = []
        for obj in objects:
            try:
                workloads.append(parse_workload(obj))
            except ValueError as error:  # the CRD's schema should prevent it; skip, do not stop the others
                logger.warning("ignoring RLWorkload %s: %s", object_key(obj), error)
        errors: dict[str, list[str]] = {w.key: [] for w in workloads}
        usage_nodes, usage_containers = {}, {}
        try:
            node_items, pod_items = await asyncio.gather(self.kube.node_metrics(), self.kube.pod_metrics())
            usage_nodes, usage_containers = node_usage(node_items), usage_by_uid(pod_items, pods)
            self.metrics.set_source(METRICS_API, up=True)
        except MetricsSourceError as error:
            self.metrics.set_source(METRICS_API, up=False)
            for problems in errors.values():
                problems.append(f"usage unknown: {error}")
        self.history.record(now, usage_containers)
        latency: dict[str, float] = {}
        query = next((w.latency_query for w in workloads if w.key == latency_of), None)
        if latency_of is not None and query is not None:
            if self.prometheus is None:
                errors[latency_of].append("latency unknown: spec.slo.latencyQuery is set but the operator runs "
                                          "without --prometheus-url")
            else:
                try:
                    latency[latency_of] = await self.prometheus.query_seconds(query)
                    self.metrics.set_source(PROMETHEUS, up=True)
                except MetricsSourceError as error:
                    self.metrics.set_source(PROMETHEUS, up=False)
                    errors[latency_of].append(f"latency unknown: {error}")
        return Observation(now, nodes, pods, workloads, {object_key(o): o for o in objects}, usage_nodes,
                           usage_containers, latency, errors)

    def _snapshot(self, obs: Observation, **kwargs) -> ClusterSnapshot:
        return build_snapshot(time_seconds=obs.time_seconds, nodes=obs.nodes, pods=obs.pods,
                              workloads=obs.workloads, history=self.history, node_usage_now=obs.node_usage,
                              container_usage_now=obs.container_usage, latency_seconds=obs.latency_seconds,
                              **kwargs)

    def _account_energy(self, snapshot: ClusterSnapshot) -> None:
        """Node and cluster power now, and their energy since the last observation. A gap longer
        than two intervals (a standby that just took over, API down) is counted as two: what was not
        observed is not made up."""
        now = snapshot.time_seconds
        elapsed = 0.0 if self._energy_time is None else min(max(now - self._energy_time, 0.0),
                                                              2 * self.config.reconcile_interval_seconds)
        self._energy_time = now
        watts = self.power.node_watts(snapshot.nodes)
        self.metrics.set_node_power(dict(zip(snapshot.nodes.names, watts.tolist(), strict=True)), elapsed)

    # --- Events ----------------------------------------------------------------------------------

    async def _post(self, involved: Mapping, event: EventText, action: str) -> None:
        """Post an Event; failing to explain must not stop the step, so errors are logged."""
        await post_explanation(self.kube, involved, event, action, format_time(self.clock()))

    # --- Placement recommendations ------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _step(self, kind: str) -> AsyncIterator[None]:
        """Time a step of ``kind`` (placement or sizing); an exception the step lets out is a bug
        (or an API reply it did not expect), counted before kopf logs it and retries."""
        started = time.perf_counter()
        try:
            yield
        except Exception:
            self.metrics.count_reconcile_error(kind)
            raise
        finally:
            self.metrics.step_duration.labels(kind).observe(time.perf_counter() - started)

    def _placement_recommendations(self, obs: Observation, created: Sequence[dict]) -> list[DecisionRecord]:
        """Where Thrifty would have placed the pods that kube-scheduler places in Recommend mode
        (pods of Thrifty's own scheduler get theirs from the extender's shadow placement)."""
        others = [p for p in created if not needs_placement(p)]
        if not others:
            return []
        keys = {object_key(p) for p in others}
        snapshot = self._snapshot(obs, include_pending=lambda p: object_key(p) in keys)
        decisions, _ = plan_placements(snapshot, self.policy, self.fallback)
        return [placement_record(d, outcome=RECOMMENDED, time_seconds=obs.time_seconds) for d in decisions]

    # --- Sizing ----------------------------------------------------------------------------------

    def forget(self, key: str) -> None:
        """A workload was deleted: drop what is remembered about it and its metric series."""
        self._memory.pop(key, None)
        self._seeded.discard(key)
        # A workload created again under the same name starts without the old cooldowns.
        self.ledger = ChurnLedger(*({k: t for k, t in times.items() if k != key} for times in (
            self.ledger.last_scale_out, self.ledger.last_scale_in, self.ledger.last_resize)))
        self.metrics.forget_workload(*key.split("/", 1))

    def _memory_of(self, workload: WorkloadSpec) -> _Memory:
        if workload.key not in self._memory:
            self._memory[workload.key] = _Memory(
                slo_met=deque(maxlen=self.config.slo_window_steps),
                energy_joules_total=float(workload.status.get("energyJoulesTotal") or 0.0))
        return self._memory[workload.key]

    def _seed_ledger(self, workload: WorkloadSpec) -> None:
        """After a restart, cooldowns continue from the times recorded in the status."""
        if workload.key in self._seeded:
            return
        self._seeded.add(workload.key)
        scale_out, scale_in, resize = churn_times(workload.status)
        ledger = self.ledger
        self.ledger = ChurnLedger(
            {**ledger.last_scale_out, **({workload.key: scale_out} if scale_out is not None else {})},
            {**ledger.last_scale_in, **({workload.key: scale_in} if scale_in is not None else {})},
            {**ledger.last_resize, **({workload.key: resize} if resize is not None else {})},
        )

    async def reconcile(self, namespace: str, name: str, stopped: object = False) -> None:
        """One sizing step of the workload ``namespace/name`` (its kopf timer).

        ``stopped`` turns truthy when kopf stops the timer (shutdown, lost leadership, deletion): a
        step that was waiting for the lock then gives up instead of running late.
        """
        key = f"{namespace}/{name}"
        async with self.lock:
            if stopped or not self.leadership.is_leader():
                return
            async with self._step("sizing"):
                try:
                    # Cancelled at once if leadership is lost mid-step; the new leader repeats
                    # the step from what the API says then, as after a kill -9.
                    await self.leadership.fenced(self._sizing_step(key))
                except (NotLeader, Fenced) as error:
                    logger.info("sizing step of %s stopped: %s", key, error)
                except KubeError as error:
                    # The API answered badly (or not at all): the next interval repeats the step
                    # from what the API says then, which is safe after any partial step.
                    self.metrics.count_reconcile_error("sizing")
                    logger.warning("sizing step of %s stopped, repeated next interval: %s", key, error)

    async def _sizing_step(self, key: str) -> None:
        obs = await self._observe(latency_of=key)
        workload = obs.workload(key)
        if workload is not None:
            await self._size(obs, workload)

    async def _size(self, obs: Observation, workload: WorkloadSpec) -> None:
        self._seed_ledger(workload)
        memory = self._memory_of(workload)
        snapshot = self._snapshot(obs)
        self._account_energy(snapshot)
        row = snapshot.workloads.names.index(workload.key)
        live = int(snapshot.workloads.replicas[row])
        first_step = "replicas" not in workload.status and workload.replicas_desired is None
        base = replica_base(workload, live, first_step)
        # The policy decides from the scale subresource's count, as an HPA does (see with_replicas).
        policy_view = with_replicas(snapshot, row, base)
        errors = obs.source_errors.get(workload.key, [])
        started = time.perf_counter()
        unsized = None
        try:
            decision = plan_sizing(policy_view, self.policy, self.fallback, self.ledger, self.config.safety)[0][row]
        except InvalidPolicyOutput as error:
            # Not even the heuristic gave a valid answer: hold the size, keep the bounds, say so.
            logger.error("sizing of %s held: %s", workload.key, error)
            self.metrics.count_fallback("sizing")
            unsized = str(error)
            decision = hold(policy_view, row, "no valid sizing decision")
        self.metrics.decision_duration.labels("sizing").observe(time.perf_counter() - started)
        if errors:
            decision = hold(policy_view, row, "metrics source down")
        elif decision.fallback:
            self.metrics.count_fallback("sizing")
        obj = obs.objects[workload.key]
        if workload.mode == AUTO:
            if first_step:
                decision = start_with_initial(dataclasses.replace(decision, replicas_from=live), workload)
            target = decision.replicas_to
        else:
            target = int(np.clip(base, workload.replicas_min, workload.replicas_max))
        if workload.replicas_desired != target:
            # Written before acting: the count survives a restart, and a PDB given as a percentage
            # is evaluated against it (the disruption controller reads the scale subresource).
            try:
                await self.kube.scale_workload(workload.namespace, workload.name, target)
            except KubeError as error:
                if error.status != 404:
                    raise
                # A CRD from before the scale subresource (helm upgrade leaves CRDs as they were):
                # size on, counting the pods that exist, and say once how to fix it.
                if "old-crd" not in memory.announced:
                    memory.announced.add("old-crd")
                    logger.warning("%s: %s; apply the current CRD (crds/) for kubectl scale and PDB percentages",
                                   workload.key, error)
        moves = converge(snapshot, row, live=live, target=target)
        if workload.mode == AUTO:
            # The first step's reason already says it starts from the pods that exist.
            reason = decision.horizontal_reason if first_step else moves_reason(decision, base=base, live=live)
            decided_from = live if first_step else base
            decision = dataclasses.replace(decision, replicas_from=live, remove_pods=moves.remove_pods,
                                           horizontal_reason=reason)
            applied = await self._apply(obs, workload, snapshot, decision, memory, decided_from=decided_from)
        else:
            applied = await self._recommend(obs, workload, decision, memory, moves)
        for record in applied.records:
            self.metrics.count_decision(record.kind, record.outcome)
            await self._post(_workload_event_object(obj), decision_event(record), record.kind)
        for pod, event in applied.resize_events:
            await self._post(_pod_event_object(pod), event, "Resize")
        for event in applied.workload_events:
            await self._post(_workload_event_object(obj), event, "Scale")
        # Warnings that would repeat every step are posted when they start or change; the
        # thrifty_policy_fallbacks_total counter still counts every step.
        fallback = f"fallback:{decision.fallback or unsized}" if decision.fallback or unsized else None
        if unsized and fallback not in memory.announced:
            await self._post(_workload_event_object(obj), sizing_held_event(unsized), "Size")
        if decision.fallback and fallback not in memory.announced:
            await self._post(_workload_event_object(obj), fallback_event(decision.fallback), "Size")
        if self.policy_error and "policy-load" not in memory.announced:
            memory.announced.add("policy-load")
            await self._post(_workload_event_object(obj), policy_load_event(self.policy_error), "LoadPolicy")
        outage = "; ".join(errors)
        if errors and f"outage:{outage}" not in memory.announced:
            await self._post(_workload_event_object(obj), metrics_unavailable_event(errors), "Observe")
        blocked = f"blocked:{applied.blocked}" if applied.blocked else None
        memory.announced = {a for a in memory.announced if not a.startswith(("outage:", "fallback:", "blocked:"))} | (
            {f"outage:{outage}"} if errors else set()) | ({fallback} if fallback else set()) | (
            {blocked} if blocked else set())
        await self._write_status(obs, workload, snapshot, row, decision, applied, memory, live=live)

    async def _converge(self, obs: Observation, workload: WorkloadSpec, moves: Moves, applied: _Applied,
                        memory: _Memory, *, scheduler: str | None) -> list[str]:
        """Bring the workload's pods to the decided count: finished pods removed, new pods
        created, surplus pods evicted. Returns the API errors; a PodDisruptionBudget's refusal is
        not one (it lands in ``applied.blocked``, and the next step tries again)."""
        errors = []
        for finished in finished_pods(workload, obs.pods):
            meta = finished["metadata"]
            try:
                # A finished pod is no disruption (a PDB counts only running pods): deleted directly.
                await self.kube.delete_pod(meta["namespace"], meta["name"], meta["uid"])
                applied.workload_events.append(finished_pod_event(object_key(finished), finished_reason(finished)))
            except KubeError as error:
                errors.append(str(error))
        for name in free_pod_names(workload, obs.pods, moves.create):
            manifest = pod_manifest(workload, name=name, scheduler_name=scheduler, resources=applied.sizes)
            try:
                created = await self.kube.create_pod(manifest)
                obs.put(created)
                applied.created += 1
                applied.new_pods.append(created)
            except KubeError as error:
                if error.status != 409:  # 409: a peer (or this step before a restart) made it already
                    errors.append(str(error))
        blocked = []
        for pod_key in moves.remove_pods:
            victim = obs.pod(pod_key)
            if victim is None:
                continue
            meta = victim["metadata"]
            try:
                await self.kube.evict_pod(meta["namespace"], meta["name"], meta["uid"])
                applied.deleted += 1
                applied.removed.add(pod_key)
            except EvictionBlocked as error:
                blocked.append((pod_key, error.budgets))
            except KubeError as error:
                errors.append(str(error))
        if blocked:
            applied.blocked = blocked_message(blocked)
            if workload.mode != AUTO and f"blocked:{applied.blocked}" not in memory.announced:
                applied.workload_events.append(scale_in_blocked_event(applied.blocked))
        return errors

    async def _apply(self, obs: Observation, workload: WorkloadSpec, snapshot: ClusterSnapshot,
                     decision: WorkloadDecision, memory: _Memory, *, decided_from: int) -> _Applied:
        """Auto mode: carry the decision out, each action recorded with its outcome.
        ``decided_from`` is the count the policy decided from (see :func:`replica_base`)."""
        now = obs.time_seconds
        applied = _Applied(sizes={c.name: c.target for c in decision.containers} or initial_sizes(workload))
        scheduler = (workload.template.get("spec") or {}).get("schedulerName") or SCHEDULER_NAME
        moves = Moves(create=max(decision.replicas_to - decision.replicas_from, 0), remove_pods=decision.remove_pods)
        errors = await self._converge(obs, workload, moves, applied, memory, scheduler=scheduler)
        if decision.replicas_to != decision.replicas_from:
            if errors:
                applied.records.append(horizontal_record(decision, outcome=FAILED, time_seconds=now,
                                                         error="; ".join(errors)))
            elif applied.blocked:
                # Recorded (and its Warning posted) when the block starts or changes, not every step.
                if f"blocked:{applied.blocked}" not in memory.announced:
                    applied.records.append(horizontal_record(decision, outcome=REJECTED, time_seconds=now,
                                                             error=applied.blocked))
            else:
                applied.records.append(horizontal_record(decision, outcome=APPLIED, time_seconds=now))
        await self._resize(obs, workload, snapshot, decision, applied)
        # The policy's own change of the count starts its cooldowns; replacing failed pods,
        # carrying out a kubectl scale or retrying a held-up scale-in does not.
        self.ledger = self.ledger.record(workload=workload.key, time_seconds=now,
                                         scaled_by=decision.replicas_to - decided_from,
                                         resized=applied.resized_pods > 0)
        return applied

    async def _resize(self, obs: Observation, workload: WorkloadSpec, snapshot: ClusterSnapshot,
                      decision: WorkloadDecision, applied: _Applied) -> None:
        """Bring every bound pod of the workload to the decided container sizes, in place.

        Pods that lag behind (a resize that failed, a pod created before a resize) are brought
        along even when the decision itself keeps the size. A pod whose node has no room for its
        growth is left as it is (the core checked the first pod's node; the others may differ).
        """
        nodes = snapshot.nodes
        free = dict(zip(nodes.names, zip(nodes.cpu_free_millicores.tolist(), nodes.memory_free_bytes.tolist(),
                                         strict=True), strict=True))
        removed = set(decision.remove_pods)
        outcome: dict[str, list[str]] = {c.name: [] for c in decision.containers}
        skipped: dict[str, int] = {c.name: 0 for c in decision.containers}
        for pod in list(obs.pods):
            node = pod["spec"].get("nodeName")
            if not owns(workload, pod) or is_terminating(pod) or not node or object_key(pod) in removed:
                continue
            current = {c["name"]: container_resources(c) for c in pod["spec"]["containers"]}
            sizes = {c.name: c.target for c in decision.containers
                     if c.name in current and current[c.name] != c.target}
            if not sizes:
                continue
            grow_cpu = sum(s.cpu_request_millicores - current[n].cpu_request_millicores for n, s in sizes.items())
            grow_memory = sum(s.memory_request_bytes - current[n].memory_request_bytes for n, s in sizes.items())
            cpu_free, memory_free = free.get(node, (0.0, 0.0))
            if grow_cpu > cpu_free or grow_memory > memory_free:
                for name in sizes:
                    skipped[name] += 1
                continue
            try:
                resized = await self.kube.resize_pod(pod["metadata"]["namespace"], pod["metadata"]["name"], sizes)
            except KubeError as error:
                for name in sizes:
                    outcome[name].append(str(error))
                continue
            free[node] = (cpu_free - grow_cpu, memory_free - grow_memory)
            obs.put(resized)
            applied.resized_pods += 1
            for name in sizes:
                change = next(c for c in decision.containers if c.name == name)
                reason = change.reason if change.changed else f"brought {name} to the workload's size"
                record = vertical_record(dataclasses.replace(change, current=current[name], reason=reason),
                                         outcome=APPLIED, time_seconds=obs.time_seconds)
                applied.resize_events.append((resized, decision_event(record, on_pod=True)))
        for change in decision.containers:
            if not change.changed:
                continue
            errors = outcome[change.name]
            if errors:
                result, why = FAILED, "; ".join(errors)
            elif skipped[change.name]:
                result, why = REJECTED, f"{skipped[change.name]} pods' nodes have no room to grow"
            else:
                result, why = APPLIED, ""
            applied.records.append(vertical_record(change, outcome=result, time_seconds=obs.time_seconds,
                                                   error=why))

    async def _recommend(self, obs: Observation, workload: WorkloadSpec, decision: WorkloadDecision,
                         memory: _Memory, moves: Moves) -> _Applied:
        """Recommend mode: record what Auto would do; only keep the count the scale subresource
        asks for (``spec.replicas.initial`` to start with, then what ``kubectl scale`` sets),
        replacing finished pods (see module docs)."""
        now = obs.time_seconds
        applied = _Applied()
        # The template's own schedulerName: kube-scheduler places them unless it names thrifty.
        errors = await self._converge(obs, workload, moves, applied, memory, scheduler=None)
        for error in errors:
            logger.warning("could not keep %s at %d replicas: %s", workload.key, decision.replicas_from, error)
        if applied.new_pods:
            applied.records.extend(self._placement_recommendations(obs, applied.new_pods))
            return applied  # the decision was taken before they existed; the next step's counts
        current = decision.replicas_from
        wanted = (decision.replicas_to, tuple((c.name, c.target) for c in decision.containers if c.changed))
        if wanted == memory.last_recommendation:
            return applied  # recorded already; a recommendation is repeated only when it changes
        memory.last_recommendation = wanted
        if decision.replicas_to != current:
            applied.records.append(horizontal_record(decision, outcome=RECOMMENDED, time_seconds=now))
        applied.records.extend(vertical_record(c, outcome=RECOMMENDED, time_seconds=now)
                               for c in decision.containers if c.changed)
        return applied

    async def _write_status(self, obs: Observation, workload: WorkloadSpec, snapshot: ClusterSnapshot, row: int,
                            decision: WorkloadDecision, applied: _Applied, memory: _Memory, *, live: int) -> None:
        now = obs.time_seconds
        elapsed = 0.0 if memory.last_step_seconds is None else max(now - memory.last_step_seconds, 0.0)
        memory.last_step_seconds = now
        watts = float(self.power.workload_watts(snapshot)[row])
        memory.energy_joules_total += watts * elapsed
        latency = float(snapshot.workloads.latency_p95_seconds[row])
        if math.isfinite(latency) and math.isfinite(workload.slo_latency_p95_seconds):
            memory.slo_met.append(latency <= workload.slo_latency_p95_seconds)
        attainment = slo_attainment(memory.slo_met)
        ooms = float(snapshot.containers.oom_kills_total[snapshot.containers.workload_index == row].sum())
        reward = float(workload_rewards(
            watts=np.array([watts]), latency_p95_seconds=np.array([latency]),
            slo_latency_p95_seconds=np.array([workload.slo_latency_p95_seconds]),
            energy_weight=np.array([workload.energy_weight]), oom_kills=np.array([ooms]),
            throttled_fraction=np.array([np.nan]), evictions=np.array([0.0]),
            churn=np.array([applied.created + applied.deleted + applied.resized_pods], dtype=float),
        ).reward[0])
        replicas = live + applied.created - applied.deleted
        pods = sorted((p for p in obs.pods if owns(workload, p) and not is_terminating(p) and not is_finished(p)
                       and object_key(p) not in applied.removed),
                      key=lambda p: (parse_time(p["metadata"].get("creationTimestamp")), object_key(p)))
        ready = sum(1 for p in pods if is_ready(p))
        now_sizes = {c["name"]: container_resources(c) for c in pods[0]["spec"]["containers"]} if pods else {}
        containers = [ContainerState(c.name, now_sizes.get(c.name, c.current), c.target)
                      for c in decision.containers if c.name in workload.container_bounds]
        conditions = merge_conditions(
            workload.status.get("conditions") or [],
            [ready_condition(replicas=replicas, ready_replicas=ready, minimum=workload.replicas_min,
                             maximum=workload.replicas_max),
             policy_condition(self.policy.info, self.policy_error),
             metrics_condition(obs.source_errors.get(workload.key, [])),
             slo_condition(latency, workload.slo_latency_p95_seconds),
             scale_in_condition(applied.blocked)],
            generation=workload.generation, time_seconds=now)
        status = workload_status(
            generation=workload.generation, replicas=replicas, ready_replicas=ready,
            recommended_replicas=decision.replicas_to, containers=containers, energy_watts=watts,
            energy_joules_total=memory.energy_joules_total, reward=reward, latency_p95_seconds=latency,
            slo_attainment_fraction=attainment,
            last_decisions=merge_last_decisions(workload.status.get("lastDecisions") or [],
                                                applied.records, self.config.last_decisions_limit),
            policy=self.policy.info, policy_fallback=bool(self.policy_error or decision.fallback),
            conditions=conditions, selector=pod_selector(workload), sizing_signals=sizing_signals(snapshot, row))
        self.metrics.set_workload(workload.namespace, workload.name, watts=watts, elapsed_seconds=elapsed,
                                  replicas=replicas, reward=reward, latency_p95_seconds=latency,
                                  slo_attainment=attainment)
        self.metrics.set_container_requests(workload.namespace, workload.name, {
            c.name: (c.current.cpu_request_millicores / 1000.0, c.current.memory_request_bytes) for c in containers})
        since = None if memory.last_status_write_seconds is None else now - memory.last_status_write_seconds
        if status_needs_write(workload.status, status, seconds_since_write=since,
                              refresh_seconds=self.config.status_refresh_seconds):
            await self.kube.patch_workload_status(workload.namespace, workload.name, status)
            memory.last_status_write_seconds = now


def register(registry: kopf.OperatorRegistry, reconciler: Reconciler) -> None:
    """The kopf handlers: each parses what kopf hands over and calls the reconciler."""
    interval = reconciler.config.reconcile_interval_seconds

    @kopf.on.login(registry=registry)
    def login(**_: object) -> kopf.ConnectionInfo:
        return reconciler.kube.connection_info()

    # backoff: a step that failed (the API was briefly away) is retried one interval later, not
    # after kopf's default minute.
    # kopf passes every handler keyword argument; the handlers take the few they use (and **_),
    # which kopf's Protocol types (TimerFn, WatchingFn) cannot express.
    @kopf.timer(GROUP, VERSION, PLURAL, id="reconcile", interval=interval, backoff=interval,  # type: ignore[arg-type]
                registry=registry)
    async def reconcile(namespace: str, name: str, stopped: kopf.DaemonStopped, **_: object) -> None:
        await reconciler.reconcile(namespace, name, stopped=stopped)

    @kopf.on.event(GROUP, VERSION, PLURAL, id="forget", registry=registry)  # type: ignore[arg-type]
    def forget(event: Mapping, namespace: str, name: str, **_: object) -> None:
        if event.get("type") == "DELETED":
            reconciler.forget(f"{namespace}/{name}")

