"""Throughput of container feature extraction, printed as ``name: value unit`` lines.

    .venv/bin/python hack/perf/features_bench.py [--containers N] [--window W] [--repeats R]

Measures :func:`thrifty.features.container_features` on 10,000 containers with a 288-sample
window (one day at 5 minutes) and on a single container, taking the best of a few runs so that
other work on the machine inflates the figure as little as possible. The synthetic windows mix
what real ones hold: a daily or hourly cycle, noise, rare spikes, a memory leak, and 1 % of
samples missing in a third of the containers (which exercises the gap-aware path).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

from thrifty.features import container_features

STEP_SECONDS = 300.0


def synthetic_windows(containers: int, window: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(containers, window) CPU millicores and memory bytes with cycles, noise, spikes and gaps."""
    rng = np.random.default_rng(seed)
    steps = np.arange(window)
    period = rng.choice([12.0, 24.0, 96.0, 288.0], size=(containers, 1))
    level = rng.uniform(50.0, 2000.0, size=(containers, 1))
    cycle = 1.0 + 0.5 * np.sin(2 * np.pi * steps / period + rng.uniform(0, 2 * np.pi, (containers, 1)))
    cpu = level * cycle * rng.lognormal(0.0, 0.2, (containers, window))
    cpu += np.where(rng.random((containers, window)) < 0.01, 5.0 * level, 0.0)
    memory = rng.uniform(1e8, 4e9, (containers, 1)) * (1.0 + 1e-3 * steps) + rng.normal(
        0, 1e6, (containers, window)
    )
    gappy = (rng.random((containers, 1)) < 1 / 3) & (rng.random((containers, window)) < 0.01)
    cpu[gappy] = np.nan
    memory[gappy] = np.nan
    return cpu, memory


def best_seconds(run: Callable[[], object], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def extract(cpu: np.ndarray, memory: np.ndarray) -> np.ndarray:
    count = cpu.shape[0]
    return container_features(
        cpu,
        memory,
        STEP_SECONDS,
        cpu_request_millicores=np.full(count, 1000.0),
        cpu_limit_millicores=np.full(count, np.inf),
        memory_request_bytes=np.full(count, 2e9),
        memory_limit_bytes=np.full(count, 4e9),
        throttled_periods_total=np.zeros(count),
        oom_kills_total=np.zeros(count),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--containers", type=int, default=10_000)
    parser.add_argument("--window", type=int, default=288)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    cpu, memory = synthetic_windows(args.containers, args.window)
    many = best_seconds(lambda: extract(cpu, memory), args.repeats)
    one = best_seconds(lambda: extract(cpu[:1], memory[:1]), 20 * args.repeats)
    print(f"feature_extraction_throughput: {args.containers / many:.0f} containers/s")
    print(f"feature_extraction_single_container_latency: {one * 1000:.3f} ms")


if __name__ == "__main__":
    main()
