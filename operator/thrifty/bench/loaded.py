"""The loaded regime: a cluster where placement, sizing and node power decisions matter.

Built on :func:`thrifty.sim.build_scenario` (nodes sampled from the openb inventory, with its mix
of node sizes; applications from the call graphs; request-rate and usage shapes from the traces),
then changed in four ways:

* **Load envelope.** Requested CPU follows a cycle between a trough and a peak fraction of the
  cluster's CPU capacity, drawn per seed from ``trough_requested_cpu_fraction_range`` and
  ``peak_requested_cpu_fraction_range``: ``trough + (peak - trough) (1 - cos(2 pi t / T)) / 2``,
  trough at the start and end of the cycle, peak in the middle. ``T`` is a day, or the run if it
  is shorter (the quick run compresses the day into its six hours). The workloads' request rates
  follow the same envelope, relative to its peak.
* **Bursts.** Two or three seeded windows (``burst_count_range``, ``burst_seconds``) in which the
  workloads' request rates are ``burst_rate_factor`` times the envelope's.
* **Background.** Pods of the openb pod stream, with their real CPU and memory requests and
  lifetimes (deletion - creation; a pod never deleted gets the stream's median lifetime), taken
  in creation order from a seeded start and cycling: at each step, pods are admitted until the
  background's requested CPU reaches the envelope's target minus the workloads' requests as
  deployed. Once admitted a pod stays its lifetime, so the load falls only as fast as pods end.
* **Replicas apart.** Each replica reads its workload's memory series and its per-pod baseline
  CPU series at its own phase (:attr:`thrifty.sim.Scenario.replica_memory_phases`,
  :attr:`~thrifty.sim.Scenario.replica_cpu_phases`), so one burst does not kill every replica at
  once and replicas do not idle and spike in step; and each replica serves an uneven share of
  its workload's requests: a fixed weight per pod, uniform within ``replica_cpu_spread`` of 1
  (:attr:`~thrifty.sim.Scenario.replica_cpu_spread`, hashed from the seed), so the busiest
  replica of four may serve half as much again as the least busy. The shares add up to the
  workload's request-driven CPU, which the lower bounds count unchanged.
* **Sizing as deployed.** Every workload's initial replicas, requests, limits and SLO come from
  the ``history_seconds`` of its series before the run (the previous cycle of the envelope,
  without bursts), by the rule of :func:`thrifty.sim.scenario.deployed_size`; the run's own
  series are never looked at, not even to normalise the trace shapes (``history_seconds`` of
  :class:`thrifty.config.ScenarioConfig`). The scenario holds only the run's part of every series.

:func:`requested_cpu_fraction` is the requested CPU (background present plus workloads as
deployed) over the cluster's capacity at each step: the regime's load, before any policy acts.
"""

from __future__ import annotations

import dataclasses
import heapq
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from thrifty.config import ScenarioConfig
from thrifty.sim import BackgroundPods, Scenario, build_scenario
from thrifty.sim.scenario import deployed_size
from thrifty.traces import PodStream, Trace

DAY_SECONDS = 86_400.0


