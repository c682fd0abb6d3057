"""Generate a sample application of RLWorkloads from a real microservice call graph.

Each microservice of one Alibaba call graph (:func:`thrifty.traces.load` of
``traces/alibaba-callgraphs/...``) becomes an RLWorkload; ``USER`` (the outside caller, label
``relay``) does not. The generated objects carry replay annotations (:mod:`thrifty.replay`), so
that ``thrifty replay`` drives them with real traces on a kwok cluster::

    python -m thrifty.appgen --trace traces/alibaba-callgraphs/callgraphs-train.jsonl.gz \\
        --graph-index 3198 --out manifests/samples/app.yaml

How the graph maps to workloads, and why:

* **Names**: ``svc-`` plus the node id, lower-cased, with every run of other characters turned
  into ``-`` (``MS_normal+2.2`` becomes ``svc-normal-2-2``); the original id is kept in the
  ``thrifty.dev/callgraph-node`` annotation.
* **Dependencies**: an edge ``a -> b`` makes ``b`` a dependency of ``a``, weighted by the edge's
  calls per request divided by the graph's largest, so weights lie in (0, 1].
* **Load of stateless services** (``normal``, ``blackhole``): the request rate of the entry
  service is a real arrival series (``--rate``, by default the Azure LLM conversation trace)
  times ``--rate-scale``; every other stateless service gets that rate times its calls per entry
  request, summed over all call paths (``thrifty.dev/replay-rate-scale``). So the whole chain
  follows one real arrival pattern in the proportions the call graph records.
* **Load of stateful services** (``Memcached``, ``database``): Alibaba's caches and databases
  serve many services, so their load is not only this graph's calls. They replay the CPU of real
  VMs (``--usage``, Bitbrains): the busiest VMs that never ran at their provisioned capacity
  (whose real demand is then known), in descending mean CPU.
* **Memory** of every service is a Bitbrains VM's memory series; stateless services take the
  VMs that the stateful ones did not.
* **CPU per request** (the latency model's service time) and the **SLO** come from the node's
  kind: see :data:`KIND_PROFILES`; these are assumptions, written into each object.
* **Sizes**: the entry starts with two replicas, the others with one per two cores of demand;
  the template's requests cover the 90th percentile of the replayed demand (CPU over the initial
  replicas; memory per replica) and are large enough that the SLO can be met at the start
  (:func:`slo_cpu_floor_millicores`); limits leave headroom above them (Burstable QoS), and the
  vertical bounds span what the policy may need.
* **Mode**: Auto, except ``--recommend`` (by default the entry's first callee), which shows what
  Recommend mode records without acting.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from thrifty import replay
from thrifty.traces import CallGraph, ContainerUsage, load

CALLER_LABEL = "relay"
"""Label of the graph's outside caller (``USER``), which is no workload."""
STATEFUL_LABELS = frozenset({"Memcached", "database"})

IMAGE = "registry.k8s.io/pause:3.10"
"""kwok never pulls or runs it; a real cluster would run the pause container."""
CONTAINER = "app"
NAME_PREFIX = "svc-"
NODE_ANNOTATION = "thrifty.dev/callgraph-node"
NAMESPACE = "thrifty-demo"


@dataclass(frozen=True)
class KindProfile:
    """Assumptions for one kind of call-graph node."""

    cpu_seconds_per_request: float
    """CPU time of one call, in core-seconds."""
    latency_p95_milliseconds: int
    energy_weight: float


KIND_PROFILES: dict[str, KindProfile] = {
    # An RPC handler: tens of milliseconds of CPU; users wait on it.
    "normal": KindProfile(cpu_seconds_per_request=0.020, latency_p95_milliseconds=250, energy_weight=0.5),
    "blackhole": KindProfile(cpu_seconds_per_request=0.020, latency_p95_milliseconds=250, energy_weight=0.5),
    # A cache lookup: about a millisecond of CPU, and it must stay fast.
    "Memcached": KindProfile(cpu_seconds_per_request=0.001, latency_p95_milliseconds=20, energy_weight=0.7),
    # A database query: several milliseconds.
    "database": KindProfile(cpu_seconds_per_request=0.008, latency_p95_milliseconds=100, energy_weight=0.7),
}
ENTRY_ENERGY_WEIGHT = 0.3
"""The entry service faces users: it leans towards performance."""

