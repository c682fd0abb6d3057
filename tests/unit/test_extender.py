"""The extender: the mapping of the policy's choice onto extender scores, the watch-fed view and
its assume step, and the HTTP endpoint (prioritize, bind, fallback, shadow placement) on a live
aiohttp server with a fake API behind it."""

from __future__ import annotations

import asyncio
import math
import socket
import time

import numpy as np
import pytest
from aiohttp import ClientSession, web
from hypothesis import given
from hypothesis import strategies as st

from thrifty.core import choose_placement
from thrifty.extender.scores import MAX_EXTENDER_SCORE, candidate_nodes, host_priorities
from thrifty.extender.server import Extender, ExtenderConfig
from thrifty.history import UsageHistory
from thrifty.informer import Informer
from thrifty.metrics import Metrics
from thrifty.observe import parse_time, parse_workload
from thrifty.policy.base import PolicyInfo
from thrifty.policy.heuristic import HeuristicPolicy
from thrifty.view import ADDED, DELETED, MODIFIED, ClusterView

STAMP = "2027-01-15T08:00:00Z"


def node(name: str, cpu: str = "4", memory: str = "8Gi") -> dict:
    return {"metadata": {"name": name, "labels": {}},
            "status": {"allocatable": {"cpu": cpu, "memory": memory, "pods": "110"},
                       "conditions": [{"type": "Ready", "status": "True"}]}}


def pod(name: str, node_name: str | None = None, cpu: str = "500m", scheduler: str = "thrifty",
        owner: dict | None = None) -> dict:
    meta: dict = {"name": name, "namespace": "ns", "uid": f"uid-{name}", "creationTimestamp": STAMP, "labels": {}}
    if owner:
        meta["labels"]["thrifty.dev/workload"] = owner["metadata"]["name"]
        meta["ownerReferences"] = [{"controller": True, "uid": owner["metadata"]["uid"], "kind": "RLWorkload",
                                    "name": owner["metadata"]["name"], "apiVersion": "thrifty.dev/v1alpha1"}]
    spec: dict = {"schedulerName": scheduler, "containers": [
        {"name": "app", "resources": {"requests": {"cpu": cpu, "memory": "64Mi"}}}]}
    if node_name:
        spec["nodeName"] = node_name
    return {"metadata": meta, "spec": spec, "status": {"phase": "Running" if node_name else "Pending"}}


def rlw(name: str, mode: str = "Auto") -> dict:
    return {"metadata": {"name": name, "namespace": "ns", "uid": f"w-{name}", "generation": 1},
            "spec": {"template": {"spec": {"containers": [{"name": "app"}]}}, "replicas": {"min": 1, "max": 3},
                     "containers": [], "slo": {"latencyP95Milliseconds": 200}, "policy": {"mode": mode}}}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def view_of(nodes: list[dict], pods: list[dict], clock: Clock | None = None) -> ClusterView:
    view = ClusterView(clock=clock or Clock())
    view.replace_nodes(nodes)
    view.replace_pods(pods)
    return view


HISTORY = UsageHistory(window_samples=4, step_seconds=15.0)
NOW = 1.8e9


class Scores:
    """A policy with fixed node scores (by node name), or one that fails, or one that is slow."""

    def __init__(self, by_node: dict[str, float] | None = None, error: Exception | None = None,
                 delay_seconds: float = 0.0) -> None:
        self.info = PolicyInfo(name="fixed", version="1", backend="test")
        self.by_node, self.error, self.delay = by_node or {}, error, delay_seconds

    def score_nodes(self, snapshot, pod_row: int) -> np.ndarray:
        if self.delay:
            time.sleep(self.delay)
        if self.error:
            raise self.error
        return np.array([self.by_node.get(n, 0.0) for n in snapshot.nodes.names])

    def size(self, snapshot):
        raise NotImplementedError


# --- Scores --------------------------------------------------------------------------------------

