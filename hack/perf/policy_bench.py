#!/usr/bin/env python3
"""Serving the trained policy: placement latency over 1,000 nodes, and the operator's memory.

Prints ``name: value unit`` lines::

    policy_placement_1000_nodes_p50: 0.9 ms
    policy_placement_1000_nodes_p99: 1.4 ms
    policy_placement_1000_nodes_cold_p99: 3.0 ms    (first pod of a new observation)
    heuristic_placement_1000_nodes_p99: 0.3 ms      (the baseline, same snapshot, same run)
    policy_placement_p99_vs_heuristic: 4.1 x
    operator_rss_serving_policy: 120.0 MB
    python_numpy_rss: 30.0 MB                        (the baseline: python with numpy only)
    operator_rss_vs_python_numpy: 4.0 x

A placement decision is what the operator does per Pending pod: feature rows for every node,
the network's scores, and the safety pipeline's feasible argmax. The operator places the
Pending pods of one observation one after another, and the pods' own feature rows (usage
statistics of the pod and its siblings) are kept between them
(:class:`thrifty.features.PodFeatureCache`): the p50 and p99 are of those decisions. The
``cold`` figure is the first decision of a new observation, which computes them.

The memory figure comes from a fresh process that imports the operator's modules, loads the artefact and places pods; it
fails if ray or torch got imported along the way.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[2]

_SERVE = """
import sys, numpy as np
from thrifty import handlers  # the operator's modules: kopf, kubernetes client, metrics
from thrifty.policy.numpy_policy import NumpyPolicy
from thrifty.safety import choose_node
sys.path.insert(0, {perf!r})
from policy_bench import cluster_snapshot
policy = NumpyPolicy.load({policy!r})
snapshot = cluster_snapshot(200)
for pod in range(20):
    choose_node(snapshot, pod, policy.score_nodes(snapshot, pod))
assert not {{"ray", "torch"}} & set(sys.modules), "ray or torch was imported"
print(int(open("/proc/self/status").read().split("VmRSS:")[1].split()[0]))
"""

_BASELINE = """
import numpy
print(int(open("/proc/self/status").read().split("VmRSS:")[1].split()[0]))
"""


def cluster_snapshot(n_nodes: int):
    """A snapshot of a trace-built cluster of ``n_nodes``, its initial pods still Pending."""
    from thrifty.config import ScenarioConfig, SimulatorConfig
    from thrifty.datasets import load_split
    from thrifty.sim import Simulator, build_scenario

    scenario = build_scenario(load_split("heldout"), config=ScenarioConfig(n_nodes=n_nodes, n_applications=8), seed=0)
    simulator = Simulator(scenario, config=SimulatorConfig(), seed=0)
    simulator.reset()
    return simulator.snapshot()


def _latencies(policy, snapshot, repeats: int, fresh=None) -> np.ndarray:
    """Milliseconds per decision, cycling through the Pending pods; ``fresh()``, when given,
    makes a new policy object (empty caches) for every decision."""
    from thrifty.safety import choose_node

    pods = np.flatnonzero(snapshot.pods.node_index < 0)
    seconds = []
    for i in range(repeats):
        pod = int(pods[i % len(pods)])
        deciding = policy if fresh is None else fresh()
        started = time.perf_counter()
        choose_node(snapshot, pod, deciding.score_nodes(snapshot, pod))
        seconds.append(time.perf_counter() - started)
    return np.asarray(seconds) * 1000.0


def _rss_kib(code: str) -> int:
    env = dict(os.environ, PYTHONPATH=str(REPO / "operator"))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return int(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policy", default=str(REPO / "policies" / "default"), help="artefact directory")
    parser.add_argument("--repeats", type=int, default=300, help="placement decisions timed")
    args = parser.parse_args()

    from thrifty.policy.heuristic import HeuristicPolicy
    from thrifty.policy.numpy_policy import NumpyPolicy

    policy = NumpyPolicy.load(args.policy)
    snapshot = cluster_snapshot(1000)
    _latencies(policy, snapshot, 20)  # warm-up
    served = _latencies(policy, snapshot, args.repeats)
    cold = _latencies(policy, snapshot, args.repeats, fresh=lambda: NumpyPolicy(policy.artefact))
    heuristic = _latencies(HeuristicPolicy(), snapshot, args.repeats)
    print(f"policy_placement_1000_nodes_p50: {np.percentile(served, 50):.2f} ms")
    print(f"policy_placement_1000_nodes_p99: {np.percentile(served, 99):.2f} ms")
    print(f"policy_placement_1000_nodes_cold_p99: {np.percentile(cold, 99):.2f} ms")
    print(f"heuristic_placement_1000_nodes_p99: {np.percentile(heuristic, 99):.2f} ms")
    print(f"policy_placement_p99_vs_heuristic: {np.percentile(served, 99) / np.percentile(heuristic, 99):.1f} x")
    serving = _rss_kib(_SERVE.format(perf=str(Path(__file__).parent), policy=args.policy)) / 1024
    baseline = _rss_kib(_BASELINE) / 1024
    print(f"operator_rss_serving_policy: {serving:.1f} MB")
    print(f"python_numpy_rss: {baseline:.1f} MB")
    print(f"operator_rss_vs_python_numpy: {serving / baseline:.1f} x")


if __name__ == "__main__":
    main()
