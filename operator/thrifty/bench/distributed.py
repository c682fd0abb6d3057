"""``thrifty bench --address``: a benchmark's runs as tasks on an existing Ray cluster.

One task of one CPU per (scenario, policy) run. Each scenario goes into Ray's object store once
and every policy's task reads it from there; each task builds its policy and the scenario's
strict bound itself (what a local run shares between policies is recomputed, to the same values:
the simulator and the bound are deterministic for a seed). Results come back in the order they
were asked for, so ``results.csv`` lists the runs as a local run does.

The cluster's workers need Thrifty with the ``bench`` extra, the version the driver runs (the
training image in ``manifests/training/`` has it).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from thrifty.bench.policies import PolicySpec
from thrifty.bench.runner import RunResult
from thrifty.bench.scenarios import ScenarioSpec
from thrifty.sim import Scenario


def _run(scenario: Scenario, spec: ScenarioSpec, policy: PolicySpec, steps: int) -> RunResult:
    from thrifty.bench.runner import run_named_policy

    return run_named_policy(scenario, spec, policy, steps)


def run_on_cluster(address: str, scenarios: Sequence[tuple[ScenarioSpec, Scenario]],
                   policies: Sequence[PolicySpec], steps: int) -> list[RunResult]:
    """Every policy on every scenario, as Ray tasks on the cluster at ``address``; progress on
    standard error. A task's error (a policy that cannot load, say) is raised here as its own
    type (Ray's task errors are instances of their cause)."""
    import ray

    ray.init(address=address, log_to_driver=False)
    try:
        task = ray.remote(num_cpus=1)(_run)
        refs = []
        for spec, scenario in scenarios:
            shared = ray.put(scenario)
            refs += [task.remote(shared, spec, policy, steps) for policy in policies]
        waiting, done = list(refs), 0
        while waiting:
            finished, waiting = ray.wait(waiting, num_returns=1)
            done += len(finished)
            print(f"\rthrifty bench: {done}/{len(refs)} runs done on {address}", end="", file=sys.stderr)
        print(file=sys.stderr)
        return ray.get(refs)
    finally:
        ray.shutdown()