@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=40), st.data())
def test_the_policys_argmax_gets_ten_and_every_other_node_less(values: list[float], data: st.DataObject) -> None:
    names = [f"n{i}" for i in range(len(values))]
    scores = np.array(values)
    candidates = data.draw(st.permutations(names))
    chosen = int(np.argmax(scores))
    answer = host_priorities(candidates, names, scores, chosen)
    assert [a["Host"] for a in answer] == candidates
    by_host = {a["Host"]: a["Score"] for a in answer}
    assert by_host[names[chosen]] == MAX_EXTENDER_SCORE
    assert all(0 <= s < MAX_EXTENDER_SCORE for h, s in by_host.items() if h != names[chosen])
    # kube-scheduler picks the highest total score: with the profile's scorers off, the policy's node.
    assert max(answer, key=lambda a: a["Score"])["Host"] == names[chosen]


def test_lower_policy_scores_never_outrank_higher_ones() -> None:
    scores = np.array([1.0, 5.0, 3.0, 9.0, -2.0])
    answer = host_priorities(["n0", "n1", "n2", "n3", "n4", "gone"], ["n0", "n1", "n2", "n3", "n4"], scores, 3)
    assert [a["Score"] for a in answer] == [2, 5, 4, 10, 0, 0]  # floor(9 * (s + 2) / 11)


def test_wire_format_field_names() -> None:
    assert candidate_nodes({"Pod": {}, "Nodes": None, "NodeNames": ["a", "b"]}) == ["a", "b"]
    assert candidate_nodes({"Pod": {}, "Nodes": {"items": [{"metadata": {"name": "c"}}]}}) == ["c"]


# --- The view ------------------------------------------------------------------------------------

def test_view_counts_bound_pods_and_follows_events() -> None:
    view = view_of([node("n1"), node("n2")], [pod("a", "n1"), pod("b", "n2", cpu="1"), pod("p")])
    snapshot, row = view.snapshot(pod("new"), ["n1", "n2"], time_seconds=NOW, history=HISTORY)
    assert snapshot.pods.names[row] == "ns/new" and snapshot.pods.node_index[row] == -1
    assert snapshot.nodes.cpu_requested_millicores.tolist() == [500, 1000]
    view.apply_pod(DELETED, pod("a", "n1"))
    view.apply_pod(MODIFIED, pod("p", "n2"))
    view.apply_node(ADDED, node("n3"))
    snapshot, _ = view.snapshot(pod("new"), ["n3"], time_seconds=NOW, history=HISTORY)
    assert snapshot.nodes.names == ("n1", "n2", "n3")
    assert snapshot.nodes.cpu_requested_millicores.tolist() == [0, 1500, 0]
    assert snapshot.nodes.schedulable.tolist() == [False, False, True]
    assert snapshot.pods_per_node().tolist() == [0, 2, 0]


def test_an_assumed_pod_counts_until_the_watch_confirms_it_or_it_expires() -> None:
    clock = Clock()
    view = view_of([node("n1"), node("n2")], [], clock)
    view.assume(pod("a"), "n1")
    view.apply_pod(MODIFIED, pod("a"))  # an update from before the binding: still assumed
    assert view.bound_node("ns/a") == "n1"
    snapshot, _ = view.snapshot(pod("b"), ["n1", "n2"], time_seconds=NOW, history=HISTORY)
    assert snapshot.nodes.cpu_requested_millicores.tolist() == [500, 0]
    view.assume(pod("c"), "n2")
    view.apply_pod(MODIFIED, pod("c", "n2"))  # confirmed: no longer expires
    clock.now += view.assume_ttl_seconds + 1
    view.expire_assumed()
    assert view.bound_node("ns/a") is None and view.bound_node("ns/c") == "n2"


def test_a_pod_placed_again_is_not_counted_twice() -> None:
    view = view_of([node("n1")], [])
    view.assume(pod("a"), "n1")
    snapshot, row = view.snapshot(pod("a"), ["n1"], time_seconds=NOW, history=HISTORY)
    assert len(snapshot.pods) == 1 and snapshot.pods.node_index[row] == -1
    assert snapshot.nodes.cpu_requested_millicores.tolist() == [0]


@given(st.lists(st.tuples(st.sampled_from([ADDED, MODIFIED, DELETED]), st.integers(0, 7),
                          st.sampled_from([None, "n1", "n2"])), max_size=60))
