"""The simulator's dynamics and actions, on small hand-built scenarios."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from thrifty.config import SimulatorConfig
from thrifty.energy import DEFAULT_PROFILES
from thrifty.sim import BackgroundPods, Dependencies, Scenario, ScenarioNodes, Simulator, StepResult, WorkloadSpec
from thrifty.sim.simulator import replica_cpu_weights, replica_phase_steps
from thrifty.snapshot import UNBOUND, ClusterSnapshot

MI = 2.0**20
GI = 2.0**30
STEPS = 8
QUIET = SimulatorConfig(poisson_arrivals=False)
"""Exact trace rates: every figure below is hand-computable."""


def workload(name: str = "default/web", *, rate: float | list[float] = 10.0, work: float = 10.0,
             baseline: float = 0.0, memory: float = 100 * MI, cpu_request: float = 500.0,
             cpu_limit: float = math.inf, memory_request: float = 200 * MI, memory_limit: float = math.inf,
             replicas: int = 1, slo: float = 0.5, energy_weight: float = 0.5) -> WorkloadSpec:
    rate = np.asarray(rate if isinstance(rate, list) else [rate] * STEPS, dtype=float)
    steps = len(rate)
    return WorkloadSpec(
        name=name, request_rate_per_second=rate, cpu_per_request_millicore_seconds=work,
        cpu_baseline_millicores=np.full(steps, baseline), memory_per_pod_bytes=np.full(steps, memory),
        cpu_request_millicores=cpu_request, cpu_limit_millicores=cpu_limit, memory_request_bytes=memory_request,
        memory_limit_bytes=memory_limit, replicas=replicas, replicas_max=20, slo_latency_p95_seconds=slo,
        energy_weight=energy_weight,
    )


def scenario(*workloads: WorkloadSpec, node_cpu: tuple[float, ...] = (4000.0,),
             node_memory: tuple[float, ...] | None = None, dependencies: Dependencies | None = None,
             background: BackgroundPods | None = None) -> Scenario:
    n = len(node_cpu)
    nodes = ScenarioNodes(
        names=tuple(f"node-{i}" for i in range(n)),
        cpu_capacity_millicores=np.asarray(node_cpu, dtype=float),
        memory_capacity_bytes=np.asarray(node_memory or (8 * GI,) * n, dtype=float),
        power_class=("medium",) * n,
    )
    extra = {"dependencies": dependencies} if dependencies is not None else {}
    return Scenario(nodes=nodes, workloads=tuple(workloads), background=background, **extra)


def calls(source: int, target: int, per_request: float) -> Dependencies:
    return Dependencies(source=np.array([source]), target=np.array([target]), calls_per_request=np.array([per_request]),
                        bytes_per_call=np.array([4096.0]), weight=np.array([1.0]))


def bind_all(sim: Simulator, node: int = 0) -> None:
    for pod in sim.pending_pods():
        assert sim.bind(pod, node)


def first_fit(sim: Simulator) -> None:
    for pod in sim.pending_pods():
        any(sim.bind(pod, n) for n in range(len(sim.node_names)))


def results_equal(a: StepResult, b: StepResult) -> bool:
    for field in dataclasses.fields(StepResult):
        x, y = getattr(a, field.name), getattr(b, field.name)
        if isinstance(x, np.ndarray):
            if not np.array_equal(x, y, equal_nan=True):
                return False
        elif x != y:
            return False
    return True


# ------------------------------------------------------------------ determinism


def run(seed: int, steps: int = 50, config: SimulatorConfig = SimulatorConfig()) -> list[StepResult]:
    spec = scenario(
        workload("default/a", rate=40.0, replicas=2),
        workload("default/b", rate=[5.0, 50.0, 20.0, 80.0] * 2, work=20.0, replicas=3),
        node_cpu=(4000.0, 8000.0, 2000.0),
        dependencies=calls(0, 1, 2.0),
    )
    sim = Simulator(spec, config=config, seed=seed)
    results = []
    for step in range(steps):
        if step % 10 == 5:
            sim.scale(1, 1 + step % 4)
        first_fit(sim)
        results.append(sim.step())
    return results


def test_same_seed_gives_identical_results():
    assert all(results_equal(a, b) for a, b in zip(run(3), run(3), strict=True))


def test_different_seeds_differ_in_the_poisson_arrivals():
    a, b = run(3), run(4)
    assert any(not np.array_equal(x.workload_request_rate_per_second, y.workload_request_rate_per_second)
               for x, y in zip(a, b, strict=True))


def test_without_poisson_arrivals_the_seed_does_not_matter():
    assert all(results_equal(a, b) for a, b in zip(run(3, 20, QUIET), run(4, 20, QUIET), strict=True))


def test_reset_replays_the_run():
    spec = scenario(workload(rate=30.0, replicas=2))
    sim = Simulator(spec, seed=5)
    bind_all(sim)
    first = [sim.step() for _ in range(5)]
    sim.reset()
    bind_all(sim)
    assert all(results_equal(a, sim.step()) for a in first)


# ------------------------------------------------------------------------ bind


@pytest.mark.parametrize(
    ("node_cpu", "node_memory", "cpu_request", "memory_request", "bound"),
    [
        (1000.0, GI, 500.0, 100 * MI, True),
        (1000.0, GI, 1000.0, GI, True),  # exactly fills the node
        (1000.0, GI, 1500.0, 100 * MI, False),  # CPU does not fit
        (1000.0, GI, 500.0, 2 * GI, False),  # memory does not fit
        (0.0, GI, 0.0, 0.0, False),  # zero-CPU node, even for a pod that requests nothing
        (1000.0, 0.0, 0.0, 0.0, False),  # zero-memory node
    ],
)
def test_bind_checks_requests_against_free_capacity(node_cpu, node_memory, cpu_request, memory_request, bound):
    spec = scenario(workload(cpu_request=cpu_request, memory_request=memory_request),
                    node_cpu=(node_cpu,), node_memory=(node_memory,))
    sim = Simulator(spec)
    pod = sim.pending_pods()[0]
    assert sim.bind(pod, 0) is bound
    assert bool(sim.snapshot().pods.node_index[0] == 0) is bound


def test_bind_counts_pods_already_there_and_refuses_a_second_bind():
    sim = Simulator(scenario(workload(cpu_request=600.0, replicas=2), node_cpu=(1000.0, 1000.0)))
    first, second = sim.pending_pods()
    assert sim.bind(first, "node-0")
    assert not sim.bind(second, "node-0")  # 600 + 600 > 1000
    assert not sim.bind(first, "node-1")  # already bound
    assert sim.bind(second, 1)
    with pytest.raises(KeyError, match="no pod named"):
        sim.bind("default/missing", 0)
    with pytest.raises(IndexError):
        sim.bind(first, 5)


def test_zero_capacity_node_never_gets_a_pod():
    sim = Simulator(scenario(workload(cpu_request=0.0, memory_request=0.0, replicas=5), node_cpu=(0.0, 1000.0)))
    assert not any(sim.bind(pod, 0) for pod in sim.pending_pods())
    snap = sim.snapshot()
    assert not snap.nodes.schedulable[0] and snap.nodes.schedulable[1]
    assert np.all(snap.pods.node_index == UNBOUND)


# ---------------------------------------------------------------------- resize


def test_resize_keeps_the_pod_running_and_changes_its_caps():
    sim = Simulator(scenario(workload(rate=10.0, work=100.0, cpu_request=500.0, cpu_limit=2000.0)), config=QUIET)
    bind_all(sim)
    pod = sim.pending_pods() or sim.workload_pods(0)
    before = sim.step()
    assert before.workload_throttled_fraction[0] == 0.0  # demand 1000m under the 2000m limit
    assert sim.resize(pod[0], cpu_request_millicores=300.0, cpu_limit_millicores=400.0)
    after = sim.step()
    snap = sim.snapshot()
    assert snap.pods.names == pod  # same pod, not a replacement
    assert snap.pods.age_seconds[0] == 120.0  # never restarted
    assert after.workload_running_replicas[0] == 1 and after.workload_oom_kills[0] == 0
    assert snap.pods.cpu_request_millicores[0] == 300.0 and snap.nodes.cpu_requested_millicores[0] == 300.0
    assert snap.pods.cpu_usage_millicores[0] == 400.0  # capped by the new limit
    assert after.workload_throttled_fraction[0] == pytest.approx(0.6)
    assert after.workload_churn[0] == 1


def test_resize_that_does_not_fit_changes_nothing():
    sim = Simulator(scenario(workload(cpu_request=500.0, replicas=2), node_cpu=(1000.0,)))
    bind_all(sim)
    pod = sim.workload_pods(0)[0]
    assert not sim.resize(pod, cpu_request_millicores=600.0)
    assert sim.snapshot().pods.cpu_request_millicores[0] == 500.0
    assert sim.step().workload_churn[0] == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cpu_request_millicores": 500.0, "cpu_limit_millicores": 100.0}, "cpu_limit_millicores"),
        ({"memory_request_bytes": -1.0}, "memory_request_bytes"),
        ({"cpu_request_millicores": math.nan}, "cpu_request_millicores"),
    ],
)
def test_resize_rejects_invalid_sizes(kwargs, message):
    sim = Simulator(scenario(workload()))
    with pytest.raises(ValueError, match=message):
        sim.resize(sim.pending_pods()[0], **kwargs)


def test_new_pods_take_the_size_of_the_last_resize():
    sim = Simulator(scenario(workload(cpu_request=500.0)))
    sim.resize(sim.pending_pods()[0], cpu_request_millicores=250.0, memory_request_bytes=300 * MI)
    sim.scale(0, 2)
    snap = sim.snapshot()
    np.testing.assert_array_equal(snap.pods.cpu_request_millicores, [250.0, 250.0])
    np.testing.assert_array_equal(snap.pods.memory_request_bytes, [300 * MI, 300 * MI])


# --------------------------------------------------------- CPU: limit and node


@pytest.mark.parametrize(("replicas", "per_pod"), [(1, 1100.0), (2, 600.0), (4, 350.0)])
def test_shared_demand_and_requests_split_over_replicas_each_adding_its_baseline(replicas, per_pod):
    # 10 req/s x 50 millicore-seconds = 500m of requests plus 500m of shared work, 100m baseline each.
    spec = dataclasses.replace(
        workload(rate=10.0, work=50.0, baseline=100.0, cpu_request=100.0, replicas=replicas),
        cpu_shared_demand_millicores=np.full(STEPS, 500.0),
    )
    sim = Simulator(scenario(spec, node_cpu=(64_000.0,)), config=QUIET)
    bind_all(sim)
    result = sim.step()
    np.testing.assert_allclose(sim.snapshot().pods.cpu_usage_millicores, per_pod)
    assert result.node_cpu_usage_millicores[0] == pytest.approx(per_pod * replicas)



@pytest.mark.parametrize(
    ("limit", "usage", "throttled", "periods"),
    [(400.0, 400.0, 0.6, 600.0), (1000.0, 1000.0, 0.0, 0.0), (math.inf, 1000.0, 0.0, 0.0)],
)
def test_throttling_when_demand_exceeds_the_limit(limit, usage, throttled, periods):
    # Demand: 10 req/s x 100 millicore-seconds = 1000m.
    sim = Simulator(scenario(workload(rate=10.0, work=100.0, cpu_request=400.0, cpu_limit=limit)), config=QUIET)
    bind_all(sim)
    result = sim.step()
    snap = sim.snapshot()
    assert result.workload_throttled_fraction[0] == pytest.approx(throttled)
    assert snap.pods.cpu_usage_millicores[0] == pytest.approx(usage)
    assert snap.containers.throttled_periods_total[0] == periods  # 60 s / 100 ms CFS periods
    if throttled:
        assert result.workload_slo_violated[0] and result.workload_utilisation[0] >= 1.0


def test_contended_node_shares_cpu_by_request():
    # Both pods demand 800m on a 1000m node; weights 600:200 give 750m and 250m.
    sim = Simulator(
        scenario(workload("default/a", rate=8.0, work=100.0, cpu_request=600.0),
                 workload("default/b", rate=8.0, work=100.0, cpu_request=200.0), node_cpu=(1000.0,)),
        config=QUIET,
    )
    bind_all(sim)
    result = sim.step()
    snap = sim.snapshot()
    np.testing.assert_allclose(snap.pods.cpu_usage_millicores, [750.0, 250.0])
    np.testing.assert_allclose(result.workload_contended_fraction, [50 / 800, 550 / 800])
    assert result.node_cpu_usage_millicores[0] == pytest.approx(1000.0)
    assert result.node_watts[0] == pytest.approx(DEFAULT_PROFILES["medium"].peak_watts)


# ------------------------------------------------------------------ memory


def test_oom_kill_when_memory_exceeds_the_limit_then_crash_loop_backoff():
    sim = Simulator(scenario(workload(memory=300 * MI, memory_limit=256 * MI, memory_request=200 * MI)), config=QUIET)
    bind_all(sim)
    results = [sim.step() for _ in range(9)]
    kills = [int(r.workload_oom_kills[0]) for r in results]
    # Restart delays 10, 20, 40 s fit in a 60 s step; 80, 160 and 300 s skip steps.
    assert kills == [1, 1, 1, 1, 0, 1, 0, 0, 1]
    assert all(r.workload_running_replicas[0] == 0 and r.workload_slo_violated[0] for r in results)
    snap = sim.snapshot()
    assert snap.containers.oom_kills_total[0] == 6
    assert np.isnan(snap.containers.memory_history_bytes[0, -1])  # a killed pod leaves no sample


def test_raising_the_memory_limit_ends_the_oom_kills():
    sim = Simulator(scenario(workload(memory=300 * MI, memory_limit=256 * MI, memory_request=200 * MI)), config=QUIET)
    bind_all(sim)
    assert sim.step().workload_oom_kills[0] == 1
    sim.resize(sim.workload_pods(0)[0], memory_limit_bytes=512 * MI)
    result = sim.step()
    assert result.workload_oom_kills[0] == 0 and result.workload_running_replicas[0] == 1


def test_node_memory_pressure_evicts_and_replaces():
    # Two pods each use 600Mi against 256Mi requests on a 1GiB node: one is evicted.
    sim = Simulator(
        scenario(workload(memory=600 * MI, memory_request=256 * MI, replicas=2), node_memory=(GI,)), config=QUIET
    )
    bind_all(sim)
    before = set(sim.workload_pods(0))
    result = sim.step()
    assert result.evictions == 1 and result.workload_evictions[0] == 1
    assert result.workload_running_replicas[0] == 1 and result.workload_churn[0] == 0
    after = set(sim.workload_pods(0))
    assert len(after) == 2 and len(after - before) == 1
    assert result.pending_pods == 1 and sim.pending_pods()[0] in after - before


# ------------------------------------------------------------------- standby


def test_empty_node_enters_standby_and_wakes_with_a_delay():
    config = SimulatorConfig(poisson_arrivals=False, standby_after_idle_seconds=120.0, wake_delay_seconds=120.0)
    sim = Simulator(scenario(workload(replicas=1), node_cpu=(4000.0, 4000.0)), config=config)
    bind_all(sim, node=0)
    medium = DEFAULT_PROFILES["medium"]
    results = [sim.step() for _ in range(3)]
    assert [bool(r.node_standby[1]) for r in results] == [False, False, True]
    assert results[2].node_watts[1] == medium.standby_watts
    assert results[1].node_watts[1] == medium.idle_watts
    assert sim.snapshot().nodes.standby[1]
    sim.scale(0, 2)
    assert sim.bind(sim.pending_pods()[0], 1)  # a standby node accepts a pod and wakes
    assert not sim.snapshot().nodes.standby[1]
    running = [int(sim.step().workload_running_replicas[0]) for _ in range(3)]
    assert running == [1, 1, 2]  # 120 s of waking before the new pod runs


def test_node_holding_pods_never_sleeps_and_inf_disables_standby():
    config = SimulatorConfig(standby_after_idle_seconds=math.inf)
    sim = Simulator(scenario(workload(), node_cpu=(4000.0, 4000.0)), config=config)
    bind_all(sim)
    assert not any(sim.step().node_standby.any() for _ in range(20))


# ------------------------------------------------------------------- network


@pytest.mark.parametrize("split", [False, True])
def test_cross_node_calls_add_latency_and_network_energy(split):
    spec = scenario(
        workload("default/front", rate=10.0, cpu_limit=1000.0),
        workload("default/back", rate=20.0, cpu_limit=1000.0),
        node_cpu=(64_000.0, 64_000.0),
        dependencies=calls(0, 1, 2.0),
    )
    sim = Simulator(spec, config=QUIET)
    front, back = sim.pending_pods()
    sim.bind(front, 0)
    sim.bind(back, 1 if split else 0)
    result = sim.step()
    # Limits bind the service rate on both nodes, so the queueing part is identical.
    alone = Simulator(scenario(workload("default/front", rate=10.0, cpu_limit=1000.0), node_cpu=(64_000.0,)),
                      config=QUIET)
    bind_all(alone)
    base = alone.step().workload_latency_p95_seconds[0]
    rtt = SimulatorConfig().network.cross_node_call_latency_seconds
    crossing = 20.0 if split else 0.0
    assert result.workload_latency_p95_seconds[0] == pytest.approx(base + (2 * rtt if split else 0.0))
    assert result.workload_cross_node_calls_per_second[0] == pytest.approx(crossing)
    joules = crossing * 4096 * SimulatorConfig().network.network_energy_joules_per_byte * 60
    assert result.network_energy_joules == pytest.approx(joules)
    assert result.workload_network_watts[0] == pytest.approx(joules / 60)
    assert result.energy_joules == pytest.approx(result.node_energy_joules + joules)


# --------------------------------------------------------------------- scale


def test_scale_out_creates_pending_pods_and_counts_churn():
    sim = Simulator(scenario(workload(replicas=1)))
    created = sim.scale("default/web", 3)
    assert created == ("default/web-1", "default/web-2")
    assert set(created) <= set(sim.pending_pods())
    assert sim.snapshot().workloads.replicas[0] == 3
    bind_all(sim)
    assert sim.step().workload_churn[0] == 2


def test_scale_in_prefers_pending_then_newest():
    sim = Simulator(scenario(workload(replicas=3)))
    pods = sim.workload_pods(0)
    sim.bind(pods[0], 0)
    sim.bind(pods[2], 0)
    removed = sim.scale(0, 1)
    assert removed == (pods[1], pods[2])  # the Pending one, then the newest bound one
    assert sim.workload_pods(0) == (pods[0],)
    assert sim.snapshot().nodes.cpu_requested_millicores[0] == 500.0


def test_scale_in_removes_the_named_pods():
    sim = Simulator(scenario(workload(replicas=3)))
    pods = sim.workload_pods(0)
    assert sim.scale(0, 1, remove=[pods[0], pods[2]]) == (pods[0], pods[2])
    assert sim.workload_pods(0) == (pods[1],)


@pytest.mark.parametrize(
    ("replicas", "remove", "error"),
    [(-1, None, "replicas must be >= 0"), (0, ["default/web-0"], "exactly"),
     (0, ["default/web-0", "default/web-0"], "exactly"), (1, ["default/other-0"], "another workload")],
)
def test_scale_rejects_bad_requests(replicas, remove, error):
    sim = Simulator(scenario(workload(replicas=2), workload("default/other", replicas=1)))
    with pytest.raises(ValueError, match=error):
        sim.scale("default/web", replicas, remove=remove)


def test_scaling_in_empties_a_node_that_then_sleeps():
    config = SimulatorConfig(standby_after_idle_seconds=60.0)
    sim = Simulator(scenario(workload(replicas=2), node_cpu=(4000.0, 4000.0)), config=config)
    first, second = sim.workload_pods(0)
    sim.bind(first, 0)
    sim.bind(second, 1)
    sim.step()
    sim.scale(0, 1, remove=[second])
    sim.step()
    assert sim.step().node_standby[1]


# ------------------------------------------------------------------ snapshot


def test_snapshot_validates_and_matches_the_state():
    background = BackgroundPods(
        names=("batch/job-0",), arrival_seconds=np.array([0.0]), departure_seconds=np.array([np.inf]),
        cpu_request_millicores=np.array([1000.0]), memory_request_bytes=np.array([GI]),
        cpu_usage_millicores=np.array([700.0]), memory_usage_bytes=np.array([0.5 * GI]),
    )
    spec = scenario(workload("default/a", replicas=2, cpu_limit=2000.0), workload("default/b", rate=5.0, replicas=1),
                    node_cpu=(4000.0, 4000.0), dependencies=calls(0, 1, 1.0), background=background)
    sim = Simulator(spec, config=QUIET)
    before = sim.snapshot()
    assert isinstance(before, ClusterSnapshot)
    assert np.all(np.isnan(before.nodes.cpu_usage_millicores))
    assert np.all(np.isnan(before.workloads.latency_p95_seconds))
    first_fit(sim)
    results = [sim.step() for _ in range(3)]
    snap = sim.snapshot()
    assert snap.time_seconds == 180.0 == results[-1].time_seconds
    assert snap.pods.names == ("default/a-0", "default/a-1", "default/b-0", "batch/job-0")
    assert snap.containers.names == ("app", "app", "app", "main")
    np.testing.assert_array_equal(snap.pods.workload_index, [0, 0, 1, -1])
    requested = np.bincount(snap.pods.node_index, weights=snap.pods.cpu_request_millicores, minlength=2)
    np.testing.assert_allclose(snap.nodes.cpu_requested_millicores, requested)
    np.testing.assert_allclose(snap.nodes.cpu_usage_millicores, results[-1].node_cpu_usage_millicores)
    np.testing.assert_allclose(
        np.bincount(snap.pods.node_index, weights=snap.pods.cpu_usage_millicores, minlength=2),
        snap.nodes.cpu_usage_millicores,
    )
    np.testing.assert_array_equal(snap.containers.cpu_history_millicores[:, -1], snap.pods.cpu_usage_millicores)
    assert snap.containers.cpu_history_millicores.shape == (4, SimulatorConfig().history_window_samples)
    assert np.isnan(snap.containers.cpu_history_millicores[:, :-3]).all()  # only three samples yet
    assert snap.containers.history_step_seconds == 60.0
    np.testing.assert_array_equal(snap.workloads.replicas, [2, 1])
    np.testing.assert_array_equal(snap.workloads.latency_p95_seconds, results[-1].workload_latency_p95_seconds)
    np.testing.assert_array_equal(snap.workloads.request_rate_per_second, [10.0, 5.0])
    assert len(snap.dependencies) == 1 and snap.dependencies.weight[0] == 1.0


def test_history_window_rolls_over():
    config = SimulatorConfig(poisson_arrivals=False, history_window_samples=4)
    rates = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    sim = Simulator(scenario(workload(rate=rates, work=100.0)), config=config)
    bind_all(sim)
    for _ in range(6):
        sim.step()
    np.testing.assert_allclose(sim.snapshot().containers.cpu_history_millicores[0], [300.0, 400.0, 500.0, 600.0])


def test_series_wrap_around_after_the_horizon():
    sim = Simulator(scenario(workload(rate=[10.0, 20.0])), config=QUIET)
    bind_all(sim)
    rates = [float(sim.step().workload_request_rate_per_second[0]) for _ in range(5)]
    assert rates == [10.0, 20.0, 10.0, 20.0, 10.0]


def test_one_node_cluster_runs():
    sim = Simulator(scenario(workload(rate=30.0, replicas=3), node_cpu=(8000.0,)))
    bind_all(sim)
    for _ in range(20):
        result = sim.step()
        assert np.isfinite(result.node_watts).all() and np.isfinite(result.workload_latency_p95_seconds).all()
        assert result.pending_pods == 0
    assert result.energy_joules > 0


def test_background_pods_arrive_pending_and_leave():
    background = BackgroundPods(
        names=("batch/a", "batch/huge"), arrival_seconds=np.array([100.0, 100.0]),
        departure_seconds=np.array([250.0, np.inf]), cpu_request_millicores=np.array([500.0, 99_000.0]),
        memory_request_bytes=np.array([MI, MI]), cpu_usage_millicores=np.array([250.0, 1.0]),
        memory_usage_bytes=np.array([MI, MI]),
    )
    sim = Simulator(scenario(workload(), background=background), config=QUIET)
    bind_all(sim)
    sim.step()
    assert sim.pending_pods() == ()
    result = sim.step()  # now t = 120 s: both have arrived
    assert sim.pending_pods() == ("batch/a", "batch/huge")
    assert result.pending_pods == 2 and result.unschedulable_pods == 1  # 99 cores fit nowhere
    assert sim.bind("batch/a", 0)
    sim.step()
    sim.step()
    assert "batch/a" in sim.snapshot().pods.names
    sim.step()  # t = 300 s: past its departure
    assert "batch/a" not in sim.snapshot().pods.names


# ---------------------------------------------------------------- validation


def test_scenario_and_simulator_validation_name_the_field():
    with pytest.raises(ValueError, match=r"WorkloadSpec\('default/web'\).cpu_limit_millicores"):
        workload(cpu_request=500.0, cpu_limit=100.0)
    with pytest.raises(ValueError, match="Scenario.workloads"):
        scenario(workload("default/a", rate=[1.0, 2.0]), workload("default/b", rate=[1.0]))
    with pytest.raises(ValueError, match="Scenario.dependencies.target"):
        scenario(workload(), dependencies=calls(0, 3, 1.0))
    with pytest.raises(ValueError, match="step_seconds"):
        Simulator(scenario(workload()), config=SimulatorConfig(step_seconds=30.0))
    with pytest.raises(ValueError, match="SimulatorConfig.history_window_samples"):
        SimulatorConfig(history_window_samples=0)


def test_with_replica_phases_each_replica_reads_its_own_memory_sample():
    # A memory series that is 100 MiB except one 300 MiB burst at step 0, a 200 MiB limit, four
    # replicas: without phases the burst kills all four; with phases only pod 0 reads it then.
    spec = dataclasses.replace(workload(memory_limit=200 * MI, replicas=4),
                               memory_per_pod_bytes=np.array([300 * MI] + [100 * MI] * (STEPS - 1)))
    together = Simulator(scenario(spec, node_memory=(64 * GI,)))
    bind_all(together)
    assert together.step().workload_oom_kills[0] == 4
    apart = Simulator(dataclasses.replace(scenario(spec, node_memory=(64 * GI,)), replica_memory_phases=True))
    bind_all(apart)
    assert apart.step().workload_oom_kills[0] == 1
    phases = replica_phase_steps(0, np.arange(4), STEPS)
    assert phases[0] == 0 and len(set(phases.tolist())) == 4
    np.testing.assert_array_equal(phases, replica_phase_steps(0, np.arange(4), STEPS))  # a fixed hash


def test_with_a_cpu_spread_each_replica_serves_its_own_share():
    # 100 req/s of 10 ms each (1000 m of request-driven CPU), 20 m baseline, four replicas. With
    # equal weights each uses 270 m; with a spread each uses 20 m + 1000 m x w_i / sum(w), the
    # shares adding up to the workload's demand.
    spec = workload(rate=100.0, work=10.0, baseline=20.0, replicas=4)
    together = Simulator(scenario(spec), config=QUIET)
    bind_all(together)
    together.step()
    np.testing.assert_allclose(together.snapshot().pods.cpu_usage_millicores, [270.0] * 4)
    apart = Simulator(dataclasses.replace(scenario(spec), replica_cpu_spread=0.2, replica_seed=7), config=QUIET)
    bind_all(apart)
    apart.step()
    usage = apart.snapshot().pods.cpu_usage_millicores
    weights = replica_cpu_weights(7, 0, np.arange(4), 0.2)
    np.testing.assert_allclose(usage, 20.0 + 1000.0 * weights / weights.sum())
    assert usage.sum() == pytest.approx(4 * 20.0 + 1000.0)
    assert len(set(np.round(usage, 6).tolist())) == 4  # no two replicas share one CPU series
    assert np.all((weights >= 0.8) & (weights < 1.2))
    # A fixed hash: the same for the same seed, another for another seed.
    np.testing.assert_array_equal(weights, replica_cpu_weights(7, 0, np.arange(4), 0.2))
    assert not np.array_equal(weights, replica_cpu_weights(8, 0, np.arange(4), 0.2))


def test_with_cpu_phases_each_replica_reads_its_own_baseline_sample():
    # A baseline that is 10 m except 500 m at step 0: without phases every replica reads 500 m
    # in the first step; with phases only pod 0 does (the others start elsewhere in the series).
    spec = dataclasses.replace(workload(rate=0.0, replicas=4),
                               cpu_baseline_millicores=np.array([500.0] + [10.0] * (STEPS - 1)))
    together = Simulator(scenario(spec), config=QUIET)
    bind_all(together)
    together.step()
    np.testing.assert_allclose(together.snapshot().pods.cpu_usage_millicores, [500.0] * 4)
    apart = Simulator(dataclasses.replace(scenario(spec), replica_cpu_phases=True), config=QUIET)
    bind_all(apart)
    apart.step()
    np.testing.assert_allclose(apart.snapshot().pods.cpu_usage_millicores, [500.0, 10.0, 10.0, 10.0])
    # Memory still reads one sample for all: the CPU phases do not turn on memory phases.
    assert not apart.scenario.replica_memory_phases
