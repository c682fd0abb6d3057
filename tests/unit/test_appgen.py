"""The sample-app generator (thrifty.appgen) on a tiny call graph, and the committed sample."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from thrifty import appgen, replay
from thrifty.observe import cpu_millicores, memory_bytes
from thrifty.traces import CallGraph, ContainerUsage

REPO = Path(__file__).resolve().parents[2]
DNS_1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
MI = 2**20

#   USER -> MS_normal+1.1 (front) -4-> MS_Memcached.1
#                         \-2-> MS_normal+2.1_func1 -1-> MS_Memcached.1
NODES = ("USER", "MS_normal+1.1", "MS_Memcached.1", "MS_normal+2.1_func1")
LABELS = ("relay", "normal", "Memcached", "normal")


def _graph(edges: list[tuple[int, int, float]], nodes=NODES, labels=LABELS) -> CallGraph:
    return CallGraph(
        service="S_1",
        nodes=nodes,
        source=np.array([s for s, _, _ in edges]),
        target=np.array([t for _, t, _ in edges]),
        weight=np.array([w for _, _, w in edges], dtype=float),
        rpc_type=("rpc",) * len(edges),
        occurrences=7,
        node_labels=labels,
        graph="graph1",
    )


GRAPH = _graph([(0, 1, 1.0), (1, 2, 4.0), (1, 3, 2.0), (3, 2, 1.0)])


def _vm(name: str, cpu: float, memory_mib: float, capacity: float = 4000.0) -> ContainerUsage:
    n = 20
    wave = 1.0 + 0.5 * np.sin(np.arange(n))
    return ContainerUsage(
        name=name,
        step_seconds=300.0,
        start_seconds=0.0,
        cpu_usage_millicores=cpu * wave,
        memory_usage_bytes=memory_mib * MI * wave,
        request_rate_per_second=np.full(n, np.nan),
        cpu_capacity_millicores=capacity,
    )


VMS = (_vm("busy", 1000, 512), _vm("idle", 10, 128), _vm("mid", 300, 256), _vm("capped", 3990, 900, capacity=4000))
RATE = ContainerUsage(
    name="arrivals",
    step_seconds=10.0,
    start_seconds=0.0,
    cpu_usage_millicores=np.full(5, np.nan),
    memory_usage_bytes=np.full(5, np.nan),
    request_rate_per_second=np.array([1.0, 2.0, 3.0, 4.0, 5.0]),
)


def _app(**kwargs) -> list[dict]:
    args = dict(rate_ref="rate.csv", rate=RATE, rate_scale=10.0, usage_path="vms.tar.xz", usages=VMS, namespace="ns")
    args.update(kwargs)
    return appgen.build_app(GRAPH, **args)


def test_services_in_call_order_with_calls_per_request_and_weights():
    front, cache, back = appgen.services(GRAPH)
    assert [s.name for s in (front, cache, back)] == ["svc-normal-1-1", "svc-memcached-1", "svc-normal-2-1-func1"]
    assert front.entry and not cache.entry and not back.entry
    # Calls per entry request over all paths: the cache gets 4 directly and 2 x 1 through back.
    assert (front.calls_per_request, back.calls_per_request, cache.calls_per_request) == (1.0, 2.0, 6.0)
    # Weights: calls per request over the heaviest edge (4), the caller excluded.
    assert front.dependencies == (("svc-memcached-1", 1.0), ("svc-normal-2-1-func1", 0.5))
    assert back.dependencies == (("svc-memcached-1", 0.25),)
    assert cache.dependencies == ()


def test_graphs_that_cannot_become_an_app():
    with pytest.raises(ValueError, match="no edge from the caller"):
        appgen.services(_graph([(1, 2, 1.0)]))
    with pytest.raises(ValueError, match="cycle"):
        appgen.services(_graph([(0, 1, 1.0), (1, 3, 1.0), (3, 1, 1.0)]))


def test_workload_names_are_dns_labels_and_unique():
    taken: set[str] = set()
    names = [appgen.workload_name(node, taken) for node in ("MS_normal+2.1", "MS_Normal_2_1", "USER", "+++")]
    assert names == ["svc-normal-2-1", "svc-normal-2-1-2", "svc-user", "svc-service"]
    assert all(DNS_1123.match(n) and len(n) <= 63 for n in names)


def test_busiest_unsaturated_skips_capped_and_empty_series():
    empty = ContainerUsage("empty", 300.0, 0.0, np.full(3, np.nan), np.full(3, np.nan), np.full(3, np.nan))
    assert [u.name for u in appgen.busiest_unsaturated(VMS + (empty,))] == ["busy", "mid", "idle"]


def test_app_objects():
    namespace, *workloads = _app()
    assert namespace == {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns"}}
    by_name = {w["metadata"]["name"]: w for w in workloads}
    assert list(by_name) == ["svc-normal-1-1", "svc-memcached-1", "svc-normal-2-1-func1"]
    for name, workload in by_name.items():
        spec, annotations = workload["spec"], workload["metadata"]["annotations"]
        assert DNS_1123.match(name) and workload["metadata"]["namespace"] == "ns"
        pod = spec["template"]["spec"]
        assert pod["schedulerName"] == "thrifty" and pod["nodeSelector"] == {"type": "kwok"}
        [container] = pod["containers"]
        [bounds] = spec["containers"]
        assert bounds["name"] == container["name"]
        cpu, memory = container["resources"]["requests"]["cpu"], container["resources"]["requests"]["memory"]
        assert cpu_millicores(bounds["cpu"]["min"]) <= cpu_millicores(cpu) <= cpu_millicores(bounds["cpu"]["max"])
        assert memory_bytes(bounds["memory"]["min"]) <= memory_bytes(memory) <= memory_bytes(bounds["memory"]["max"])
        assert cpu_millicores(container["resources"]["limits"]["cpu"]) > cpu_millicores(cpu)  # Burstable
        query = spec["slo"]["latencyQuery"]
        assert query == f'thrifty_replay_latency_p95_seconds{{namespace="ns",rlworkload="{name}"}}'
        assert 0.0 <= spec["objective"]["energyWeight"] <= 1.0
        # The replay annotations are what thrifty replay accepts.
        assert replay.parse_replay_spec(f"ns/{name}", annotations) is not None
        for dependency in spec.get("dependencies", []):
            assert dependency["workload"] in by_name and 0.0 < dependency["weight"] <= 1.0
    # Stateless services follow the arrival series, scaled by their calls per entry request.
    front, back = (
        by_name["svc-normal-1-1"]["metadata"]["annotations"],
        by_name["svc-normal-2-1-func1"]["metadata"]["annotations"],
    )
    assert front[replay.RATE_ANNOTATION] == "rate.csv" and front[replay.RATE_SCALE_ANNOTATION] == "10"
    assert back[replay.RATE_SCALE_ANNOTATION] == "20"
    # The stateful cache replays the busiest VM's CPU, with no rate; the others take the next VMs.
    cache = by_name["svc-memcached-1"]["metadata"]["annotations"]
    assert cache[replay.TRACE_ANNOTATION] == "vms.tar.xz#busy" and replay.RATE_ANNOTATION not in cache
    assert front[replay.TRACE_ANNOTATION] == "vms.tar.xz#mid"
    # The entry starts with two replicas; Recommend mode on the entry's first callee only.
    assert by_name["svc-normal-1-1"]["spec"]["replicas"]["initial"] == appgen.ENTRY_REPLICAS
    modes = {name: w["spec"]["policy"]["mode"] for name, w in by_name.items()}
    assert modes == {"svc-normal-1-1": "Auto", "svc-memcached-1": "Recommend", "svc-normal-2-1-func1": "Auto"}


def test_app_errors_name_the_problem():
    with pytest.raises(ValueError, match="--recommend 'nope' is not a workload"):
        _app(recommend="nope")
    with pytest.raises(ValueError, match="has 1 usable series"):
        _app(usages=VMS[:1])


def test_render_is_yaml_of_the_objects():
    objects = _app()
    assert list(yaml.safe_load_all(appgen.render(objects, header="# hi\n"))) == objects


def test_the_committed_sample_is_what_the_generator_writes(capsys, monkeypatch):
    """manifests/samples/app.yaml is regenerated by the command in its first line."""
    committed = (REPO / "manifests/samples/app.yaml").read_text()
    command = re.match(r"# Generated by `python -m thrifty.appgen (.*?)` ", committed).group(1).split()
    command[command.index("--out") + 1] = "-"
    monkeypatch.chdir(REPO)  # the paths in the command and in the annotations are relative to the root
    assert appgen.main(command) == 0
    written = capsys.readouterr().out
    assert written.splitlines()[1:] == committed.splitlines()[1:]
