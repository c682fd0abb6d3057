"""Leader election on a Lease (thrifty.leadership) with a fake clock and a fake API, and the
fencing of the operator's writes (adapter, extender, sizing step)."""

from __future__ import annotations

import asyncio
import copy
import datetime
import math
from collections.abc import Mapping

import pytest
from aiohttp import ClientSession

from tests.unit.test_extender import FakeKube, bound_to, drain, node, pod, serve, view_of
from thrifty.adapter import Fenced, Kube
from thrifty.handlers import OperatorConfig, Reconciler
from thrifty.leadership import (
    LeaderElectionConfig,
    LeaderElector,
    Leadership,
    Lease,
    LeaseConflict,
    LeaseRecord,
    LeaseUnavailable,
    NotLeader,
    Observed,
    lease_object,
    lease_record,
    try_acquire_or_renew,
)
from thrifty.metrics import Metrics
from thrifty.policy.heuristic import HeuristicPolicy

ME, OTHER = "me", "other"
T0 = "2026-12-04T21:00:00.000000Z"
NOW = "2026-12-04T21:00:30.000000Z"


def config(identity: str = ME, **overrides: object) -> LeaderElectionConfig:
    values: dict = {"lease_name": "thrifty", "lease_namespace": "ops", "identity": identity,
                    "lease_duration_seconds": 10, "renew_deadline_seconds": 7.0, "retry_period_seconds": 2.0}
    return LeaderElectionConfig(**{**values, **overrides})


def record(holder: str, transitions: int = 3, duration: int = 10, acquired: str | None = T0) -> LeaseRecord:
    return LeaseRecord(holder, duration, acquired, T0, transitions)


# --- The pure decision, table-driven ----------------------------------------------------------

CASES = [
    # (case, current lease, what was observed (record, at s), now s, action, holder written,
    #  transitions written, acquireTime written)
    ("no lease: create it", None, None, 100.0, "create", ME, 0, NOW),
    ("a free (released) lease: take it", Lease(record("", duration=1), "7"), None, 100.0, "update", ME, 4, NOW),
    ("own lease: renew, keep acquireTime and transitions", Lease(record(ME), "7"), (record(ME), 95.0), 100.0,
     "update", ME, 3, T0),
    ("a foreign lease just seen: respect it", Lease(record(OTHER), "7"), None, 100.0, "wait", None, None, None),
    ("a foreign lease seen 9.9 s ago, unchanged: still respected", Lease(record(OTHER), "7"),
     (record(OTHER), 90.1), 100.0, "wait", None, None, None),
    ("a foreign lease unchanged for its 10 s: expired, take it over", Lease(record(OTHER), "7"),
     (record(OTHER), 90.0), 100.0, "update", ME, 4, NOW),
    ("a foreign lease that changed (renewed) since: its age restarts", Lease(record(OTHER, transitions=3), "8"),
     (record(OTHER, transitions=2), 50.0), 100.0, "wait", None, None, None),
    ("the holder's own duration counts, not ours", Lease(record(OTHER, duration=30), "7"),
     (record(OTHER, duration=30), 80.0), 100.0, "wait", None, None, None),
]


@pytest.mark.parametrize(("case", "current", "observed", "now", "action", "holder", "transitions", "acquired"),
                         CASES, ids=[c[0] for c in CASES])
def test_try_acquire_or_renew(case: str, current: Lease | None, observed: tuple | None, now: float, action: str,
                              holder: str | None, transitions: int | None, acquired: str | None) -> None:
    seen = Observed(*observed) if observed else None
    attempt = try_acquire_or_renew(config(), current, seen, now_seconds=now, now_time=NOW)
    assert attempt.action == action
    if action == "wait":
        assert attempt.record is None
        assert attempt.expires_at_seconds > now
    else:
        assert attempt.record is not None
        assert (attempt.record.holder, attempt.record.transitions, attempt.record.acquire_time) == (
            holder, transitions, acquired)
        assert attempt.record.renew_time == NOW and attempt.record.lease_duration_seconds == 10
    assert attempt.observed is not None
    if current is not None and (seen is None or seen.record != current.record):
        assert attempt.observed == Observed(current.record, now)  # a change is timed from now