ENTRY_REPLICAS = 2
"""Initial replicas of the entry service: a user-facing service does not start on one pod."""
INITIAL_CPU_PER_REPLICA_MILLICORES = 2000
"""Other services start with as many replicas as keep each under two cores of demand."""
MAX_REPLICAS = 8
CPU_STEP_MILLICORES = 50
MEMORY_STEP_MIB = 64
CPU_BOUNDS_MILLICORES = (50, 4000)
MEMORY_MIN_MIB = 64
CPU_LIMIT_FACTOR = 2.0
"""CPU limit over request: room for bursts (and Burstable QoS, which resizes must keep)."""
DEMAND_PERCENTILE = 90.0


@dataclass(frozen=True)
class Service:
    """One microservice of the call graph, as a workload."""

    node: str
    """The node id in the call graph."""
    label: str
    name: str
    """The RLWorkload's name (DNS-1123)."""
    calls_per_request: float
    """Calls this service receives per request to the entry service, over all call paths."""
    dependencies: tuple[tuple[str, float], ...]
    """(workload name, weight in (0, 1]) of each callee."""
    entry: bool


def workload_name(node: str, taken: set[str]) -> str:
    """``svc-<node id>`` made a DNS-1123 label, unique among ``taken`` (which it joins)."""
    base = re.sub(r"[^a-z0-9]+", "-", node.lower().removeprefix("ms_")).strip("-") or "service"
    base = (NAME_PREFIX + base)[:60].rstrip("-")
    name, n = base, 2
    while name in taken:
        name, n = f"{base}-{n}", n + 1
    taken.add(name)
    return name


def services(graph: CallGraph) -> list[Service]:
    """The graph's microservices in breadth-first order from the entry, with their load shares.

    Raises ValueError for a graph without a caller edge or with a cycle among microservices
    (calls per request would then be unbounded).
    """
    labels = graph.node_labels or ("normal",) * len(graph.nodes)
    callers = {i for i, label in enumerate(labels) if label == CALLER_LABEL}
    edges = [(int(s), int(t), float(w)) for s, t, w in zip(graph.source, graph.target, graph.weight, strict=True)]
    inner = [(s, t, w) for s, t, w in edges if s not in callers and t not in callers and s != t]
    heaviest = max((w for _, _, w in inner), default=1.0) or 1.0

    # Calls per entry request: Kahn's topological order over the microservices.
    calls = np.zeros(len(graph.nodes))
    for s, t, w in edges:
        if s in callers and t not in callers:
            calls[t] += w
    entries = [i for i in range(len(graph.nodes)) if calls[i] > 0]
    if not entries:
        raise ValueError(f"call graph {graph.service}/{graph.graph} has no edge from the caller ({CALLER_LABEL})")
    members = [i for i in range(len(graph.nodes)) if i not in callers]
    indegree = {i: 0 for i in members}
    for _, t, _ in inner:
        indegree[t] += 1
    ready = deque(i for i in members if indegree[i] == 0)
    done = 0
    while ready:
        s = ready.popleft()
        done += 1
        for src, t, w in inner:
            if src == s:
                calls[t] += calls[s] * w
                indegree[t] -= 1
                if indegree[t] == 0:
                    ready.append(t)
    if done != len(members):
        raise ValueError(f"call graph {graph.service}/{graph.graph} has a cycle: calls per request are unbounded")

    # Breadth-first from the entries, so the file reads top-down along the calls.
    order, seen = [], set(entries)
    queue = deque(sorted(entries, key=lambda i: graph.nodes[i]))
    while queue:
        s = queue.popleft()
        order.append(s)
        for t in sorted({t for src, t, _ in inner if src == s} - seen, key=lambda i: graph.nodes[i]):
            seen.add(t)
            queue.append(t)
    order += sorted(set(members) - set(order), key=lambda i: graph.nodes[i])  # unreachable ones

    taken: set[str] = set()
    names = {i: workload_name(graph.nodes[i], taken) for i in order}
    result = []
    for i in order:
        weights: dict[str, float] = {}
        for s, t, w in inner:
            if s == i:
                weights[names[t]] = weights.get(names[t], 0.0) + w / heaviest
        result.append(
            Service(
                node=graph.nodes[i],
                label=labels[i],
                name=names[i],
                calls_per_request=float(calls[i]),
                dependencies=tuple((name, round(min(w, 1.0), 3)) for name, w in weights.items()),
                entry=i in entries,
            )
        )
    return result


