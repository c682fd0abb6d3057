"""The extender's HTTP endpoint (aiohttp), in the operator's process: ``POST /prioritize`` and
``GET /healthz``.

``prioritize`` scores the nodes kube-scheduler's filters left, through the core's one placement
path (:func:`thrifty.core.choose_placement`: features, policy, safety) on a snapshot of the
watch-fed view, then assumes the chosen node in the view so the next pod of a burst sees it. The
policy runs in a worker thread under a time budget (the heuristic, which is also the fallback,
runs inline); past the budget, or if the policy fails, the heuristic
answers (Warning Event, ``thrifty_policy_fallbacks_total{kind="placement"}``). An RLWorkload in
``Recommend`` mode gets equal scores for its pods (shadow placement): kube-scheduler's choice
stands, and what Thrifty would have chosen is recorded with its estimated power difference.

kube-scheduler binds the pod itself (its default binder, in its binding cycle, several pods at
once): the extender has no ``bind`` verb, so a scheduling cycle costs one HTTP round trip. The
watch tells the extender when a pod it scored is bound (:meth:`Extender.bound`, called by the
informer); then a background worker writes the explanation in batches: an Event on each pod, one
Event and one ``status.lastDecisions`` write per RLWorkload for all of its pods bound since the
last batch, and the metrics. A burst of N pods of one workload so costs N + 3 writes, not 4N.

aiohttp's server protocol sets ``TCP_NODELAY`` on every accepted socket (``BaseProtocol.
connection_made``); without it Nagle's algorithm and delayed ACKs cost ~40 ms per call
(docs/placement.md). tests/unit/test_extender.py checks it on a live socket.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
from aiohttp import web
from prometheus_client import CollectorRegistry, Histogram

from thrifty.adapter import Kube, KubeError, post_explanation
from thrifty.core import PlacementDecision, bind_in_snapshot, choose_placement, placement_reason
from thrifty.energy import PowerModel
from thrifty.extender.scores import candidate_nodes, host_priorities, neutral_priorities
from thrifty.history import UsageHistory
from thrifty.leadership import Leadership, NotLeader
from thrifty.metrics import Metrics
from thrifty.observe import GROUP, RECOMMEND, SCHEDULER_NAME, VERSION, WorkloadSpec, object_key, parse_time
from thrifty.policy.base import Policy
from thrifty.record import (
    APPLIED,
    PLACEMENT,
    RECOMMENDED,
    DecisionRecord,
    EventText,
    decision_event,
    fallback_event,
    format_time,
    merge_last_decisions,
    placement_record,
    placements_event,
)
from thrifty.snapshot import ClusterSnapshot
from thrifty.view import ClusterView

logger = logging.getLogger("thrifty.extender")

REQUEST_BUCKETS_SECONDS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0)
"""One extender call, from request to answer: kube-scheduler waits for prioritize in its
scheduling cycle, so milliseconds matter."""
SHADOW_WATTS_BUCKETS = (-50.0, -20.0, -10.0, -5.0, -2.0, -1.0, 0.0, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0)
"""Estimated cluster power of kube-scheduler's node minus Thrifty's choice, watts: positive is
what Thrifty would have saved."""


@dataclass(frozen=True, kw_only=True)
class ExtenderConfig:
    """The extender's endpoint and budgets."""

    address: str = "127.0.0.1"
    """Address the extender listens on: loopback, since kube-scheduler runs beside it (a child
    process, or a second container of the pod) and nothing else may call it."""
    port: int = 8888
    """TCP port of the extender."""
    policy_budget_seconds: float = 0.1
    """Longest the policy may take to score one pod before the heuristic answers instead."""
    record_workers: int = 4
    """Events posted at once by the background worker that explains the binds."""
    record_batch_limit: int = 500
    """Most binds explained in one batch (one Event and one status write per RLWorkload)."""
    pending_ttl_seconds: float = 300.0
    """How long a prioritize answer is kept for the binding that should follow it."""
    last_decisions_limit: int = 10
    """Entries kept in ``status.lastDecisions``."""
    sync_wait_seconds: float = 1.0
    """At start-up, longest a prioritize call waits for the view's first LISTs (below the
    configuration's 2 s ``httpTimeout``)."""

    def __post_init__(self) -> None:
        if not 1 <= self.port <= 65535:
            raise ValueError(f"ExtenderConfig.port: must be a TCP port (1 to 65535), got {self.port!r}")
        for name in ("policy_budget_seconds", "pending_ttl_seconds"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"ExtenderConfig.{name}: must be finite and > 0, got {value!r}")
        for name in ("record_workers", "record_batch_limit"):
            if getattr(self, name) < 1:
                raise ValueError(f"ExtenderConfig.{name}: must be >= 1, got {getattr(self, name)!r}")