def test_the_lease_object_round_trips_and_carries_the_version_to_write_against() -> None:
    cfg = config()
    body = lease_object(cfg, record(ME), "42")
    assert body["metadata"] == {"name": "thrifty", "namespace": "ops", "resourceVersion": "42"}
    assert lease_record(body) == Lease(record(ME), "42")
    assert "resourceVersion" not in lease_object(cfg, record(ME), None)["metadata"]


@pytest.mark.parametrize(("overrides", "field"), [
    ({"renew_deadline_seconds": 10.0}, "renew_deadline_seconds"),
    ({"retry_period_seconds": 6.0}, "retry_period_seconds"),
    ({"lease_duration_seconds": 0}, "lease_duration_seconds"),
    ({"retry_period_seconds": math.nan}, "retry_period_seconds"),
    ({"identity": ""}, "identity"),
])
def test_config_is_checked_as_client_go_does(overrides: dict, field: str) -> None:
    with pytest.raises(ValueError, match=f"LeaderElectionConfig.{field}"):
        config(**overrides)


# --- The elector against a fake API and a fake clock -------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def wall(self) -> datetime.datetime:
        return datetime.datetime(2026, 12, 4, tzinfo=datetime.UTC) + datetime.timedelta(seconds=self.now)

    async def sleep(self, seconds: float) -> None:
        self.now += max(seconds, 0.0)
        await asyncio.sleep(0)


class FakeLeaseAPI:
    """One Lease with a resourceVersion the server bumps on every write; ``down`` fails every call."""

    def __init__(self) -> None:
        self.lease: dict | None = None
        self.version = 0
        self.down = False
        self.writes: list[str] = []
        """Holder of every write that succeeded."""

    def _store(self, body: Mapping) -> dict:
        self.version += 1
        self.lease = copy.deepcopy(dict(body))
        self.lease["metadata"]["resourceVersion"] = str(self.version)
        self.writes.append(self.lease["spec"]["holderIdentity"])
        return copy.deepcopy(self.lease)

    async def get_lease(self, namespace: str, name: str, timeout_seconds: float) -> dict | None:
        if self.down:
            raise LeaseUnavailable("HTTP 503")
        return copy.deepcopy(self.lease)

    async def create_lease(self, namespace: str, body: Mapping, timeout_seconds: float) -> dict:
        if self.down:
            raise LeaseUnavailable("HTTP 503")
        if self.lease is not None:
            raise LeaseConflict("already exists")
        return self._store(body)

    async def replace_lease(self, namespace: str, name: str, body: Mapping, timeout_seconds: float) -> dict:
        if self.down:
            raise LeaseUnavailable("HTTP 503")
        assert self.lease is not None
        if body["metadata"].get("resourceVersion") != self.lease["metadata"]["resourceVersion"]:
            raise LeaseConflict("the object has been modified")
        return self._store(body)

    def holder(self) -> str:
        return (self.lease or {}).get("spec", {}).get("holderIdentity", "")


def elector(api: FakeLeaseAPI, clock: FakeClock, identity: str = ME, transitions: list | None = None
            ) -> LeaderElector:
    leadership = Leadership(clock=clock)
    return LeaderElector(config(identity), api, leadership, wall_clock=clock.wall, sleep=clock.sleep,
                         uniform=lambda: 0.5, on_transition=(transitions.append if transitions is not None
                                                             else lambda _: None))


def run(coroutine):
    return asyncio.run(coroutine)


def test_acquires_a_missing_lease_then_renews_it_without_a_transition() -> None:
    async def scenario() -> None:
        clock, api, seen = FakeClock(), FakeLeaseAPI(), []
        me = elector(api, clock, transitions=seen)
        assert not me.leadership.is_leader()
        await me.try_once(timeout_seconds=2.0)
        assert me.leadership.is_leader() and me.leadership.epoch == 1
        assert api.holder() == ME and api.lease["spec"]["leaseTransitions"] == 0
        acquired = api.lease["spec"]["acquireTime"]
        clock.now += 2.0
        await me.try_once(timeout_seconds=2.0)
        assert api.writes == [ME, ME] and api.lease["spec"]["acquireTime"] == acquired
        assert api.lease["spec"]["renewTime"] != acquired
        assert api.lease["spec"]["leaseTransitions"] == 0 and me.leadership.epoch == 1
        # Valid until the renew deadline after the last renew was sent, by the monotonic clock.
        assert me.leadership.valid_until == clock.now + 7.0
    run(scenario())


