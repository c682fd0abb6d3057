#!/usr/bin/env python3
"""Simulator performance: one step and one snapshot of a 1,000-node, 10,000-pod cluster.

Prints ``name: value unit`` lines, medians over repeated calls after a warm-up: wall-clock
time, and the process's CPU time, which stays meaningful when other jobs share the machine::

    sim_step_1000_nodes_10000_pods: 2.1 ms
    sim_step_1000_nodes_10000_pods_cpu_time: 2.0 ms
    sim_snapshot_1000_nodes_10000_pods: 4.6 ms
    sim_snapshot_1000_nodes_10000_pods_cpu_time: 4.5 ms

The cluster is synthetic, so the benchmark needs no trace files: 500 workloads of 20 replicas in
100 applications of 5 services each calling the next, with random-walk request rates, on nodes of
three sizes, every pod bound (spread round-robin) before timing. Single-threaded BLAS is forced
so that the figure measures this code, not the machine's spare cores.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from thrifty.energy import power_class_for_cpu  # noqa: E402
from thrifty.sim import Dependencies, Scenario, ScenarioNodes, Simulator, WorkloadSpec  # noqa: E402

GIB = 2**30


def synthetic_scenario(n_nodes: int, n_workloads: int, replicas: int, horizon_steps: int, seed: int) -> Scenario:
    """A cluster big enough to hold every pod, with dependency chains inside applications."""
    rng = np.random.default_rng(seed)
    cpu = rng.choice([32_000.0, 64_000.0, 96_000.0], size=n_nodes)
    nodes = ScenarioNodes(
        names=tuple(f"node-{i:04d}" for i in range(n_nodes)),
        cpu_capacity_millicores=cpu,
        memory_capacity_bytes=cpu / 1000 * 4 * GIB,
        power_class=tuple(power_class_for_cpu(c) for c in cpu),
    )
    workloads = []
    for w in range(n_workloads):
        walk = np.exp(np.cumsum(rng.normal(0, 0.05, horizon_steps)))
        rate = 20.0 * walk / walk.mean()
        workloads.append(
            WorkloadSpec(
                name=f"app-{w // 5}/svc-{w % 5}",
                request_rate_per_second=rate,
                cpu_per_request_millicore_seconds=float(rng.uniform(5, 40)),
                cpu_baseline_millicores=np.full(horizon_steps, 30.0),
                memory_per_pod_bytes=np.full(horizon_steps, 256 * 2**20),
                cpu_request_millicores=200.0,
                cpu_limit_millicores=400.0,
                memory_request_bytes=512 * 2**20,
                memory_limit_bytes=512 * 2**20,
                replicas=replicas,
                replicas_max=replicas * 2,
                slo_latency_p95_seconds=0.2,
            )
        )
    source = np.array([w for w in range(n_workloads) if w % 5 != 4], dtype=np.int64)
    dependencies = Dependencies(
        source=source,
        target=source + 1,
        calls_per_request=np.ones(len(source)),
        bytes_per_call=np.full(len(source), 4096.0),
        weight=np.ones(len(source)),
    )
    return Scenario(nodes=nodes, workloads=tuple(workloads), dependencies=dependencies)


def spread(sim: Simulator) -> None:
    """Bind every Pending pod, round-robin over the nodes."""
    n_nodes = len(sim.node_names)
    for i, pod in enumerate(sim.pending_pods()):
        for attempt in range(n_nodes):
            if sim.bind(pod, (i + attempt) % n_nodes):
                break


def median_milliseconds(call, repeats: int) -> tuple[float, float]:
    """Median wall-clock and median CPU time of ``repeats`` calls, in milliseconds."""
    wall, cpu = [], []
    for _ in range(repeats):
        start_wall, start_cpu = time.perf_counter(), time.process_time()
        call()
        wall.append((time.perf_counter() - start_wall) * 1000)
        cpu.append((time.process_time() - start_cpu) * 1000)
    return statistics.median(wall), statistics.median(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--pods", type=int, default=10_000)
    parser.add_argument("--steps", type=int, default=60, help="timed steps (after 10 warm-up steps)")
    parser.add_argument("--snapshots", type=int, default=20, help="timed snapshots")
    args = parser.parse_args()
    replicas = 20
    scenario = synthetic_scenario(args.nodes, args.pods // replicas, replicas, horizon_steps=1440, seed=0)
    sim = Simulator(scenario, seed=0)
    spread(sim)
    for _ in range(10):
        sim.step()
    label = f"{args.nodes}_nodes_{args.pods}_pods"
    for name, call, repeats in (("step", sim.step, args.steps), ("snapshot", sim.snapshot, args.snapshots)):
        wall, cpu = median_milliseconds(call, repeats)
        print(f"sim_{name}_{label}: {wall:.2f} ms")
        print(f"sim_{name}_{label}_cpu_time: {cpu:.2f} ms")


if __name__ == "__main__":
    main()