@dataclass(frozen=True, kw_only=True)
class LoadedRegimeConfig:
    """How the loaded regime shapes a scenario (see the module docstring)."""

    peak_requested_cpu_fraction_range: tuple[float, float] = (0.5, 0.85)
    """Range of the requested CPU / capacity at the envelope's peak (one draw per seed)."""
    trough_requested_cpu_fraction_range: tuple[float, float] = (0.3, 0.4)
    """Range of the requested CPU / capacity at its trough."""
    cycle_seconds: float = DAY_SECONDS
    """Period of the envelope; a shorter run gets one whole cycle over its length."""
    burst_count_range: tuple[int, int] = (2, 3)
    """Bursts per run, drawn uniformly from this inclusive range."""
    burst_seconds: float = 900.0
    """Length of one burst."""
    burst_rate_factor: float = 2.0
    """Request rate during a burst, relative to the envelope's."""
    history_seconds: float = DAY_SECONDS
    """Series before the run that the initial sizing is computed from."""
    replica_cpu_spread: float = 0.2
    """Each replica's share of its workload's requests is proportional to a weight uniform in
    ``[1 - spread, 1 + spread)`` (an assumption: the traces have one series per workload, not per
    replica; a balancer of long-lived connections, or requests of uneven cost, splits unevenly)."""
    applications_per_node: float = 1.0 / 32.0
    """Applications (call graphs) per node: the background carries the bulk of the load, and the
    workloads stay few enough to simulate quickly (4 on 128 nodes)."""

    def __post_init__(self) -> None:
        for name in ("peak_requested_cpu_fraction_range", "trough_requested_cpu_fraction_range"):
            low, high = getattr(self, name)
            if not 0.0 < low <= high <= 1.0:
                raise ValueError(f"LoadedRegimeConfig.{name}: need 0 < low <= high <= 1, got {(low, high)!r}")
        if not 0.0 <= self.replica_cpu_spread < 1.0:
            raise ValueError("LoadedRegimeConfig.replica_cpu_spread: must lie in [0, 1), "
                             f"got {self.replica_cpu_spread!r}")
        if self.trough_requested_cpu_fraction_range[1] > self.peak_requested_cpu_fraction_range[0]:
            raise ValueError("LoadedRegimeConfig: the trough range must lie below the peak range")
        low, high = self.burst_count_range
        if not 0 <= low <= high:
            raise ValueError(f"LoadedRegimeConfig.burst_count_range: need 0 <= low <= high, got {(low, high)!r}")
        for name in ("cycle_seconds", "burst_seconds", "burst_rate_factor", "history_seconds", "applications_per_node"):
            if not getattr(self, name) > 0:
                raise ValueError(f"LoadedRegimeConfig.{name}: must be > 0, got {getattr(self, name)!r}")


def envelope(steps: int, step_seconds: float, trough: float, peak: float, cycle_seconds: float,
             first_step: int = 0) -> np.ndarray:
    """(steps,) the requested-CPU fraction of the module docstring at the start of steps
    ``first_step``, ``first_step + 1``, ... (negative steps: before the run)."""
    t = (first_step + np.arange(steps)) * step_seconds
    return trough + (peak - trough) * (1.0 - np.cos(2.0 * np.pi * t / cycle_seconds)) / 2.0


def burst_mask(steps: int, step_seconds: float, config: LoadedRegimeConfig, rng: np.random.Generator) -> np.ndarray:
    """bool (steps,): the steps inside one of the run's seeded bursts."""
    mask = np.zeros(steps, dtype=bool)
    length = max(1, round(config.burst_seconds / step_seconds))
    count = int(rng.integers(config.burst_count_range[0], config.burst_count_range[1] + 1))
    for start in rng.integers(0, max(steps - length, 1), size=count).tolist():
        mask[start:start + length] = True
    return mask


def background_following(stream: PodStream, target_millicores: np.ndarray, step_seconds: float,
                         config: ScenarioConfig, rng: np.random.Generator) -> BackgroundPods:
    """Pods of ``stream`` admitted so that their requested CPU follows ``target_millicores``
    (per step) from below, with their real requests and lifetimes (see the module docstring)."""
    order = np.argsort(np.asarray(stream.creation_seconds, dtype=float), kind="stable")
    cpu = np.asarray(stream.cpu_request_millicores, dtype=float)[order]
    memory = np.asarray(stream.memory_request_bytes, dtype=float)[order]
    lifetime = (np.asarray(stream.deletion_seconds, dtype=float)
                - np.asarray(stream.creation_seconds, dtype=float))[order]
    usable = np.isfinite(lifetime) & (lifetime > 0)
    lifetime = np.where(usable, lifetime, float(np.median(lifetime[usable])) if usable.any() else DAY_SECONDS)
    names = [stream.names[i] for i in order.tolist()]
    # Pods without a CPU request would never fill the target.
    candidates = np.flatnonzero(cpu > 0)
    if len(candidates) == 0:
        raise ValueError("background_following: the pod stream has no pod with a CPU request")
    position = int(rng.integers(len(candidates)))
    arrival: list[float] = []
    departure: list[float] = []
    picked: list[int] = []
    ends: list[tuple[float, float]] = []  # (departure seconds, CPU millicores) of pods present
    present = 0.0
    for k, target in enumerate(np.asarray(target_millicores, dtype=float).tolist()):
        now = k * step_seconds
        while ends and ends[0][0] <= now:
            present -= heapq.heappop(ends)[1]
        while present < target:
            p = int(candidates[position % len(candidates)])
            position += 1
            arrival.append(now)
            departure.append(now + float(lifetime[p]))
            picked.append(p)
            heapq.heappush(ends, (departure[-1], float(cpu[p])))
            present += cpu[p]
    rows = np.asarray(picked, dtype=np.int64)
    laps = np.arange(len(rows))
    return BackgroundPods(
        names=tuple(f"background/{names[p]}-{i}" for i, p in zip(laps.tolist(), rows.tolist(), strict=True)),
        arrival_seconds=np.asarray(arrival, dtype=float),
        departure_seconds=np.asarray(departure, dtype=float),
        cpu_request_millicores=cpu[rows],
        memory_request_bytes=memory[rows],
        cpu_usage_millicores=cpu[rows] * config.background_cpu_utilisation,
        memory_usage_bytes=memory[rows] * config.background_memory_utilisation,
    )