def test_a_live_foreign_lease_is_respected_and_an_expired_one_taken_over() -> None:
    async def scenario() -> None:
        clock, api = FakeClock(), FakeLeaseAPI()
        leader, standby = elector(api, clock, OTHER), elector(api, clock, ME)
        await leader.try_once(timeout_seconds=2.0)
        # The holder renews every 2 s for a minute: the standby never takes over.
        for _ in range(30):
            await standby.try_once(timeout_seconds=2.0)
            assert not standby.leadership.is_leader() and standby.leader == OTHER
            clock.now += 2.0
            await leader.try_once(timeout_seconds=2.0)
        assert set(api.writes) == {OTHER}
        # The holder dies. 9.9 s after the standby last saw a change: still respected.
        await standby.try_once(timeout_seconds=2.0)
        seen_at = clock.now
        clock.now = seen_at + 9.9
        await standby.try_once(timeout_seconds=2.0)
        assert api.holder() == OTHER and not standby.leadership.is_leader()
        clock.now = seen_at + 10.0
        await standby.try_once(timeout_seconds=2.0)
        assert api.holder() == ME and standby.leadership.is_leader()
        assert api.lease["spec"]["leaseTransitions"] == 1
        # The old holder, back (a paused process), sees the foreign lease and does not lead.
        await leader.try_once(timeout_seconds=2.0)
        assert not leader.leadership.is_leader() and api.holder() == ME
    run(scenario())


def test_a_resource_version_conflict_lets_exactly_one_racer_win() -> None:
    async def scenario() -> None:
        clock, api = FakeClock(), FakeLeaseAPI()
        first, second = elector(api, clock, "a"), elector(api, clock, "b")
        api._store(lease_object(config("gone"), record("gone", transitions=5), None))
        api.writes.clear()
        await asyncio.gather(first.try_once(2.0), second.try_once(2.0))  # both see it fresh
        clock.now += 10.0

        # Both read the same expired Lease before either writes: the slower write conflicts.
        real_get = api.get_lease
        reads: list[int] = []

        async def both_read_first(*args: object) -> dict | None:
            lease = await real_get(*args)  # type: ignore[arg-type]
            reads.append(1)
            while len(reads) < 2:
                await asyncio.sleep(0)
            return lease

        api.get_lease = both_read_first  # type: ignore[method-assign]
        await asyncio.gather(first.try_once(2.0), second.try_once(2.0))
        leaders = [e for e in (first, second) if e.leadership.is_leader()]
        assert len(leaders) == 1 and api.writes == [leaders[0].config.identity]
        assert api.lease["spec"]["leaseTransitions"] == 6
    run(scenario())


def test_the_leader_steps_down_at_its_renew_deadline_and_its_work_is_cancelled() -> None:
    async def scenario() -> None:
        clock, api, seen = FakeClock(), FakeLeaseAPI(), []
        me = elector(api, clock, transitions=seen)
        leadership = me.leadership
        await me.try_once(timeout_seconds=2.0)
        renewed_at = clock.now
        started = asyncio.Event()

        async def sizing_step() -> str:
            started.set()
            await asyncio.Event().wait()  # an API call that never returns
            return "done"

        step = asyncio.create_task(leadership.fenced(sizing_step()))
        await started.wait()
        api.down = True
        clock.now = renewed_at + 6.99
        assert leadership.is_leader()
        clock.now = renewed_at + 7.0
        # The fence is the clock, not the loop: no write from this instant on.
        assert not leadership.is_leader()
        with pytest.raises(NotLeader):
            leadership.check("create pod ns/a")
        clock.now = renewed_at
        await me._renew()  # returns once the deadline passed without a renew
        assert clock.now >= renewed_at + 7.0
        assert seen == ["lost"] and leadership.lost.is_set()
        with pytest.raises(NotLeader, match="leadership was lost"):
            await asyncio.wait_for(step, timeout=5)
        with pytest.raises(NotLeader):
            await leadership.fenced(sizing_step())
    run(scenario())