class ExtenderMetrics:
    """The extender's own collectors, on the operator's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.request_duration = Histogram(
            "thrifty_extender_request_duration_seconds",
            "Time of one extender call from kube-scheduler, by verb (prioritize).",
            ["verb"], buckets=REQUEST_BUCKETS_SECONDS, registry=registry)
        self.shadow_watts = Histogram(
            "thrifty_shadow_placement_power_difference_watts",
            "Recommend mode: estimated cluster power with kube-scheduler's node minus with Thrifty's choice.",
            buckets=SHADOW_WATTS_BUCKETS, registry=registry)
        self.request_duration.labels("prioritize")


@dataclass
class _Pending:
    """A prioritize answer waiting for its bind."""

    pod: Mapping
    decision: PlacementDecision | None
    """Thrifty's choice; None when Thrifty did not score the pod (not its scheduler's)."""
    shadow: bool
    snapshot: ClusterSnapshot | None = None
    """Kept for a shadow placement, to price kube-scheduler's choice against Thrifty's."""
    pod_row: int = -1
    expires: float = 0.0


@dataclass
class _Bound:
    """A binding the watch showed."""

    pending: _Pending | None
    node: str
    created_seconds: float
    """The pod's creationTimestamp (Unix seconds; NaN if it has none)."""
    time_seconds: float
    """When the watch showed the binding (clock seconds)."""