def _percentile(values: np.ndarray, q: float) -> float:
    known = values[~np.isnan(values)]
    return float(np.percentile(known, q)) if known.size else math.nan


def busiest_unsaturated(usages: Sequence[ContainerUsage]) -> list[ContainerUsage]:
    """Series with CPU and memory, busiest (mean CPU) first, without those that ran at capacity.

    A VM whose 95th-percentile CPU reaches its provisioned CPU was capped by its size: its real
    demand is unknown, so it is left out.
    """
    usable = []
    for usage in usages:
        cpu, memory = usage.cpu_usage_millicores, usage.memory_usage_bytes
        if np.isnan(cpu).all() or np.isnan(memory).all():
            continue
        if (
            math.isfinite(usage.cpu_capacity_millicores)
            and _percentile(cpu, 95) >= 0.99 * usage.cpu_capacity_millicores
        ):
            continue
        usable.append(usage)
    return sorted(usable, key=lambda u: (-float(np.nanmean(u.cpu_usage_millicores)), u.name))


def _round_up(value: float, step: int) -> int:
    return max(step, int(math.ceil(value / step)) * step)


def slo_cpu_floor_millicores(profile: KindProfile) -> float:
    """Least CPU limit at which serving alone takes half the SLO at the 95th percentile.

    The latency model's service time is exponential with rate μ = limit / CPU per request, so
    its p95 is ln(20)/μ; the other half of the SLO is left for queueing.
    """
    half_slo_seconds = profile.latency_p95_milliseconds / 2000.0
    return math.log(20.0) * 1000.0 * profile.cpu_seconds_per_request / half_slo_seconds


def _resources(
    cpu_demand_millicores: float, replicas: int, cpu_floor_millicores: float, memory: np.ndarray
) -> tuple[dict, dict]:
    """Template resources and vertical bounds for a demand (CPU over all replicas) and memory.

    The CPU request covers the demand share and keeps the limit above ``cpu_floor_millicores``,
    so that the SLO can be met at the initial size.
    """
    cpu_share = max(cpu_demand_millicores / replicas, cpu_floor_millicores / CPU_LIMIT_FACTOR, CPU_BOUNDS_MILLICORES[0])
    cpu_request = _round_up(min(cpu_share, CPU_BOUNDS_MILLICORES[1]), CPU_STEP_MILLICORES)
    cpu_limit = _round_up(cpu_request * CPU_LIMIT_FACTOR, CPU_STEP_MILLICORES)
    memory_mib = memory[~np.isnan(memory)] / 2**20
    memory_request = _round_up(float(np.percentile(memory_mib, DEMAND_PERCENTILE)), MEMORY_STEP_MIB)
    memory_max = _round_up(float(memory_mib.max()) * 1.25, MEMORY_STEP_MIB)
    resources = {
        "requests": {"cpu": f"{cpu_request}m", "memory": f"{memory_request}Mi"},
        "limits": {"cpu": f"{cpu_limit}m", "memory": f"{memory_max}Mi"},
    }
    bounds = {
        "name": CONTAINER,
        "cpu": {"min": f"{CPU_BOUNDS_MILLICORES[0]}m", "max": f"{max(CPU_BOUNDS_MILLICORES[1], cpu_request)}m"},
        "memory": {"min": f"{MEMORY_MIN_MIB}Mi", "max": f"{max(memory_max, memory_request)}Mi"},
    }
    return resources, bounds


def _number(value: float) -> str:
    return f"{value:.6g}"


