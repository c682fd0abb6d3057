"""The simulator's migration action: eviction through the PDB, restart, lost warm state, churn."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tests.unit.test_sim import QUIET, bind_all, scenario, workload
from thrifty.config import MigrationConfig, SimulatorConfig
from thrifty.energy import DEFAULT_PROFILES
from thrifty.sim import BackgroundPods, Simulator, WorkloadSpec


def two_nodes(*workloads: WorkloadSpec, config: SimulatorConfig = QUIET) -> Simulator:
    return Simulator(scenario(*workloads, node_cpu=(4000.0, 4000.0)), config=config)


def test_migrate_moves_the_pod_with_a_restart_and_two_churn():
    sim = two_nodes(workload(replicas=2))
    first, second = sim.workload_pods(0)
    assert sim.bind(first, 0) and sim.bind(second, 1)
    assert int(sim.step().workload_running_replicas[0]) == 2
    replacement = sim.migrate(second, 0)
    assert replacement is not None and replacement not in (first, second)
    assert set(sim.workload_pods(0)) == {first, replacement}
    assert sim.snapshot().nodes.cpu_requested_millicores.tolist() == [1000.0, 0.0]
    result = sim.step()
    # 30 s of start-up, rounded up to the 60 s step: the replica is out for one step.
    assert int(result.workload_running_replicas[0]) == 1
    assert int(result.workload_churn[0]) == 2 and int(result.workload_voluntary_evictions[0]) == 1
    assert result.evictions == 0  # node-pressure evictions stay their own count
    later = sim.step()
    assert int(later.workload_running_replicas[0]) == 2 and int(later.workload_voluntary_evictions[0]) == 0


def test_migrate_without_a_node_leaves_the_replacement_pending():
    sim = two_nodes(workload(replicas=1))
    bind_all(sim)
    replacement = sim.migrate(sim.workload_pods(0)[0])
    assert sim.pending_pods() == (replacement,)


def test_a_replacement_that_does_not_fit_stays_pending():
    sim = two_nodes(workload(replicas=2, cpu_request=3000.0))
    first, second = sim.workload_pods(0)
    assert sim.bind(first, 0) and sim.bind(second, 1)
    replacement = sim.migrate(second, 0)
    assert sim.pending_pods() == (replacement,)


def test_lost_warm_state_raises_latency_for_the_warm_up_only():
    # 2 replicas at 500m, 10 ms per request: the warm-up halves the replacement's service rate.
    def latencies(fraction: float) -> list[float]:
        config = dataclasses.replace(QUIET, migration=MigrationConfig(
            startup_seconds=0.0, warmup_seconds=120.0, warmup_service_rate_fraction=fraction))
        sim = two_nodes(workload(replicas=2, rate=[60.0] * 8, cpu_limit=500.0), config=config)
        first, second = sim.workload_pods(0)
        assert sim.bind(first, 0) and sim.bind(second, 1)
        sim.step()
        assert sim.migrate(second, 0) is not None
        return [float(sim.step().workload_latency_p95_seconds[0]) for _ in range(3)]

    cold, warm = latencies(0.5), latencies(1.0)
    assert cold[0] > warm[0] and cold[1] > warm[1]  # 120 s of warm-up: two steps
    assert cold[2] == pytest.approx(warm[2])


@pytest.mark.parametrize(("max_unavailable", "replicas", "allowed"), [
    pytest.param(0, 2, 0, id="maxUnavailable-0-blocks-everything"),
    pytest.param(1, 2, 1, id="one-then-wait-for-the-replacement"),
    pytest.param(2, 3, 2, id="two-of-three"),
    pytest.param(None, 2, 2, id="no-pdb"),
])
def test_the_pdb_refuses_evictions_beyond_max_unavailable(max_unavailable, replicas, allowed):
    spec = dataclasses.replace(workload(replicas=replicas), pdb_max_unavailable=max_unavailable)
    sim = two_nodes(spec)
    bind_all(sim)
    sim.step()
    pods = sim.workload_pods(0)
    outcomes = [sim.migrate(pod, 1) for pod in pods]
    assert sum(o is not None for o in outcomes) == allowed
    refused = [p for p, o in zip(pods, outcomes, strict=True) if o is None]
    assert set(refused) <= set(sim.workload_pods(0))  # a refused eviction changes nothing
    if max_unavailable == 1:
        sim.step()  # the replacement starts and is ready at the next step's start
        assert sim.migrate(refused[0], 1) is not None


def test_the_pdb_counts_pods_that_are_not_ready():
    # One of two replicas is still Pending: with maxUnavailable 1 no eviction is allowed.
    spec = dataclasses.replace(workload(replicas=2), pdb_max_unavailable=1)
    sim = two_nodes(spec)
    first, _ = sim.workload_pods(0)
    assert sim.bind(first, 0)
    assert sim.migrate(first, 1) is None


def test_background_pods_cannot_be_migrated():
    background = BackgroundPods(
        names=("bg/batch",), cpu_request_millicores=np.array([100.0]), memory_request_bytes=np.array([1e8]),
        cpu_usage_millicores=np.array([50.0]), memory_usage_bytes=np.array([5e7]),
        arrival_seconds=np.array([0.0]), departure_seconds=np.array([1e9]))
    sim = Simulator(scenario(workload(), background=background), config=QUIET)
    with pytest.raises(ValueError, match="without a controller"):
        sim.migrate("bg/batch", 0)


def test_a_node_emptied_by_migration_goes_to_standby_after_the_idle_period():
    config = dataclasses.replace(QUIET, standby_after_idle_seconds=120.0)
    sim = two_nodes(workload(replicas=2), config=config)
    first, second = sim.workload_pods(0)
    assert sim.bind(first, 0) and sim.bind(second, 1)
    sim.step()
    sim.migrate(second, 0)
    results = [sim.step() for _ in range(3)]
    assert [bool(r.node_standby[1]) for r in results] == [False, False, True]
    assert results[2].node_watts[1] == DEFAULT_PROFILES["medium"].standby_watts