def workloads_requested_millicores(scenario: Scenario) -> float:
    """CPU requested by the workloads as deployed (initial replicas x request)."""
    return float(sum(w.replicas * w.cpu_request_millicores for w in scenario.workloads))


def requested_cpu_fraction(scenario: Scenario, steps: int) -> np.ndarray:
    """(steps,) requested CPU (background present at each step's start plus the workloads as
    deployed) over the cluster's CPU capacity."""
    capacity = float(np.sum(scenario.nodes.cpu_capacity_millicores))
    requested = np.full(steps, workloads_requested_millicores(scenario))
    background = scenario.background
    if background is not None:
        t = np.arange(steps)[:, None] * scenario.step_seconds
        present = (background.arrival_seconds[None, :] <= t) & (background.departure_seconds[None, :] > t)
        requested += present.astype(float) @ background.cpu_request_millicores
    return requested / capacity


def build_loaded(traces: Sequence[Trace], *, n_nodes: int, steps: int, seed: int,
                 regime: LoadedRegimeConfig = LoadedRegimeConfig()) -> Scenario:
    """The loaded scenario of ``n_nodes`` nodes for a run of ``steps`` steps (module docstring).

    Raises ValueError, naming the part, when the traces lack what :func:`build_scenario` needs
    or a pod stream.
    """
    stream = next((t.pods for t in traces if t.pods is not None), None)
    if stream is None:
        raise ValueError("build_loaded: the traces lack a pod stream (openb pods) for the background")
    default = ScenarioConfig()
    dt = default.step_seconds
    history = max(1, round(regime.history_seconds / dt))
    config = dataclasses.replace(
        default, n_nodes=n_nodes, n_applications=max(1, round(regime.applications_per_node * n_nodes)),
        n_background_pods=0, horizon_seconds=(history + steps) * dt, history_seconds=history * dt)
    base = build_scenario(traces, config=config, seed=seed)
    rng = np.random.default_rng([seed, 1])
    trough = float(rng.uniform(*regime.trough_requested_cpu_fraction_range))
    peak = float(rng.uniform(*regime.peak_requested_cpu_fraction_range))
    cycle = min(regime.cycle_seconds, steps * dt)
    # The history is the envelope before the run (negative times): the previous cycles.
    shape = envelope(history + steps, dt, trough, peak, cycle, first_step=-history) / peak
    bursts = np.concatenate([np.zeros(history, dtype=bool), burst_mask(steps, dt, regime, rng)])
    factor = shape * np.where(bursts, regime.burst_rate_factor, 1.0)
    workloads = []
    for w in base.workloads:
        rate = w.request_rate_per_second * factor
        baseline, memory = w.cpu_baseline_millicores, w.memory_per_pod_bytes
        size = deployed_size(rate[:history], w.cpu_per_request_millicore_seconds, baseline[:history],
                             memory[:history], config)
        workloads.append(dataclasses.replace(
            w, request_rate_per_second=rate[history:], cpu_baseline_millicores=baseline[history:],
            memory_per_pod_bytes=memory[history:],
            cpu_shared_demand_millicores=(None if w.cpu_shared_demand_millicores is None
                                          else w.cpu_shared_demand_millicores[history:]),
            **size))
    scenario = dataclasses.replace(base, workloads=tuple(workloads))
    capacity = float(np.sum(scenario.nodes.cpu_capacity_millicores))
    target = envelope(steps, dt, trough, peak, cycle) * capacity - workloads_requested_millicores(scenario)
    background = background_following(stream, np.maximum(target, 0.0), dt, config, rng)
    return dataclasses.replace(scenario, background=background, replica_memory_phases=True,
                               replica_cpu_phases=True, replica_cpu_spread=regime.replica_cpu_spread,
                               replica_seed=seed)