def build_app(
    graph: CallGraph,
    *,
    rate_ref: str,
    rate: ContainerUsage,
    rate_scale: float,
    usage_path: str,
    usages: Sequence[ContainerUsage],
    namespace: str = NAMESPACE,
    recommend: str | None = None,
) -> list[dict]:
    """A Namespace and one RLWorkload per microservice of ``graph``.

    ``rate_ref``/``rate``: the entry's request-rate series (``PATH#SERIES`` and its data);
    ``usage_path``/``usages``: the VM usage trace whose series give memory, and CPU to stateful
    services. ``recommend``: the workload left in Recommend mode (default: the entry's first
    callee). Raises ValueError when the traces cannot serve the graph.
    """
    members = services(graph)
    by_name = {service.name: service for service in members}
    if recommend is None:
        recommend = members[1].name if len(members) > 1 else members[0].name
    if recommend not in by_name:
        raise ValueError(f"--recommend {recommend!r} is not a workload of this graph: {', '.join(by_name)}")
    arrivals = rate.request_rate_per_second * rate_scale
    if np.isnan(arrivals).all():
        raise ValueError(f"{rate_ref} has no request-rate samples")
    candidates = busiest_unsaturated(usages)
    if len(candidates) < len(members):
        raise ValueError(
            f"{usage_path} has {len(candidates)} usable series with CPU and memory; the graph needs {len(members)}"
        )
    stateful = [s for s in members if s.label in STATEFUL_LABELS]
    stateless = [s for s in members if s.label not in STATEFUL_LABELS]
    # Stateful services take the busiest VMs; the spare ones (more VMs than services) go unused.
    vm_of = {s.name: vm for s, vm in zip(stateful + stateless, candidates, strict=False)}

    objects: list[dict] = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}]
    for service in members:
        profile = KIND_PROFILES.get(service.label, KIND_PROFILES["normal"])
        vm = vm_of[service.name]
        annotations = {
            NODE_ANNOTATION: service.node,
            replay.TRACE_ANNOTATION: f"{usage_path}#{vm.name}",
            replay.CPU_PER_REQUEST_ANNOTATION: _number(profile.cpu_seconds_per_request),
        }
        if service.label in STATEFUL_LABELS:
            cpu_demand = _percentile(vm.cpu_usage_millicores, DEMAND_PERCENTILE)
        else:
            scale = rate_scale * service.calls_per_request
            annotations[replay.RATE_ANNOTATION] = rate_ref
            annotations[replay.RATE_SCALE_ANNOTATION] = _number(scale)
            cpu_demand = (
                1000.0
                * _percentile(rate.request_rate_per_second * scale, DEMAND_PERCENTILE)
                * profile.cpu_seconds_per_request
            )
        replicas = min(
            max(ENTRY_REPLICAS if service.entry else 1, math.ceil(cpu_demand / INITIAL_CPU_PER_REPLICA_MILLICORES)),
            MAX_REPLICAS,
        )
        resources, bounds = _resources(cpu_demand, replicas, slo_cpu_floor_millicores(profile), vm.memory_usage_bytes)
        spec: dict = {
            "template": {
                "metadata": {
                    "labels": {
                        "app.kubernetes.io/name": service.name,
                        "app.kubernetes.io/part-of": graph.service.lower(),
                    }
                },
                "spec": {
                    "schedulerName": "thrifty",
                    # hack/cluster.sh's simulated nodes carry type=kwok and no taints.
                    "nodeSelector": {"type": "kwok"},
                    "containers": [{"name": CONTAINER, "image": IMAGE, "resources": resources}],
                },
            },
            "replicas": {"min": 1, "max": MAX_REPLICAS, "initial": replicas},
            "containers": [bounds],
            "slo": {
                "latencyP95Milliseconds": profile.latency_p95_milliseconds,
                "latencyQuery": ("thrifty_replay_latency_p95_seconds"
                                 f'{{namespace="{namespace}",rlworkload="{service.name}"}}'),
            },
            "objective": {"energyWeight": ENTRY_ENERGY_WEIGHT if service.entry else profile.energy_weight},
            "policy": {"name": "default", "mode": "Recommend" if service.name == recommend else "Auto"},
        }
        if service.dependencies:
            spec["dependencies"] = [{"workload": name, "weight": weight} for name, weight in service.dependencies]
        objects.append(
            {
                "apiVersion": "thrifty.dev/v1alpha1",
                "kind": "RLWorkload",
                "metadata": {"name": service.name, "namespace": namespace, "annotations": annotations},
                "spec": spec,
            }
        )
    return objects