class Extender:
    """The endpoint and its state; see the module docstring."""

    def __init__(self, *, config: ExtenderConfig, kube: Kube, view: ClusterView, history: UsageHistory,
                 policy: Policy, fallback: Policy, metrics: Metrics, status_lock: asyncio.Lock,
                 clock: Callable[[], float] = time.time, synced: asyncio.Event | None = None,
                 leadership: Leadership | None = None) -> None:
        self.config = config
        self.leadership = leadership or Leadership.always()
        """Only the leader records: a standby scores from its own view (kube-scheduler binds,
        whichever replica's kube-scheduler leads), and drops what it would have written."""
        self.kube = kube
        self.view = view
        self.history = history
        self.policy = policy
        self.fallback = fallback
        self.metrics = metrics
        self.own_metrics = ExtenderMetrics(metrics.registry)
        self.status_lock = status_lock
        self.clock = clock
        self.synced = synced
        self.power = PowerModel()
        # One worker: a policy stuck past its budget keeps it busy, and later pods go straight to
        # the heuristic instead of piling threads up.
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="thrifty-policy")
        self._busy = False
        self._pending: dict[str, _Pending] = {}
        self._records: asyncio.Queue[_Bound] = asyncio.Queue()
        self._runner: web.AppRunner | None = None
        self._worker: asyncio.Task | None = None

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 2**20)  # an ExtenderArgs carries the whole pod
        app.add_routes([web.post("/prioritize", self.prioritize), web.get("/healthz", self.healthz)])
        return app

    async def start(self, app: web.Application | None = None) -> None:
        self._runner = web.AppRunner(app or self.app(), access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.config.address, self.config.port, backlog=1024).start()
        self._worker = asyncio.create_task(self._record_loop())
        logger.info("extender listening on http://%s:%d", self.config.address, self.config.port)

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def healthz(self, _: web.Request) -> web.Response:
        """200 once the view has listed the cluster (the extender then scores), 503 before."""
        if self.synced is not None and not self.synced.is_set():
            return web.Response(status=503, text="listing the cluster")
        return web.Response(text="ok")

    # --- prioritize ----------------------------------------------------------------------------

    async def prioritize(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        args = await request.json()
        pod = args.get("Pod") or {}
        candidates = candidate_nodes(args)
        if self.synced is not None and not self.synced.is_set():
            # Answer from a view that has seen the whole cluster, never from a half-listed one:
            # until then, equal scores (kube-scheduler's own choice stands).
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.synced.wait(), timeout=self.config.sync_wait_seconds)
        if self.synced is not None and not self.synced.is_set():
            answer = neutral_priorities(candidates)
        else:
            answer = await self._prioritize(pod, candidates)
        self.own_metrics.request_duration.labels("prioritize").observe(time.perf_counter() - started)
        return web.json_response(answer)

    async def _prioritize(self, pod: Mapping, candidates: list[str]) -> list[dict]:
        key = object_key(pod)
        now = self.clock()
        self._expire(now)
        if (pod.get("spec") or {}).get("schedulerName") != SCHEDULER_NAME or not candidates:
            # A shared kube-scheduler calls its extenders for every profile's pods.
            self._pending[key] = _Pending(pod, None, False, expires=now + self.config.pending_ttl_seconds)
            return neutral_priorities(candidates)
        owner = self.view.owner_of(pod)
        shadow = owner is not None and owner.mode == RECOMMEND
        snapshot, row = self.view.snapshot(pod, candidates, time_seconds=now, history=self.history)
        node, scores, fallback = await self._choose(snapshot, row)
        if fallback:
            self.metrics.count_fallback("placement")
        if node < 0:
            # The view counts more on every candidate than kube-scheduler's cache does (an
            # assumption not yet expired): rank the candidates by score alone.
            candidate = np.asarray(snapshot.nodes.schedulable)
            node = int(np.flatnonzero(candidate)[np.argmax(scores[candidate])]) if candidate.any() else -1
        decision = None
        if node >= 0:
            decision = PlacementDecision(key, snapshot.nodes.names[node], placement_reason(snapshot, row, node),
                                         fallback)
        self._pending[key] = _Pending(pod, decision, shadow, snapshot if shadow else None, row,
                                      now + self.config.pending_ttl_seconds)
        if shadow or decision is None or decision.node is None:
            return neutral_priorities(candidates)
        self.view.assume(pod, decision.node)
        return host_priorities(candidates, snapshot.nodes.names, scores, node, self.view.node_row())

    async def _choose(self, snapshot: ClusterSnapshot, row: int) -> tuple[int, np.ndarray, str | None]:
        """The policy's choice within its budget, else the heuristic's, with the reason."""
        budget = self.config.policy_budget_seconds
        if self.policy.info.backend == self.fallback.info.backend:
            # The fallback itself serves: no budget to guard, and a thread hop would cost a GIL
            # switch interval (5 ms) whenever the event loop is busy.
            return choose_placement(snapshot, row, self.policy, self.fallback)
        if not self._busy:
            self._busy = True
            future = asyncio.get_running_loop().run_in_executor(
                self._executor, choose_placement, snapshot, row, self.policy, self.fallback)
            future.add_done_callback(lambda _: setattr(self, "_busy", False))
            try:
                return await asyncio.wait_for(asyncio.shield(future), timeout=budget)
            except TimeoutError:
                reason = f"policy {self.policy.info.name} took longer than its {budget * 1000:.0f} ms budget"
        else:
            reason = f"policy {self.policy.info.name} is still busy past its {budget * 1000:.0f} ms budget"
        node, scores, _ = choose_placement(snapshot, row, self.fallback, self.fallback)
        return node, scores, reason

    def _expire(self, now: float) -> None:
        if len(self._pending) > 1000:
            self._pending = {k: p for k, p in self._pending.items() if p.expires > now}

    # --- bound ----------------------------------------------------------------------------------

    def bound(self, pod: Mapping) -> None:
        """The watch shows ``pod`` (one of Thrifty's scheduler) bound to a node: queue its
        explanation. Called by the informer once per pod, after the view has the binding."""
        created = parse_time((pod.get("metadata") or {}).get("creationTimestamp"))
        self._records.put_nowait(_Bound(self._pending.pop(object_key(pod), None),
                                        (pod.get("spec") or {}).get("nodeName") or "", created, self.clock()))

    # --- record ----------------------------------------------------------------------------------

    async def _record_loop(self) -> None:
        while True:
            batch = [await self._records.get()]
            while len(batch) < self.config.record_batch_limit and not self._records.empty():
                batch.append(self._records.get_nowait())
            try:
                # The record is the leader's to write; a batch left when leadership is lost is dropped.
                await self.leadership.fenced(self._record(batch))
            except NotLeader as error:
                logger.info("%d bindings not recorded: %s", len(batch), error)
            except Exception:  # recording must never stop the worker; the binds stand
                logger.exception("could not record %d bindings", len(batch))

    async def _record(self, batch: list[_Bound]) -> None:
        """Metrics for every bind; an Event on each pod Thrifty scored; per RLWorkload, one Event
        and one status write for all of its pods in the batch."""
        events: list[tuple[Mapping, EventText]] = []
        by_owner: dict[tuple[str, str], tuple[WorkloadSpec, list[DecisionRecord]]] = {}
        for bound in batch:
            if math.isfinite(bound.created_seconds):
                self.metrics.placement_latency.observe(max(bound.time_seconds - bound.created_seconds, 0.0))
            pending = bound.pending
            if pending is None or (pending.decision is None and not pending.shadow):
                # Not scored by Thrifty: placed while the extender was unreachable, kube-scheduler
                # had a single feasible node and did not ask, or no candidate.
                continue
            record, fallback = self._placement_record(pending, bound)
            self.metrics.count_decision(record.kind, record.outcome)
            involved = {"apiVersion": "v1", "kind": "Pod", "metadata": pending.pod["metadata"]}
            if fallback:
                events.append((involved, fallback_event(fallback)))
            events.append((involved, decision_event(record, on_pod=True)))
            owner = self.view.owner_of(pending.pod)
            if owner is not None:
                by_owner.setdefault((owner.key, record.outcome), (owner, []))[1].append(record)
        limit = asyncio.Semaphore(self.config.record_workers)

        async def post(involved: Mapping, event: EventText, action: str) -> None:
            async with limit:
                await self._post(involved, event, action)

        await asyncio.gather(
            *(post(involved, event, "Place" if event.reason == "PolicyFallback" else "Bind")
              for involved, event in events),
            *(self._record_workload(owner, records) for owner, records in by_owner.values()))

    def _placement_record(self, pending: _Pending, bound: _Bound) -> tuple[DecisionRecord, str | None]:
        """The pod's record, and the fallback's explanation when the heuristic decided."""
        if pending.shadow:
            return self._shadow_record(pending, bound), None
        decision = pending.decision
        assert decision is not None
        if decision.node != bound.node:
            # kube-scheduler overrode the scores (another extender, or the profile's weights).
            decision = PlacementDecision(decision.pod, bound.node,
                                         f"placed on {bound.node} by kube-scheduler; Thrifty chose {decision.node}",
                                         decision.fallback)
        return placement_record(decision, outcome=APPLIED, time_seconds=bound.time_seconds), decision.fallback

    async def _record_workload(self, owner: WorkloadSpec, records: list[DecisionRecord]) -> None:
        """One Event on the RLWorkload for its pods of the batch (one outcome), then its status."""
        involved = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "RLWorkload",
                    "metadata": {"name": owner.name, "namespace": owner.namespace, "uid": owner.uid}}
        await self._post(involved, placements_event(records), "Bind")
        await self._write_status(owner.namespace, owner.name, records)

    def _shadow_record(self, pending: _Pending, bound: _Bound) -> DecisionRecord:
        """Where Thrifty would have put the pod, and the estimated watts it would have saved."""
        snapshot, row, decision = pending.snapshot, pending.pod_row, pending.decision
        assert snapshot is not None
        names, pod = snapshot.nodes.names, pending.pod["metadata"]["name"]
        if decision is None or bound.node not in names:
            reason = "no node to compare with" if decision is None else f"{bound.node} is not in Thrifty's view"
            return DecisionRecord(bound.time_seconds, PLACEMENT, pod, f"bind to {bound.node}",
                                  f"kube-scheduler placed it on {bound.node}; {reason}", RECOMMENDED)
        theirs = self._cluster_watts(snapshot, row, names.index(bound.node))
        ours = self._cluster_watts(snapshot, row, names.index(decision.node))
        difference = theirs - ours
        self.own_metrics.shadow_watts.observe(difference)
        action = f"bind to {decision.node}"
        reason = (f"{decision.reason}; kube-scheduler placed it on {bound.node}, estimated {difference:+.1f} W "
                  "against Thrifty's choice")
        return DecisionRecord(bound.time_seconds, PLACEMENT, pod, action, reason, RECOMMENDED)

    def _cluster_watts(self, snapshot: ClusterSnapshot, pod: int, node: int) -> float:
        return float(self.power.node_watts(bind_in_snapshot(snapshot, pod, node).nodes).sum())

    async def _post(self, involved: Mapping, event: EventText, action: str) -> None:
        await post_explanation(self.kube, involved, event, action, format_time(self.clock()))

    async def _write_status(self, namespace: str, name: str, records: list[DecisionRecord]) -> None:
        """Add the records to ``status.lastDecisions``, under the sizing step's lock so that the
        two never overwrite each other's entries."""
        async with self.status_lock:
            try:
                current = await self.kube.get_workload(namespace, name)
                decisions = merge_last_decisions((current.get("status") or {}).get("lastDecisions") or [],
                                                 records, self.config.last_decisions_limit)
                await self.kube.patch_workload_status(namespace, name, {"lastDecisions": decisions})
            except KubeError as error:
                logger.warning("could not record the placement in %s/%s: %s", namespace, name, error)
