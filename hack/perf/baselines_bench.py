#!/usr/bin/env python3
"""The vectorised autoscaler, VPA and descheduler rules against their per-pod references.

Records the snapshots of one loaded-regime run (held-out traces, ``--nodes`` nodes, ``--steps``
steps, ``k8s-stack`` acting), then feeds the same snapshots to fresh instances of each rule, the
vectorised one (:mod:`thrifty.baselines`) and its one-pod-at-a-time reference
(:mod:`thrifty.baselines.reference`), in the same process, and prints the time of each and the
ratio::

    vpa_size_reference: 812.3 ms
    vpa_size_vectorised: 201.0 ms
    vpa_size_speedup: 4.04 x

Process CPU time, best of ``--repeat`` passes over the snapshots, so that other jobs on the
machine weigh less. Not a test: the figures depend on the machine. That both give the same
decisions is checked by ``tests/unit/test_baselines_vectorised.py``.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

from thrifty.baselines.cluster_autoscaler import ClusterAutoscaler  # noqa: E402
from thrifty.baselines.consolidation import HighNodeUtilization, KarpenterConsolidation  # noqa: E402
from thrifty.baselines.hpa import HorizontalPodAutoscaler  # noqa: E402
from thrifty.baselines.reference import (  # noqa: E402
    ReferenceClusterAutoscaler,
    ReferenceHighNodeUtilization,
    ReferenceHpa,
    ReferenceKarpenter,
    ReferenceVpa,
)
from thrifty.baselines.vpa import MEMORY, VpaConfig, VpaRecommender  # noqa: E402
from thrifty.bench.policies import parse_policy  # noqa: E402
from thrifty.bench.runner import KubernetesHarness  # noqa: E402
from thrifty.bench.scenarios import POD_STREAM, SCENARIO_PARTS, ScenarioSpec, load_traces, shipped_slices  # noqa: E402
from thrifty.sim import Simulator  # noqa: E402
from thrifty.snapshot import ClusterSnapshot  # noqa: E402


def record(nodes: int, steps: int, seed: int) -> list[ClusterSnapshot]:
    traces, _ = load_traces(shipped_slices("heldout"), split="heldout", parts=SCENARIO_PARTS + (POD_STREAM,))
    scenario = ScenarioSpec(n_nodes=nodes, seed=seed, regime="loaded").build(traces, steps)
    built = parse_policy("k8s-stack").build(seed)
    simulator = Simulator(scenario, seed=seed)
    harness = KubernetesHarness(simulator, placement_policy=built.placement, sizing_policy=built.sizing,
                                autoscaler=built.autoscaler, descheduler=built.descheduler)
    snapshots = []
    for _ in range(steps):
        snapshots.append(simulator.snapshot())
        harness.step()
    return snapshots


def cpu_seconds(make: Callable[[], Any], call: str, snapshots: list[ClusterSnapshot], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        rule = make()
        method = getattr(rule, call)
        started = time.process_time()
        for snapshot in snapshots:
            method(snapshot)
        best = min(best, time.process_time() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, default=128)
    parser.add_argument("--steps", type=int, default=120)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    snapshots = record(args.nodes, args.steps, args.seed)
    pods = sum(len(s.pods) for s in snapshots) / len(snapshots)
    print(f"# {args.nodes} nodes, {args.steps} snapshots of a loaded run, {pods:.0f} pods on average")
    memory_only = VpaConfig(controlled_resources=(MEMORY,))
    rules: list[tuple[str, str, Callable[[], Any], Callable[[], Any]]] = [
        ("vpa_size", "size", VpaRecommender, ReferenceVpa),
        ("vpa_memory_size", "size", lambda: VpaRecommender(memory_only), lambda: ReferenceVpa(memory_only)),
        ("hpa_size", "size", HorizontalPodAutoscaler, ReferenceHpa),
        ("cluster_autoscaler_plan", "plan", ClusterAutoscaler, ReferenceClusterAutoscaler),
        ("karpenter_plan", "plan", KarpenterConsolidation, ReferenceKarpenter),
        ("descheduler_hnu_plan", "plan", lambda: HighNodeUtilization(interval_seconds=0.0),
         lambda: ReferenceHighNodeUtilization(interval_seconds=0.0)),
    ]
    total_reference = total_vectorised = 0.0
    for name, call, vectorised, reference in rules:
        old = cpu_seconds(reference, call, snapshots, args.repeat)
        new = cpu_seconds(vectorised, call, snapshots, args.repeat)
        total_reference += old
        total_vectorised += new
        print(f"{name}_reference: {1000 * old:.1f} ms")
        print(f"{name}_vectorised: {1000 * new:.1f} ms")
        print(f"{name}_speedup: {old / new:.2f} x")
    print(f"all_rules_speedup: {total_reference / total_vectorised:.2f} x")


if __name__ == "__main__":
    main()