def test_view_equals_a_fresh_list_after_any_event_sequence(events: list) -> None:
    view = view_of([node("n1"), node("n2")], [])
    state: dict[str, dict] = {}
    for kind, index, where in events:
        obj = pod(f"p{index}", where)
        view.apply_pod(kind, obj)
        if kind == DELETED or not where:
            state.pop(f"ns/p{index}", None)
        else:
            state[f"ns/p{index}"] = obj
    fresh = view_of([node("n1"), node("n2")], list(state.values()))
    ours, _ = view.snapshot(pod("x"), ["n1"], time_seconds=NOW, history=HISTORY)
    theirs, _ = fresh.snapshot(pod("x"), ["n1"], time_seconds=NOW, history=HISTORY)
    assert sorted(ours.pods.names) == sorted(theirs.pods.names)
    assert ours.nodes.cpu_requested_millicores.tolist() == theirs.nodes.cpu_requested_millicores.tolist()


def test_the_view_feeds_the_same_placement_path_as_the_simulator() -> None:
    """The policy sees the candidates only; choose_placement is the core's one placement function."""
    view = view_of([node("n1"), node("n2"), node("n3")], [pod("a", "n3", cpu="2")])
    snapshot, row = view.snapshot(pod("new"), ["n1", "n2"], time_seconds=NOW, history=HISTORY)
    chosen, _, fallback = choose_placement(snapshot, row, HeuristicPolicy(), HeuristicPolicy())
    assert snapshot.nodes.names[chosen] in ("n1", "n2") and fallback is None


# --- The endpoint --------------------------------------------------------------------------------

class FakeKube:
    """Records Events and RLWorkload status writes."""

    def __init__(self) -> None:
        self.events: list[dict] = []
        self.status: dict[str, dict] = {}
        self.status_writes = 0

    async def post_event(self, involved, **event) -> None:
        self.events.append({"name": involved["metadata"]["name"], "kind": involved.get("kind"), **event})

    async def get_workload(self, namespace: str, name: str) -> dict:
        return {"status": self.status.get(f"{namespace}/{name}", {})}

    async def patch_workload_status(self, namespace: str, name: str, status: dict) -> None:
        self.status[f"{namespace}/{name}"] = status
        self.status_writes += 1


async def serve(view: ClusterView, policy, kube: FakeKube, **config) -> tuple[Extender, web.AppRunner, str]:
    metrics = Metrics()
    extender = Extender(config=ExtenderConfig(port=1, **config), kube=kube, view=view, history=HISTORY,
                        policy=policy, fallback=HeuristicPolicy(), metrics=metrics, status_lock=asyncio.Lock(),
                        clock=lambda: NOW)
    app = extender.app()

    async def nodelay(request: web.Request) -> web.Response:
        sock = request.transport.get_extra_info("socket")
        return web.json_response(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

    app.router.add_get("/nodelay", nodelay)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    extender._worker = asyncio.create_task(extender._record_loop())
    port = site._server.sockets[0].getsockname()[1]
    return extender, runner, f"http://127.0.0.1:{port}"


def run(coroutine):
    return asyncio.run(coroutine)


def args_for(obj: dict, nodes: list[str]) -> dict:
    return {"Pod": obj, "Nodes": None, "NodeNames": nodes}


def bound_to(obj: dict, node_name: str) -> dict:
    """``obj`` as the watch shows it once kube-scheduler has bound it."""
    return {**obj, "spec": {**obj["spec"], "nodeName": node_name}}


async def drain(extender: Extender) -> None:
    while not extender._records.empty():
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)


def test_prioritize_gives_the_policys_node_ten_and_the_binding_is_explained() -> None:
    async def scenario() -> None:
        view = view_of([node("n1"), node("n2"), node("n3")], [])
        kube = FakeKube()
        extender, runner, url = await serve(view, Scores({"n1": 0.2, "n2": 0.9, "n3": 0.5}), kube)
        async with ClientSession() as http:
            assert await (await http.get(f"{url}/nodelay")).json() != 0
            answer = await (await http.post(f"{url}/prioritize", json=args_for(pod("a"), ["n1", "n2", "n3"]))).json()
            assert {a["Host"]: a["Score"] for a in answer} == {"n1": 0, "n2": 10, "n3": 3}
            # Assumed at once: the next pod's snapshot counts it on n2.
            assert view.bound_node("ns/a") == "n2"
        extender.bound(bound_to(pod("a"), "n2"))  # kube-scheduler bound it; the watch says so
        await drain(extender)
        assert [e["reason"] for e in kube.events] == ["Scheduled"]
        assert "placed on n2" in kube.events[0]["message"]
        assert extender.metrics.decisions.labels("placement", "applied")._value.get() == 1
        assert extender.own_metrics.request_duration.labels("prioritize")._sum.get() > 0
        await runner.cleanup()
    run(scenario())