def test_a_leader_whose_lease_was_taken_steps_down_at_once() -> None:
    async def scenario() -> None:
        clock, api = FakeClock(), FakeLeaseAPI()
        me = elector(api, clock)
        await me.try_once(timeout_seconds=2.0)
        # Someone else writes the Lease (an operator forcing a takeover): 409 on our renew, then
        # the read shows a foreign holder.
        assert api.lease is not None
        api._store({**api.lease, "spec": {**api.lease["spec"], "holderIdentity": OTHER}})
        await me.try_once(timeout_seconds=2.0)
        assert not me.leadership.is_leader() and me.leadership.lost.is_set() and me.leader == OTHER
    run(scenario())


def test_release_lets_the_standby_take_over_at_its_next_try() -> None:
    async def scenario() -> None:
        clock, api, seen = FakeClock(), FakeLeaseAPI(), []
        leader, standby = elector(api, clock, OTHER, transitions=seen), elector(api, clock, ME)
        await leader.try_once(2.0)  # acquire
        await standby.try_once(2.0)
        assert await leader.release()
        assert api.holder() == "" and api.lease["spec"]["leaseDurationSeconds"] == 1
        assert not leader.leadership.is_leader() and not leader.leadership.lost.is_set()
        assert seen == ["released"]
        await standby.try_once(2.0)  # no wait for the old lease duration
        assert standby.leadership.is_leader() and api.holder() == ME
        assert not await leader.release()  # not the holder any more: nothing written
        assert api.writes[-1] == ME
        await leader._renew()  # the loop ends quietly after a release: no "lost"
        assert seen == ["released"] and not leader.leadership.lost.is_set()
    run(scenario())


def test_the_acquire_loop_retries_until_the_lease_expires_and_not_later() -> None:
    async def scenario() -> None:
        clock, api, seen = FakeClock(), FakeLeaseAPI(), []
        leader, standby = elector(api, clock, OTHER), elector(api, clock, ME, transitions=seen)
        await leader.try_once(2.0)
        died_at = clock.now
        await standby._acquire()
        assert seen == ["acquired"] and api.holder() == ME
        # Jittered tries (2 s x (1 + 1.2 x 0.5) = 3.2 s), the last one cut to the expiry.
        assert clock.now - died_at == pytest.approx(10.0)
    run(scenario())


def test_a_caller_cancelled_cancels_its_fenced_work_but_is_no_lost_leadership() -> None:
    async def scenario() -> None:
        leadership = Leadership.always()
        done = asyncio.Event()

        async def work() -> None:
            try:
                await asyncio.Event().wait()
            finally:
                done.set()

        task = asyncio.create_task(leadership.fenced(work()))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert done.is_set() and leadership.is_leader()
    run(scenario())


# --- Fencing of the operator's writes ---------------------------------------------------------


class RecordingClient:
    """Stands in for kubernetes_asyncio's ApiClient: records what would be sent."""

    def __init__(self) -> None:
        from kubernetes_asyncio.client import Configuration

        self.sent: list[tuple[str, str]] = []
        self.user_agent = "OpenAPI-Generator"
        self.configuration = Configuration(host="https://127.0.0.1:6443")

    async def call_api(self, path: str, method: str, **_: object) -> object:
        self.sent.append((method, path))

        class Response:
            status = 200
            reason = "OK"

            async def read(self) -> bytes:
                return b'{"metadata": {"resourceVersion": "1"}, "spec": {}}'

            def release(self) -> None:
                pass

        return Response()


