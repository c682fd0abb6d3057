"""Leader election on a ``coordination.k8s.io/v1`` Lease, with fencing of the operator's writes.

The election follows client-go's ``tools/leaderelection`` (what kube-scheduler and
kube-controller-manager use):

* The holder renews the Lease every ``retry_period_seconds``; each write is a PUT conditional on
  the ``resourceVersion`` it read, so of two replicas racing for the Lease exactly one wins (the
  other gets 409 Conflict).
* A candidate respects a Lease held by another until ``leaseDurationSeconds`` (the holder's, from
  the Lease) have passed since *this replica saw the record change*, on its own monotonic clock:
  the holders' and candidates' clocks need not agree, only run at about the same rate.
* The current holder is preferred: it keeps the Lease as long as it renews it; a new replica
  never takes over a live one.
* The holder gives leadership up when it could not renew for ``renew_deadline_seconds``
  (shorter than the lease duration, so it stops before anybody else may start), and releases the
  Lease (empty holder) when it shuts down, so that a standby takes over at its next try instead
  of waiting for the lease to expire.

Fencing, which client-go leaves to its caller: :class:`Leadership` is the token every write of
the operator checks (:meth:`Leadership.check`, called by :class:`thrifty.adapter.Kube` before
any create, patch or delete). It is valid until ``renew_deadline_seconds`` after the last renew
that succeeded was *sent*, by the monotonic clock, whether or not the election loop got to run
since: a stalled event loop cannot write on a leadership that has lapsed. Work started on
behalf of the leader (:meth:`Leadership.fenced`) is cancelled when leadership is lost.

:func:`try_acquire_or_renew` is the pure decision (table-tested); :class:`LeaderElector` is the
loop that carries it out through a :class:`LeaseAPI` (the adapter's Lease calls).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import logging
import math
import random
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar

logger = logging.getLogger("thrifty.leadership")

T = TypeVar("T")

MICRO_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
"""The API's ``MicroTime`` (``renewTime``, ``acquireTime``): RFC 3339 with microseconds, UTC."""