def test_a_failing_policy_falls_back_to_the_heuristic_with_a_warning() -> None:
    async def scenario() -> None:
        view = view_of([node("n1"), node("n2")], [pod("x", "n2", cpu="2")])
        kube = FakeKube()
        extender, runner, url = await serve(view, Scores(error=RuntimeError("boom")), kube)
        async with ClientSession() as http:
            answer = await (await http.post(f"{url}/prioritize", json=args_for(pod("a"), ["n1", "n2"]))).json()
            # The heuristic packs: n2 already holds a pod.
            assert {a["Host"]: a["Score"] for a in answer}["n2"] == 10
        extender.bound(bound_to(pod("a"), "n2"))
        await drain(extender)
        assert extender.metrics.fallbacks.labels("placement")._value.get() == 1
        warnings = [e for e in kube.events if e["reason"] == "PolicyFallback"]
        assert warnings and "boom" in warnings[0]["message"] and warnings[0]["type"] == "Warning"
        await runner.cleanup()
    run(scenario())


def test_a_policy_past_its_time_budget_falls_back() -> None:
    async def scenario() -> None:
        view = view_of([node("n1"), node("n2")], [pod("x", "n2", cpu="2")])
        extender, runner, url = await serve(view, Scores({"n1": 1.0}, delay_seconds=0.3), FakeKube(),
                                            policy_budget_seconds=0.05)
        async with ClientSession() as http:
            started = time.perf_counter()
            answer = await (await http.post(f"{url}/prioritize", json=args_for(pod("a"), ["n1", "n2"]))).json()
            assert time.perf_counter() - started < 0.25
        assert {a["Host"]: a["Score"] for a in answer}["n2"] == 10  # the heuristic's, not the policy's n1
        assert extender.metrics.fallbacks.labels("placement")._value.get() == 1
        await runner.cleanup()
    run(scenario())


def test_recommend_mode_gets_equal_scores_and_records_the_shadow_choice() -> None:
    async def scenario() -> None:
        workload = rlw("shadow", mode="Recommend")
        # Nodes of two power classes: where the pod goes changes the estimated power.
        view = view_of([node("n1"), node("n2", cpu="64", memory="256Gi")], [])
        view.apply_workload(ADDED, parse_workload(workload))
        kube = FakeKube()
        extender, runner, url = await serve(view, Scores({"n1": 1.0}), kube)
        obj = pod("shadow-0", owner=workload)
        async with ClientSession() as http:
            answer = await (await http.post(f"{url}/prioritize", json=args_for(obj, ["n1", "n2"]))).json()
            assert len({a["Score"] for a in answer}) == 1
            assert view.bound_node("ns/shadow-0") is None  # not steered, so nothing assumed
        extender.bound(bound_to(obj, "n2"))
        await drain(extender)
        decisions = kube.status["ns/shadow"]["lastDecisions"]
        assert decisions[0]["outcome"] == "Recommended" and decisions[0]["action"] == "bind to n1"
        assert "kube-scheduler placed it on n2" in decisions[0]["reason"] and " W " in decisions[0]["reason"]
        assert any(e["kind"] == "RLWorkload" for e in kube.events)
        assert extender.own_metrics.shadow_watts._sum.get() != 0
        await runner.cleanup()
    run(scenario())


def test_other_schedulers_pods_get_equal_scores() -> None:
    async def scenario() -> None:
        view = view_of([node("n1"), node("n2")], [])
        extender, runner, url = await serve(view, Scores({"n1": 1.0}), FakeKube())
        async with ClientSession() as http:
            other = args_for(pod("d", scheduler="default-scheduler"), ["n1", "n2"])
            answer = await (await http.post(f"{url}/prioritize", json=other)).json()
        assert [a["Score"] for a in answer] == [0, 0]
        await runner.cleanup()
    run(scenario())