def test_kube_refuses_every_write_but_the_lease_while_not_leading() -> None:
    async def scenario() -> None:
        client, metrics = RecordingClient(), Metrics()
        kube = Kube(client, None, metrics, user_agent="thrifty/1 (me)")  # type: ignore[arg-type]
        assert client.user_agent == "thrifty/1 (me)"
        leading = [False]
        kube.fence = lambda: leading[0]
        manifest = {"metadata": {"name": "a", "namespace": "ns"}}
        for write in (kube.create_pod(manifest), kube.evict_pod("ns", "a", "uid"),
                      kube.patch_workload_status("ns", "w", {}), kube.delete_pod("ns", "a", "uid"),
                      kube.post_event({"metadata": {"name": "a", "namespace": "ns"}}, type="Normal", reason="R",
                                      message="m", action="A", time=T0)):
            with pytest.raises(Fenced):
                await write
        assert client.sent == []
        assert metrics.fenced_writes.labels("pods")._value.get() == 2  # create and delete
        # Reads go through, and so do the election's own Lease writes.
        await kube.list_raw("/api/v1/pods")
        await kube.replace_lease("ns", "thrifty", {"metadata": {}}, 2.0)
        assert [m for m, _ in client.sent] == ["GET", "PUT"]
        leading[0] = True
        await kube.create_pod(manifest)
        assert client.sent[-1] == ("POST", "/api/v1/namespaces/ns/pods")
        assert kube.connection_info().as_http_headers()["User-Agent"] == "thrifty/1 (me) kopf"
    run(scenario())


def test_a_standby_extender_scores_and_only_the_leader_records() -> None:
    """kube-scheduler binds whichever replica's kube-scheduler leads; the extender it calls scores
    from its own warm view either way, but explains a binding only while it leads."""
    async def scenario() -> None:
        view = view_of([node("n1"), node("n2")], [])
        kube = FakeKube()
        extender, runner, url = await serve(view, HeuristicPolicy(), kube)
        clock = FakeClock()
        extender.leadership = Leadership(clock=clock)  # a standby
        async with ClientSession() as http:
            scores = await (await http.post(f"{url}/prioritize", json={
                "Pod": pod("a"), "Nodes": None, "NodeNames": ["n1", "n2"]})).json()
            assert max(s["Score"] for s in scores) == 10  # the warm view still scores
            extender.bound(bound_to(pod("a"), "n1"))
            await drain(extender)
            assert kube.events == []  # a standby writes nothing
            extender.leadership.renewed(clock.now + 7.0)  # now it leads
            await http.post(f"{url}/prioritize", json={"Pod": pod("b"), "Nodes": None, "NodeNames": ["n1", "n2"]})
            extender.bound(bound_to(pod("b"), "n2"))
            await drain(extender)
            assert [(e["name"], e["reason"]) for e in kube.events] == [("b", "Scheduled")]  # the leader records
            # A batch still queued when leadership is lost is dropped, not written.
            assert extender._worker is not None
            extender._worker.cancel()
            await http.post(f"{url}/prioritize", json={"Pod": pod("c"), "Nodes": None, "NodeNames": ["n1", "n2"]})
            extender.bound(bound_to(pod("c"), "n2"))
            assert extender._records.qsize() == 1
        extender.leadership.end(lost=True)
        extender._worker = asyncio.create_task(extender._record_loop())
        await drain(extender)
        assert [e["name"] for e in kube.events] == ["b"]
        await runner.cleanup()
    run(scenario())


class _SlowKube:
    """Lists hang until released: a sizing step in flight."""

    def __init__(self) -> None:
        self.listing = asyncio.Event()
        self.writes = 0

    async def list_nodes(self) -> list[dict]:
        self.listing.set()
        await asyncio.Event().wait()
        return []

    async def list_pods(self) -> list[dict]:
        return []

    async def list_workloads(self) -> list[dict]:
        return []


def test_a_sizing_step_runs_only_on_the_leader_and_is_cancelled_when_leadership_is_lost() -> None:
    async def scenario() -> None:
        clock, kube, metrics = FakeClock(), _SlowKube(), Metrics()
        leadership = Leadership(clock=clock)
        reconciler = Reconciler(config=OperatorConfig(), kube=kube, prometheus=None,  # type: ignore[arg-type]
                                metrics=metrics, policy=HeuristicPolicy(), policy_error=None, leadership=leadership)
        await reconciler.reconcile("ns", "web")  # a standby: no step at all
        assert not kube.listing.is_set()
        leadership.renewed(clock.now + 7.0)
        step = asyncio.create_task(reconciler.reconcile("ns", "web"))
        await kube.listing.wait()
        leadership.end(lost=True)
        await asyncio.wait_for(step, timeout=5)  # returns: cancelled, logged, not an error
        assert metrics.reconcile_errors.labels("sizing")._value.get() == 0
        assert not reconciler.lock.locked()
    run(scenario())