@dataclass(frozen=True, kw_only=True)
class LeaderElectionConfig:
    """The Lease and the timings of the election (client-go's ``LeaderElectionConfig``)."""

    lease_name: str = "thrifty"
    """Name of the Lease the operator's replicas compete for."""
    lease_namespace: str = "default"
    """Namespace of that Lease (the operator's own namespace in a cluster)."""
    identity: str
    """This replica's holder identity: unique per process (host name and a random suffix), so a
    restarted replica never mistakes its predecessor's Lease for its own."""
    lease_duration_seconds: int = 10
    """How long a candidate waits, after it last saw the Lease change, before it takes the Lease
    over (``spec.leaseDurationSeconds``, whole seconds as the API stores it). With a 2 s retry
    period a standby takes over at most ~12 s after the leader died."""
    renew_deadline_seconds: float = 7.0
    """How long the leader keeps acting without a successful renew; then it steps down. Shorter
    than the lease duration, by a margin for clock-rate differences and request latency."""
    retry_period_seconds: float = 2.0
    """Seconds between two renews of the leader, and (with jitter) between two tries of a
    candidate."""
    jitter_factor: float = 1.2
    """A candidate waits ``retry_period_seconds * (1 + jitter_factor * U[0, 1))`` between tries
    (client-go's ``JitterFactor``), never past the moment the Lease it saw expires."""

    def __post_init__(self) -> None:
        def fail(name: str, problem: str) -> None:
            raise ValueError(f"LeaderElectionConfig.{name}: {problem}")

        if not self.identity:
            fail("identity", "must not be empty")
        if not self.lease_name:
            fail("lease_name", "must not be empty")
        for name in ("renew_deadline_seconds", "retry_period_seconds"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                fail(name, f"must be finite and > 0, got {value!r}")
        if not (isinstance(self.lease_duration_seconds, int) and self.lease_duration_seconds >= 1):
            fail("lease_duration_seconds",
                 f"must be a whole number of seconds >= 1, got {self.lease_duration_seconds!r}")
        if not (math.isfinite(self.jitter_factor) and self.jitter_factor >= 0):
            fail("jitter_factor", f"must be finite and >= 0, got {self.jitter_factor!r}")
        # client-go's checks: the leader must step down before a candidate may take over, and
        # must get at least one retry within its deadline.
        if not self.lease_duration_seconds > self.renew_deadline_seconds:
            fail("renew_deadline_seconds", f"must be < lease_duration_seconds ({self.lease_duration_seconds}), "
                                           f"got {self.renew_deadline_seconds!r}")
        if not self.renew_deadline_seconds > self.jitter_factor * self.retry_period_seconds:
            fail("retry_period_seconds", f"jitter_factor x retry_period_seconds must be < renew_deadline_seconds "
                                         f"({self.renew_deadline_seconds}), got {self.retry_period_seconds!r}")


# --- The pure decision -----------------------------------------------------------------------


@dataclass(frozen=True)
class LeaseRecord:
    """The election's fields of a Lease's spec."""

    holder: str
    """``holderIdentity``; empty when nobody holds it (released)."""
    lease_duration_seconds: int
    acquire_time: str | None
    renew_time: str | None
    transitions: int
    """``leaseTransitions``: how many times the Lease changed holder."""


@dataclass(frozen=True)
class Lease:
    """A Lease as read from the API: its record and the ``resourceVersion`` to write against."""

    record: LeaseRecord
    resource_version: str


@dataclass(frozen=True)
class Observed:
    """The record this replica last saw, and when it first saw it (monotonic seconds)."""

    record: LeaseRecord
    at_seconds: float


Action = Literal["create", "update", "wait"]


@dataclass(frozen=True)
class Attempt:
    """What one try decided."""

    action: Action
    """``create`` the Lease, ``update`` it (acquire or renew, conditional on its version), or
    ``wait``: it is another replica's and has not expired."""
    record: LeaseRecord | None
    """The record to write (None for ``wait``)."""
    observed: Observed | None
    """The observation to keep for the next try."""
    expires_at_seconds: float = math.inf
    """For ``wait``: the monotonic time at which the other holder's Lease expires."""


def try_acquire_or_renew(config: LeaderElectionConfig, current: Lease | None, observed: Observed | None, *,
                         now_seconds: float, now_time: str) -> Attempt:
    """client-go's ``tryAcquireOrRenew`` as a decision: ``current`` is the Lease just read (None
    if it does not exist), ``observed`` what this replica saw before, ``now_seconds`` its
    monotonic clock and ``now_time`` the wall time to write (``MicroTime``)."""
    mine = LeaseRecord(config.identity, config.lease_duration_seconds, now_time, now_time, 0)
    if current is None:
        return Attempt("create", mine, Observed(mine, now_seconds))
    record = current.record
    if observed is None or observed.record != record:
        observed = Observed(record, now_seconds)  # a change: its age counts from now
    if record.holder and record.holder != config.identity:
        expires = observed.at_seconds + record.lease_duration_seconds
        if now_seconds < expires:
            return Attempt("wait", None, observed, expires)
    if record.holder == config.identity:
        # Renewing: the acquisition stands, no transition.
        new = dataclasses.replace(mine, acquire_time=record.acquire_time or now_time, transitions=record.transitions)
    else:
        # Taking over an expired or released Lease.
        new = dataclasses.replace(mine, transitions=record.transitions + 1)
    return Attempt("update", new, observed)


def micro_time(when: datetime.datetime) -> str:
    return when.astimezone(datetime.UTC).strftime(MICRO_TIME_FORMAT)


def lease_record(lease: Mapping) -> Lease:
    """The record and version of a Lease object (the API's JSON)."""
    spec = lease.get("spec") or {}
    return Lease(LeaseRecord(
        holder=spec.get("holderIdentity") or "",
        lease_duration_seconds=int(spec.get("leaseDurationSeconds") or 0),
        acquire_time=spec.get("acquireTime"), renew_time=spec.get("renewTime"),
        transitions=int(spec.get("leaseTransitions") or 0),
    ), str(lease["metadata"]["resourceVersion"]))


def lease_object(config: LeaderElectionConfig, record: LeaseRecord, resource_version: str | None) -> dict:
    """The Lease to create (no ``resource_version``) or to PUT conditionally on it."""
    metadata: dict[str, Any] = {"name": config.lease_name, "namespace": config.lease_namespace}
    if resource_version is not None:
        metadata["resourceVersion"] = resource_version
    spec: dict[str, Any] = {"holderIdentity": record.holder, "leaseDurationSeconds": record.lease_duration_seconds,
                            "leaseTransitions": record.transitions}
    if record.acquire_time:
        spec["acquireTime"] = record.acquire_time
    if record.renew_time:
        spec["renewTime"] = record.renew_time
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": metadata, "spec": spec}


# --- The guard ---------------------------------------------------------------------------------


class NotLeader(Exception):
    """A write, or work on behalf of the leader, was refused: this replica is not the leader."""


class Leadership:
    """Whether this replica may write now: the fencing token.

    Valid while ``clock() < valid_until`` (see the module docstring). :attr:`epoch` counts the
    terms; a term that ends cancels the work started in it.
    """

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.epoch = 0
        """Terms of leadership this replica has had; the current one while it leads."""
        self._valid_until = -math.inf
        self._leading = False
        self._always = False
        self._work: set[asyncio.Task] = set()
        self.acquired = asyncio.Event()
        """Set when this replica becomes the leader (and stays set)."""
        self.lost = asyncio.Event()
        """Set when a term ends without a release (renew deadline passed, taken over)."""

    @classmethod
    def always(cls) -> Leadership:
        """A single replica without an election (``thrifty run --standalone``): always leader."""
        leadership = cls(clock=lambda: 0.0)
        leadership._always = True
        leadership._leading = True
        leadership.epoch = 1
        leadership.acquired.set()
        return leadership

    @property
    def valid_until(self) -> float:
        return math.inf if self._always else self._valid_until

    def is_leader(self) -> bool:
        return self._always or (self._leading and self.clock() < self._valid_until)

    def check(self, operation: str) -> None:
        """Raise :class:`NotLeader` unless this replica may write now."""
        if not self.is_leader():
            raise NotLeader(f"{operation}: refused, this replica is not the leader")

    def renewed(self, valid_until: float) -> None:
        """A renew (or the acquisition) succeeded; leadership holds until ``valid_until``."""
        if not self._leading:
            self._leading = True
            self.epoch += 1
            self.acquired.set()
        self._valid_until = valid_until

    def end(self, *, lost: bool) -> None:
        """The term ends (``lost``: not by a release); work in flight is cancelled."""
        was = self._leading
        self._leading = False
        self._valid_until = -math.inf
        for task in list(self._work):
            task.cancel()
        if was and lost:
            self.lost.set()

    async def fenced(self, work: Coroutine[Any, Any, T]) -> T:
        """Run ``work`` as leader: refused (:class:`NotLeader`) if not, and cancelled, with
        :class:`NotLeader` raised here, if the term ends before it finishes."""
        if not self.is_leader():
            work.close()
            raise NotLeader("refused, this replica is not the leader")
        epoch = self.epoch
        task = asyncio.ensure_future(work)
        self._work.add(task)
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.cancelled() and self.epoch == epoch and not self.is_leader():
                raise NotLeader("cancelled: leadership was lost") from None
            task.cancel()  # our caller was cancelled: the work goes with it
            raise
        finally:
            self._work.discard(task)


# --- The loop ----------------------------------------------------------------------------------


class LeaseAPI(Protocol):
    """The Lease calls the elector needs (:class:`thrifty.adapter.Kube` has them). Each raises
    :class:`LeaseConflict` on 409 and :class:`LeaseUnavailable` when the API did not answer
    usefully."""

    async def get_lease(self, namespace: str, name: str, timeout_seconds: float) -> dict | None: ...

    async def create_lease(self, namespace: str, body: Mapping, timeout_seconds: float) -> dict: ...

    async def replace_lease(self, namespace: str, name: str, body: Mapping, timeout_seconds: float) -> dict: ...


class LeaseConflict(Exception):
    """409: the Lease changed (or was created) since it was read."""


class LeaseUnavailable(Exception):
    """The Lease could not be read or written (no answer, a timeout, a 5xx, a denial)."""


class LeaderElector:
    """Acquires the Lease, renews it, steps down at the renew deadline, releases it on stop.

    :meth:`run` returns when leadership is lost (the operator then exits, as kube-scheduler does,
    and restarts as a standby); it is cancelled to stop, after which :meth:`release` gives the
    Lease up if this replica holds it.
    """

    def __init__(self, config: LeaderElectionConfig, api: LeaseAPI, leadership: Leadership, *,
                 wall_clock: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.UTC),
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 uniform: Callable[[], float] = random.random,
                 on_transition: Callable[[str], None] = lambda outcome: None) -> None:
        self.config = config
        self.api = api
        self.leadership = leadership
        self.clock = leadership.clock
        self.wall_clock = wall_clock
        self.sleep = sleep
        self.uniform = uniform
        self.on_transition = on_transition
        """Called with ``acquired``, ``lost`` or ``released`` (the transitions counter)."""
        self.observed: Observed | None = None
        self.leader: str = ""
        """The holder this replica last saw (empty: none)."""
        self._version: str | None = None
        """resourceVersion of the Lease this replica last wrote as holder (for the release)."""
        self.released = False
        """This replica gave the Lease up (:meth:`release`): its term ended, it was not lost."""

    async def run(self) -> None:
        await self._acquire()
        await self._renew()

    async def _acquire(self) -> None:
        cfg = self.config
        logger.info("waiting to lead: Lease %s/%s as %s", cfg.lease_namespace, cfg.lease_name, cfg.identity)
        while True:
            attempt = await self.try_once(timeout_seconds=cfg.retry_period_seconds * (1 + cfg.jitter_factor))
            if self.leadership.is_leader():
                logger.info("leading: acquired Lease %s/%s as %s", cfg.lease_namespace, cfg.lease_name, cfg.identity)
                self.on_transition("acquired")
                return
            wait = cfg.retry_period_seconds * (1 + cfg.jitter_factor * self.uniform())
            if attempt is not None and attempt.action == "wait":
                # Try again right as the holder's Lease expires, not up to a jittered period later.
                wait = max(min(wait, attempt.expires_at_seconds - self.clock()), 0.0)
            await self.sleep(wait)

    async def _renew(self) -> None:
        cfg = self.config
        while True:
            await self.sleep(cfg.retry_period_seconds)
            remaining = self.leadership.valid_until - self.clock()
            if remaining > 0:
                await self.try_once(timeout_seconds=remaining)
            if not self.leadership.is_leader():
                if self.released:
                    return
                why = (f"taken over by {self.leader}" if self.leader and self.leader != cfg.identity
                       else f"not renewed within {cfg.renew_deadline_seconds:g} s")
                logger.error("leadership lost (%s): Lease %s/%s", why, cfg.lease_namespace, cfg.lease_name)
                self.leadership.end(lost=True)
                self.on_transition("lost")
                return

    async def try_once(self, timeout_seconds: float) -> Attempt | None:
        """One read and, if due, one write; updates :attr:`leadership`. None: the API failed."""
        cfg = self.config
        started = self.clock()
        try:
            found = await self.api.get_lease(cfg.lease_namespace, cfg.lease_name, timeout_seconds)
            current = lease_record(found) if found is not None else None
            attempt = try_acquire_or_renew(cfg, current, self.observed, now_seconds=self.clock(),
                                           now_time=micro_time(self.wall_clock()))
            self.observed = attempt.observed
            self.leader = current.record.holder if current is not None else ""
            if attempt.action == "wait":
                if self.leadership.is_leader():  # someone else holds it now: this term is over
                    self.leadership.end(lost=True)
                return attempt
            assert attempt.record is not None
            remaining = max(timeout_seconds - (self.clock() - started), 0.001)
            if attempt.action == "create":
                written = await self.api.create_lease(cfg.lease_namespace, lease_object(cfg, attempt.record, None),
                                                      remaining)
            else:
                assert current is not None
                written = await self.api.replace_lease(
                    cfg.lease_namespace, cfg.lease_name,
                    lease_object(cfg, attempt.record, current.resource_version), remaining)
        except LeaseConflict:
            logger.debug("Lease %s/%s changed under us; reading it again", cfg.lease_namespace, cfg.lease_name)
            return None
        except LeaseUnavailable as error:
            logger.warning("Lease %s/%s: %s", cfg.lease_namespace, cfg.lease_name, error)
            return None
        new = lease_record(written)
        self.observed = Observed(new.record, self.clock())
        self.leader = cfg.identity
        self._version = new.resource_version
        # Valid from when the write was sent: the server recorded the renew at or after that,
        # and candidates count the lease duration from when they saw it, later still.
        self.leadership.renewed(started + cfg.renew_deadline_seconds)
        return attempt

    async def release(self) -> bool:
        """Give the Lease up (empty holder) if this replica holds it, so that a standby takes
        over at its next try; True if released. Conditional on the version last written: a
        Lease someone else took meanwhile is left alone."""
        cfg = self.config
        if not self.leadership.is_leader() or self.observed is None or self._version is None:
            return False
        record = dataclasses.replace(self.observed.record, holder="", lease_duration_seconds=1,
                                     renew_time=micro_time(self.wall_clock()))
        self.leadership.end(lost=False)  # stop writing first: the release is the last write
        self.released = True
        try:
            await self.api.replace_lease(cfg.lease_namespace, cfg.lease_name,
                                         lease_object(cfg, record, self._version), cfg.retry_period_seconds)
        except (LeaseConflict, LeaseUnavailable) as error:
            logger.warning("could not release Lease %s/%s: %s", cfg.lease_namespace, cfg.lease_name, error)
            return False
        logger.info("released Lease %s/%s", cfg.lease_namespace, cfg.lease_name)
        self.on_transition("released")
        return True


@contextlib.contextmanager
def refused_quietly(what: str) -> Any:
    """Swallow :class:`NotLeader` (work that was refused or cancelled on a lost leadership),
    logging it at INFO: it is the fencing doing its job, not a fault."""
    try:
        yield
    except NotLeader as error:
        logger.info("%s: %s", what, error)