def test_a_burst_of_one_workload_is_explained_in_one_event_and_one_status_write() -> None:
    """Each pod gets its own Event; the RLWorkload one Event naming every pod and one status
    write for the whole batch, not one of each per pod."""
    async def scenario() -> None:
        workload = rlw("web")
        view = view_of([node("n1"), node("n2")], [])
        view.apply_workload(ADDED, parse_workload(workload))
        kube = FakeKube()
        extender, runner, url = await serve(view, Scores({"n1": 1.0}), kube)
        pods = [pod(f"web-{i}", owner=workload) for i in range(3)]
        async with ClientSession() as http:
            for obj in pods:
                await http.post(f"{url}/prioritize", json=args_for(obj, ["n1", "n2"]))
        for obj in pods:  # bound faster than the worker writes: one batch
            extender.bound(bound_to(obj, "n1"))
        await drain(extender)
        on_pods = [e for e in kube.events if e["kind"] == "Pod"]
        on_workload = [e for e in kube.events if e["kind"] == "RLWorkload"]
        assert sorted(e["name"] for e in on_pods) == ["web-0", "web-1", "web-2"]
        assert len(on_workload) == 1 and on_workload[0]["reason"] == "Placed"
        assert on_workload[0]["message"].startswith("3 pods: ")
        assert all(f"web-{i} bind to n1" in on_workload[0]["message"] for i in range(3))
        assert kube.status_writes == 1
        assert len(kube.status["ns/web"]["lastDecisions"]) == 3
        await runner.cleanup()
    run(scenario())


def test_a_pod_bound_without_thriftys_scores_only_counts_its_latency() -> None:
    """Placed while the extender was unreachable: no decision to explain, but its wait counts."""
    async def scenario() -> None:
        kube = FakeKube()
        extender, runner, _ = await serve(view_of([node("n1")], []), Scores(), kube)
        extender.clock = lambda: parse_time(STAMP) + 3.0
        extender.bound(bound_to(pod("a"), "n1"))
        await drain(extender)
        assert kube.events == [] and kube.status_writes == 0
        assert extender.metrics.placement_latency._sum.get() == 3.0
        await runner.cleanup()
    run(scenario())


def test_the_informer_reports_each_binding_of_thriftys_pods_once() -> None:
    bound: list[str] = []
    informer = Informer(FakeKube(), view_of([node("n1")], []), namespace="ns",
                        on_bound=lambda p: bound.append(p["metadata"]["name"]))
    informer._replace_pods([pod("listed")])
    for event, obj in [("ADDED", pod("a")), ("ADDED", pod("d", scheduler="default-scheduler")),
                       ("MODIFIED", pod("a", "n1")), ("MODIFIED", pod("a", "n1")),  # kwok's status update
                       ("MODIFIED", pod("d", "n1")), ("ADDED", pod("late", "n1")),  # never seen waiting
                       ("MODIFIED", pod("listed", "n1")), ("ADDED", pod("gone")), ("DELETED", pod("gone"))]:
        informer._apply_pod(event, obj)
    assert bound == ["a", "listed"]


def test_config_is_checked() -> None:
    with pytest.raises(ValueError, match="policy_budget_seconds"):
        ExtenderConfig(policy_budget_seconds=0)


def test_bench_reads_the_extenders_latency_quantiles_from_the_histogram() -> None:
    from prometheus_client import generate_latest

    from thrifty.bench.extender_latency import request_count, request_quantile_seconds

    metrics = Metrics()
    extender = Extender(config=ExtenderConfig(), kube=FakeKube(), view=view_of([], []), history=HISTORY,
                        policy=Scores(), fallback=HeuristicPolicy(), metrics=metrics, status_lock=asyncio.Lock())
    for seconds in [0.0015] * 98 + [0.015, 0.015]:
        extender.own_metrics.request_duration.labels("prioritize").observe(seconds)
    text = generate_latest(metrics.registry).decode()
    assert request_count(text, "prioritize") == 100 and request_count(text, "bind") == 0
    assert 0.001 < request_quantile_seconds(text, "prioritize", 0.5) <= 0.002
    assert 0.01 < request_quantile_seconds(text, "prioritize", 0.99) <= 0.02
    assert math.isnan(request_quantile_seconds(text, "bind", 0.5))