def _series(path: str, name: str | None) -> tuple[str, ContainerUsage]:
    trace = load(path)
    if name is None:
        if len(trace.containers) != 1:
            raise ValueError(f"{path} has {len(trace.containers)} series: name one as {path}#SERIES")
        return path, trace.containers[0]
    for usage in trace.containers:
        if usage.name == name:
            return f"{path}#{name}", usage
    raise ValueError(f"no series {name!r} in {path}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m thrifty.appgen", description=__doc__.splitlines()[0])
    parser.add_argument("--trace", required=True, help="call-graph trace (traces/alibaba-callgraphs/...)")
    parser.add_argument("--graph-index", type=int, required=True, help="index of the graph in that trace (0-based)")
    parser.add_argument("--out", required=True, help="YAML file to write ('-': stdout)")
    parser.add_argument("--namespace", default=NAMESPACE, help="namespace of the workloads (default %(default)s)")
    parser.add_argument(
        "--rate",
        default="traces/azure-llm/conv-train.csv.gz",
        help="PATH[#SERIES] of the entry service's request rate (default %(default)s)",
    )
    parser.add_argument(
        "--rate-scale",
        type=float,
        default=10.0,
        help="multiplier of that rate (default %(default)s: the LLM service's arrivals as a web front end's)",
    )
    parser.add_argument(
        "--usage",
        default="traces/bitbrains-rnd/vms-train.tar.xz",
        help="VM usage trace for memory, and CPU of stateful services (default %(default)s)",
    )
    parser.add_argument(
        "--recommend", help="the workload to leave in Recommend mode (default: the entry's first callee)"
    )
    args = parser.parse_args(argv)

    graphs = load(args.trace).call_graphs
    if not 0 <= args.graph_index < len(graphs):
        parser.error(f"--graph-index must be in 0..{len(graphs) - 1} for {args.trace}, got {args.graph_index}")
    if not (math.isfinite(args.rate_scale) and args.rate_scale > 0):
        parser.error(f"--rate-scale must be a positive number, got {args.rate_scale}")
    graph = graphs[args.graph_index]
    path, _, series = args.rate.partition("#")
    try:
        rate_ref, rate = _series(path, series or None)
        objects = build_app(
            graph,
            rate_ref=rate_ref,
            rate=rate,
            rate_scale=args.rate_scale,
            usage_path=args.usage,
            usages=load(args.usage).containers,
            namespace=args.namespace,
            recommend=args.recommend,
        )
    except ValueError as err:
        parser.error(str(err))
    text = render(objects, header=_header(parser, args, graph))
    if args.out == "-":
        sys.stdout.write(text)
    else:
        Path(args.out).write_text(text)
    return 0


def _header(parser: argparse.ArgumentParser, args: argparse.Namespace, graph: CallGraph) -> str:
    """Comment lines naming the command that regenerates the file, and what it holds."""
    command = f"python -m thrifty.appgen --trace {args.trace} --graph-index {args.graph_index} --out {args.out}"
    for key in ("namespace", "rate", "rate_scale", "usage", "recommend"):
        if getattr(args, key) != parser.get_default(key):
            command += f" --{key.replace('_', '-')} {getattr(args, key)}"
    return (
        f"# Generated by `{command}` (from the repository root): do not edit by hand.\n"
        f"# Call graph {graph.graph} of Alibaba service {graph.service} ({graph.occurrences} traced requests had\n"
        f"# this shape), one RLWorkload per microservice. How the graph and the traces map to these\n"
        f"# objects: operator/thrifty/appgen.py; the replay annotations: operator/thrifty/replay.py.\n"
    )


def render(objects: Sequence[dict], header: str = "") -> str:
    """The objects as one multi-document YAML text."""
    import yaml

    return header + "".join("---\n" + yaml.safe_dump(obj, sort_keys=False, default_flow_style=False) for obj in objects)


if __name__ == "__main__":
    sys.exit(main())
