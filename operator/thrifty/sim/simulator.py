"""The discrete-time cluster simulator: dynamics for a :class:`~thrifty.sim.spec.Scenario`.

The simulator never decides anything. A harness (the gym environments, the baselines, the
benchmark) looks at :meth:`Simulator.snapshot`, acts with :meth:`~Simulator.bind`,
:meth:`~Simulator.resize`, :meth:`~Simulator.scale` and :meth:`~Simulator.migrate` (an eviction
and re-creation, :mod:`thrifty.sim.migration`), and advances time with
:meth:`~Simulator.step`::

    sim = Simulator(scenario, seed=0)
    for _ in range(steps):
        snapshot = sim.snapshot()               # the same ClusterSnapshot the operator builds
        ...decide, then sim.bind(pod, node) / sim.resize(pod, ...) / sim.scale(workload, n)
        result = sim.step()                     # StepResult: watts, latency, SLO, OOMs, ...

One step of ``step_seconds`` (see :meth:`Simulator.step` for the order of events):

* **Nodes** are on, in standby, or waking. A node that has been empty for
  ``standby_after_idle_seconds`` enters standby and draws standby power; binding a pod to it
  wakes it, and its pods run once ``wake_delay_seconds`` have passed.
* **Pods** run when bound to an awake node and not restarting. A workload's CPU demand (request
  rate times CPU per request, plus any shared demand) is split over its running replicas, each
  of which adds its baseline; memory per pod follows the workload's series. The split is equal
  and every replica reads the same samples, unless the scenario gives replicas their own phases
  and CPU weights (:class:`thrifty.sim.Scenario`; :func:`replica_phase_steps`,
  :func:`replica_cpu_weights`).
* **Memory** above a pod's limit OOM-kills it: it does not run, restarts after kubelet's
  doubling backoff, and counts an OOM kill. A node whose pods use more memory than it has evicts
  pods that use more than their request, largest excess first, until it fits (kubelet's
  ranking); an evicted workload pod is replaced by a Pending pod, as a ReplicaSet would.
* **CPU** is capped by each pod's limit (throttling) and then shared on a contended node by
  weighted max-min fairness on requests (CFS shares); see :mod:`thrifty.sim.cpu`.
* **Latency** comes from the M/M/c model (:mod:`thrifty.latency`) with each replica's service
  rate set by the CPU it can get (its usage plus the node's idle CPU, up to its limit, minus its
  baseline and shared work), plus the latency of its calls that cross nodes
  (:mod:`thrifty.network`).
* **Power** is :meth:`thrifty.energy.PowerModel.node_watts` of the node usage, so the simulator's
  watts and the operator's are the same code; network energy comes from the crossing calls.

Randomness: with ``poisson_arrivals`` each step's request count is drawn from a Poisson law
around the trace's rate; nothing else is random. Runs are deterministic for a given seed; the
generator is the simulator's own, never NumPy's global one.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from thrifty.config import SimulatorConfig
from thrifty.energy import PowerModel
from thrifty.latency import response_time_percentile, service_rate_per_second
from thrifty.network import NetworkEffect, network_effect
from thrifty.sim import migration
from thrifty.sim.cpu import share_node_cpu, throttle
from thrifty.sim.pods import PodStore
from thrifty.sim.result import StepResult
from thrifty.sim.spec import Scenario
from thrifty.snapshot import (
    UNBOUND,
    ClusterSnapshot,
    ContainerTable,
    DependencyTable,
    NodeTable,
    PodTable,
    WorkloadTable,
)

WORKLOAD_CONTAINER = "app"
"""Name of the one container of a workload pod (the workload's primary container)."""
BACKGROUND_CONTAINER = "main"
"""Name of the one container of a background pod."""

_FIT_TOLERANCE = 1e-9
"""Relative slack of the fit check, so that requests filling a node exactly still fit despite
float rounding in the running sums."""


class Simulator:
    """A cluster of nodes running workloads that follow their traces.

    ``seed`` is an ``int`` or a ``numpy.random.Generator``; it drives the Poisson arrivals.
    ``power_model`` maps node usage to watts (default: :class:`thrifty.energy.PowerModel` with
    its default classes). The scenario's ``step_seconds`` must equal ``config.step_seconds``.

    Pods are named ``<workload name>-<n>`` (``namespace/name-n``); background pods keep their
    scenario names. Nodes are addressed by index or name, workloads by index or name; both
    indices are the row numbers of the snapshot's node and workload tables.
    """

    def __init__(
        self,
        scenario: Scenario,
        *,
        config: SimulatorConfig = SimulatorConfig(),
        power_model: PowerModel | None = None,
        seed: int | np.random.Generator = 0,
    ) -> None:
        if scenario.step_seconds != config.step_seconds:
            raise ValueError(
                f"Scenario.step_seconds ({scenario.step_seconds}) differs from "
                f"SimulatorConfig.step_seconds ({config.step_seconds})"
            )
        self.scenario = scenario
        self.config = config
        self.power_model = power_model or PowerModel()
        self._seed = seed

        nodes = scenario.nodes
        self.node_names: tuple[str, ...] = tuple(nodes.names)
        self._node_position = {name: i for i, name in enumerate(self.node_names)}
        self._node_cpu = np.asarray(nodes.cpu_capacity_millicores, dtype=float)
        self._node_memory = np.asarray(nodes.memory_capacity_bytes, dtype=float)
        self._power_class = tuple(nodes.power_class)
        self._schedulable = (self._node_cpu > 0) & (self._node_memory > 0)

        specs = scenario.workloads
        self.workload_names: tuple[str, ...] = tuple(w.name for w in specs)
        self._workload_position = {name: i for i, name in enumerate(self.workload_names)}
        horizon = scenario.horizon_steps
        # Series carry one extra all-zero row at index W: background pods index it, so every
        # per-pod lookup is one fancy index with no branch on "has a workload".
        def stacked(attribute: str) -> np.ndarray:
            rows = [np.zeros(horizon) if getattr(w, attribute) is None else getattr(w, attribute) for w in specs]
            return np.vstack([np.asarray(row, dtype=float) for row in rows] + [np.zeros(horizon)])

        self._rate = stacked("request_rate_per_second")
        self._baseline = stacked("cpu_baseline_millicores")
        self._shared = stacked("cpu_shared_demand_millicores")
        self._memory = stacked("memory_per_pod_bytes")
        self._work = np.array([w.cpu_per_request_millicore_seconds for w in specs], dtype=float)
        self._slo = np.array([w.slo_latency_p95_seconds for w in specs], dtype=float)
        self._initial_resources = np.array(
            [
                (w.cpu_request_millicores, w.cpu_limit_millicores, w.memory_request_bytes, w.memory_limit_bytes)
                for w in specs
            ],
            dtype=float,
        ).reshape(len(specs), 4)
        self._workload_table_static = {
            "replicas_min": np.array([w.replicas_min for w in specs], dtype=np.int64),
            "replicas_max": np.array([w.replicas_max for w in specs], dtype=np.int64),
            "cpu_min_millicores": np.array([w.cpu_min_millicores for w in specs], dtype=float),
            "cpu_max_millicores": np.array([w.cpu_max_millicores for w in specs], dtype=float),
            "memory_min_bytes": np.array([w.memory_min_bytes for w in specs], dtype=float),
            "memory_max_bytes": np.array([w.memory_max_bytes for w in specs], dtype=float),
            "slo_latency_p95_seconds": self._slo,
            "energy_weight": np.array([w.energy_weight for w in specs], dtype=float),
        }
        deps = scenario.dependencies
        self._dependency_source = np.asarray(deps.source, dtype=np.int64)
        self._dependency_target = np.asarray(deps.target, dtype=np.int64)
        self._calls_per_request = np.asarray(deps.calls_per_request, dtype=float)
        self._bytes_per_call = np.asarray(deps.bytes_per_call, dtype=float)
        self._dependency_weight = np.asarray(deps.weight, dtype=float)
        background = scenario.background
        self._background_arrival_order = (
            np.argsort(background.arrival_seconds, kind="stable") if background is not None else np.zeros(0, np.int64)
        )
        self.reset()

    # ------------------------------------------------------------------ state

    def reset(self, seed: int | np.random.Generator | None = None) -> None:
        """Back to time 0: every node on and empty, each workload's initial replicas Pending.

        ``seed`` replaces the constructor's seed; without it the constructor's seed is reused
        (an ``int`` seed then replays the same run; a ``Generator`` continues its stream).
        """
        if seed is not None:
            self._seed = seed
        self._rng = np.random.default_rng(self._seed)
        n_nodes, n_workloads = len(self.node_names), len(self.workload_names)
        self._step_index = 0
        self._time = 0.0
        self._standby = np.zeros(n_nodes, dtype=bool)
        self._idle_seconds = np.zeros(n_nodes)
        self._wake_remaining = np.zeros(n_nodes)
        self._node_cpu_requested = np.zeros(n_nodes)
        self._node_memory_requested = np.zeros(n_nodes)
        self._node_pods = np.zeros(n_nodes, dtype=np.int64)
        self._node_cpu_usage = np.full(n_nodes, np.nan)
        self._node_memory_usage = np.full(n_nodes, np.nan)
        self._template = self._initial_resources.copy()
        self._name_counter = np.zeros(n_workloads, dtype=np.int64)
        self._churn = np.zeros(n_workloads, dtype=np.int64)
        self._voluntary_evictions = np.zeros(n_workloads, dtype=np.int64)
        self._request_rate = np.full(n_workloads, np.nan)
        self._latency = np.full(n_workloads, np.nan)
        initial = sum(w.replicas for w in self.scenario.workloads)
        background = self.scenario.background
        self._pods = PodStore(
            capacity=max(16, int(1.25 * (initial + (len(background) if background is not None else 0)))),
            window=self.config.history_window_samples,
        )
        self._names_version = 0
        self._names_cache: tuple[int, tuple[str, ...], tuple[str, ...]] | None = None
        self._background_slot = np.full(len(background) if background is not None else 0, -1, dtype=np.int64)
        self._background_next = 0
        for index, spec in enumerate(self.scenario.workloads):
            self._create_workload_pods(index, spec.replicas, count_churn=False)
        self._background_events()

    @property
    def time_seconds(self) -> float:
        """Simulation time now (the end of the last step)."""
        return self._time

    @property
    def step_index(self) -> int:
        """Steps taken since the start (or the last reset)."""
        return self._step_index

    def pending_pods(self) -> tuple[str, ...]:
        """Names of the pods waiting for a node, oldest first."""
        pods = self._pods
        slots = np.flatnonzero(pods.alive & (pods.node == UNBOUND))
        slots = slots[np.argsort(pods.serial[slots], kind="stable")]
        return tuple(_live_name(pods.names[s]) for s in slots.tolist())

    def workload_pods(self, workload: int | str) -> tuple[str, ...]:
        """Names of a workload's pods (Pending ones included), oldest first."""
        slots = self._workload_slots(self._workload(workload))
        return tuple(self._pods.names[s] for s in slots.tolist())

    # ---------------------------------------------------------------- actions

    def bind(self, pod: str, node: int | str) -> bool:
        """Bind a Pending pod to a node, as the binding subresource does.

        Returns False, changing nothing, when the pod is already bound, the node has no
        capacity, or the pod's requests do not fit in what the node has not yet given out.
        Binding to a standby node wakes it; the pod runs once the node is awake.
        """
        slot = self._slot(pod)
        n = self._node(node)
        pods = self._pods
        if pods.node[slot] != UNBOUND or not self._schedulable[n]:
            return False
        if not self._fits(n, pods.cpu_request_millicores[slot], pods.memory_request_bytes[slot]):
            return False
        pods.node[slot] = n
        self._node_cpu_requested[n] += pods.cpu_request_millicores[slot]
        self._node_memory_requested[n] += pods.memory_request_bytes[slot]
        self._node_pods[n] += 1
        self._idle_seconds[n] = 0.0
        if self._standby[n]:
            self._standby[n] = False
            self._wake_remaining[n] = self.config.wake_delay_seconds
        return True

    def resize(
        self,
        pod: str,
        cpu_request_millicores: float | None = None,
        cpu_limit_millicores: float | None = None,
        memory_request_bytes: float | None = None,
        memory_limit_bytes: float | None = None,
    ) -> bool:
        """Resize a pod in place (no restart), as the resize subresource does. None keeps a value.

        Returns False, changing nothing, when a bound pod's new requests do not fit on its node
        (the node's other pods keep theirs). A limit below the pod's current usage takes effect
        at the next step: throttling for CPU, an OOM kill for memory. Later pods of the same
        workload are created with the new size (Thrifty creates its pods at its current size).
        Raises ValueError for a negative request or a limit below its request.
        """
        slot = self._slot(pod)
        pods = self._pods
        old = np.array(
            [
                pods.cpu_request_millicores[slot],
                pods.cpu_limit_millicores[slot],
                pods.memory_request_bytes[slot],
                pods.memory_limit_bytes[slot],
            ]
        )
        given = (cpu_request_millicores, cpu_limit_millicores, memory_request_bytes, memory_limit_bytes)
        new = np.array([old[i] if value is None else float(value) for i, value in enumerate(given)])
        for i, name in ((0, "cpu_request_millicores"), (2, "memory_request_bytes")):
            if not (np.isfinite(new[i]) and new[i] >= 0):
                raise ValueError(f"resize({pod!r}): {name} must be finite and >= 0, got {new[i]!r}")
            if not new[i + 1] >= new[i]:
                limit = name.replace("request", "limit")
                raise ValueError(f"resize({pod!r}): {limit} ({new[i + 1]!r}) is below {name} ({new[i]!r})")
        n = pods.node[slot]
        if n != UNBOUND:
            grow_cpu, grow_memory = new[0] - old[0], new[2] - old[2]
            if not self._fits(n, max(grow_cpu, 0.0), max(grow_memory, 0.0)):
                return False
            self._node_cpu_requested[n] += grow_cpu
            self._node_memory_requested[n] += grow_memory
        (
            pods.cpu_request_millicores[slot],
            pods.cpu_limit_millicores[slot],
            pods.memory_request_bytes[slot],
            pods.memory_limit_bytes[slot],
        ) = new
        workload = pods.workload[slot]
        if workload >= 0 and not np.array_equal(new, old):
            self._template[workload] = new
            self._churn[workload] += 1
        return True

    def scale(self, workload: int | str, replicas: int, remove: Sequence[str] | None = None) -> tuple[str, ...]:
        """Set a workload's number of pods; returns the names of the pods created or deleted.

        Scaling out creates Pending pods at the workload's current size. Scaling in deletes the
        pods named in ``remove`` (which must be exactly the surplus, all of this workload), or,
        when ``remove`` is None or empty, Pending pods first and then the newest, as a
        ReplicaSet does; choosing which pods go is how a policy empties a node so that it can
        power down. Raises ValueError for negative replicas or a ``remove`` that does not match.
        """
        index = self._workload(workload)
        if replicas < 0:
            raise ValueError(f"scale({self.workload_names[index]!r}): replicas must be >= 0, got {replicas}")
        slots = self._workload_slots(index)
        surplus = len(slots) - replicas
        if remove:
            chosen = np.array([self._slot(name) for name in remove], dtype=np.int64)
            if len(chosen) != surplus or len(set(chosen.tolist())) != len(chosen):
                raise ValueError(
                    f"scale({self.workload_names[index]!r}, {replicas}): remove must name exactly the "
                    f"{max(surplus, 0)} distinct pods to delete, got {len(chosen)}"
                )
            if np.any(self._pods.workload[chosen] != index):
                raise ValueError(f"scale({self.workload_names[index]!r}): remove names pods of another workload")
            return self._delete(chosen)
        if surplus < 0:
            return self._create_workload_pods(index, -surplus, count_churn=True)
        if surplus == 0:
            return ()
        pods = self._pods
        # Pending first (bound sorts after unbound), newest first within each group.
        order = np.lexsort((-pods.serial[slots], pods.node[slots] != UNBOUND))
        return self._delete(slots[order[:surplus]])

    def migrate(self, pod: str, node: int | str | None = None) -> str | None:
        """Evict a workload pod through the Eviction API and re-create it, bound to ``node`` when
        given and it fits (else Pending); returns the replacement's name, or None when the
        workload's PDB refuses. The replacement pays a start-up and a warm-up; see
        :mod:`thrifty.sim.migration`."""
        return migration.migrate(self, pod, node)

    # ------------------------------------------------------------------- step

    def step(self) -> StepResult:
        """Advance one step and report it.

        Order of events: which pods can run (bound, node awake, not restarting); OOM kills;
        memory-pressure evictions; CPU demand from the traces, shared over the running replicas,
        throttled by limits and shared on contended nodes; latency and network; node power.
        Then the clock advances: restart and wake timers run down, empty nodes count idle time
        and enter standby, background pods arrive and leave.
        """
        cfg = self.config
        dt = cfg.step_seconds
        pods = self._pods
        n_nodes, n_workloads = len(self.node_names), len(self.workload_names)
        k = self._step_index % self._rate.shape[1]

        standby = self._standby.copy()
        node_ready = ~standby & (self._wake_remaining <= 0)
        candidates = np.flatnonzero(pods.alive & (pods.node != UNBOUND) & (pods.restart_remaining_seconds <= 0))
        candidates = candidates[node_ready[pods.node[candidates]]]
        row = self._series_row(pods.workload[candidates])
        column = (self._step_index + pods.phase_steps[candidates]) % self._memory.shape[1]
        if not self.scenario.replica_memory_phases:
            column = np.full(len(candidates), k)
        memory = np.where(row < n_workloads, self._memory[row, column], pods.background_memory_bytes[candidates])

        oom = memory > pods.memory_limit_bytes[candidates]
        oom_slots = candidates[oom]
        survivors, memory = candidates[~oom], memory[~oom]
        evicted = self._memory_pressure_evictions(survivors, memory)
        evicted_slots = survivors[evicted]
        running, memory = survivors[~evicted], memory[~evicted]

        row = self._series_row(pods.workload[running])
        owned = row < n_workloads
        replicas = np.bincount(row, minlength=n_workloads + 1)[:n_workloads]
        rate = self._rate[:n_workloads, k]
        if cfg.poisson_arrivals:
            rate = self._rng.poisson(rate * dt) / dt
        # Each running replica's share of its workload's request-driven and shared CPU: its
        # weight over the running replicas' total (1 / replicas with equal weights).
        # (A product then a quotient, so that equal weights give exactly x / replicas.)
        weight = pods.cpu_weight[running]
        weight_total = np.bincount(row, weights=weight, minlength=n_workloads + 1)[row]
        if self.scenario.replica_cpu_phases:
            baseline = self._baseline[row, (self._step_index + pods.phase_steps[running]) % self._baseline.shape[1]]
        else:
            baseline = self._baseline[row, k]
        # CPU a replica spends whatever its requests: its baseline and its share of shared work
        # (0 for a background pod: row W of the series is zeros).
        overhead = baseline + np.append(self._shared[:n_workloads, k], 0.0)[row] * weight / weight_total
        driven = np.append(rate * self._work, 0.0)[row] * weight / weight_total
        demand = np.where(owned, overhead + driven, pods.background_cpu_millicores[running])
        limit = pods.cpu_limit_millicores[running]
        capped, denied = throttle(demand, limit)
        node = pods.node[running]
        usage, contended = share_node_cpu(capped, pods.cpu_request_millicores[running], node, self._node_cpu)

        node_cpu = np.bincount(node, weights=usage, minlength=n_nodes)
        node_memory = np.bincount(node, weights=memory, minlength=n_nodes)
        spare = np.maximum(self._node_cpu - node_cpu, 0.0)
        available = np.where(contended[node], usage, np.minimum(limit, usage + spare[node]))
        serving = np.maximum(available - overhead, 0.0)
        serving_total = np.bincount(row, weights=serving, minlength=n_workloads + 1)[:n_workloads]
        serving_total -= migration.warm_up_loss(serving, pods.warmup_remaining_seconds[running], row, n_workloads,
                                                cfg.migration)
        service_rate = service_rate_per_second(serving_total / np.maximum(replicas, 1), self._work)

        network = self._network(rate, row[owned], node[owned])
        latency = response_time_percentile(
            rate,
            service_rate,
            replicas,
            extra_latency_seconds=network.added_latency_seconds,
            config=cfg.latency,
        )
        violated = latency.saturated | (latency.p95_seconds > self._slo)

        def per_workload(values: np.ndarray) -> np.ndarray:
            return np.bincount(row, weights=values, minlength=n_workloads + 1)[:n_workloads]

        demand_total = per_workload(demand)
        with np.errstate(divide="ignore", invalid="ignore"):
            throttled_fraction = np.where(demand_total > 0, per_workload(demand - capped) / demand_total, 0.0)
            contended_fraction = np.where(demand_total > 0, per_workload(capped - usage) / demand_total, 0.0)
        oom_kills = self._count_per_workload(oom_slots)
        evictions = self._count_per_workload(evicted_slots)

        node_watts = self.power_model.node_watts(self._node_table(node_cpu, node_memory, standby), node_cpu)
        node_energy = float(node_watts.sum()) * dt
        network_energy = network.total_watts * dt

        pods.record(running, usage, memory, np.where(denied > 0, dt / cfg.cfs_period_seconds, 0.0), oom_slots)
        self._restart_after_oom(oom_slots)
        pods.consecutive_ooms[running] = 0
        self._evict(evicted_slots)

        self._advance_clock()
        # Copies: the StepResult's arrays belong to the caller, who may modify them.
        self._node_cpu_usage, self._node_memory_usage = node_cpu.copy(), node_memory
        self._request_rate, self._latency = rate.copy(), latency.p95_seconds.copy()
        churn, self._churn = self._churn, np.zeros(n_workloads, dtype=np.int64)
        voluntary, self._voluntary_evictions = self._voluntary_evictions, np.zeros(n_workloads, dtype=np.int64)
        pending = np.flatnonzero(pods.alive & (pods.node == UNBOUND))
        return StepResult(
            step_index=self._step_index - 1,
            time_seconds=self._time,
            node_watts=node_watts,
            node_cpu_usage_millicores=node_cpu,
            node_standby=standby,
            node_energy_joules=node_energy,
            network_energy_joules=network_energy,
            workload_request_rate_per_second=rate,
            workload_running_replicas=replicas,
            workload_latency_p95_seconds=latency.p95_seconds,
            workload_utilisation=latency.utilisation,
            workload_slo_violated=violated,
            workload_oom_kills=oom_kills,
            workload_evictions=evictions,
            workload_throttled_fraction=throttled_fraction,
            workload_contended_fraction=contended_fraction,
            workload_cross_node_calls_per_second=np.bincount(
                self._dependency_source, weights=network.cross_node_calls_per_second, minlength=n_workloads
            ),
            workload_network_watts=network.watts,
            workload_churn=churn,
            workload_voluntary_evictions=voluntary,
            pending_pods=len(pending),
            unschedulable_pods=self._count_unschedulable(pending),
            evictions=len(evicted_slots),
            step_seconds=dt,
        )

    # --------------------------------------------------------------- snapshot

    def snapshot(self) -> ClusterSnapshot:
        """The cluster now, as the live operator would observe it.

        Pods are the live ones in slot order (stable while no pod is created or deleted; a new
        pod may take a deleted pod's row, so row order is not age order: use ``age_seconds``).
        Each has one container carrying the last ``history_window_samples`` usage samples, oldest
        first (NaN where the pod did not run), and the throttled periods and OOM kills within
        that window. Usage figures are those of the last step (NaN before the first). Every
        array is a copy: modifying the snapshot does not touch the simulator.
        """
        pods = self._pods
        slots = np.flatnonzero(pods.alive)
        names, container_names = self._names(slots)
        workload_index = pods.workload[slots]
        requests_and_limits = {
            "cpu_request_millicores": pods.cpu_request_millicores[slots],
            "cpu_limit_millicores": pods.cpu_limit_millicores[slots],
            "memory_request_bytes": pods.memory_request_bytes[slots],
            "memory_limit_bytes": pods.memory_limit_bytes[slots],
        }
        pod_table = PodTable(
            names=names,
            workload_index=workload_index,
            node_index=pods.node[slots],
            cpu_usage_millicores=pods.cpu_usage_millicores[slots],
            memory_usage_bytes=pods.memory_usage_bytes[slots],
            age_seconds=self._time - pods.created_seconds[slots],
            **requests_and_limits,
        )
        rows = pods.history_rows()

        def window(history: np.ndarray) -> np.ndarray:
            # A fresh (window, pods) copy, returned transposed: (pods, window) in Fortran order,
            # which numpy reduces along axis 1 as fast as a C-ordered copy, for one copy less.
            return np.take(history[rows], slots, axis=1).T

        containers = ContainerTable(
            pod_index=np.arange(len(slots), dtype=np.int64),
            names=container_names,
            workload_index=workload_index,
            cpu_history_millicores=window(pods.cpu_history_millicores),
            memory_history_bytes=window(pods.memory_history_bytes),
            history_step_seconds=self.config.step_seconds,
            throttled_periods_total=pods.throttled_periods_in_window[slots],
            oom_kills_total=pods.oom_kills_in_window[slots],
            **requests_and_limits,
        )
        n_workloads = len(self.workload_names)
        workloads = WorkloadTable(
            names=self.workload_names,
            replicas=np.bincount(self._series_row(workload_index), minlength=n_workloads + 1)[:n_workloads],
            request_rate_per_second=self._request_rate.copy(),
            latency_p95_seconds=self._latency.copy(),
            **{key: value.copy() for key, value in self._workload_table_static.items()},
        )
        return ClusterSnapshot(
            time_seconds=self._time,
            nodes=self._node_table(self._node_cpu_usage, self._node_memory_usage, self._standby),
            pods=pod_table,
            containers=containers,
            workloads=workloads,
            dependencies=DependencyTable(
                source=self._dependency_source.copy(),
                target=self._dependency_target.copy(),
                weight=self._dependency_weight.copy(),
            ),
        )

    # ---------------------------------------------------------------- helpers

    def _slot(self, pod: str) -> int:
        try:
            return self._pods.slot_of[pod]
        except KeyError:
            raise KeyError(f"no pod named {pod!r}") from None

    def _node(self, node: int | str) -> int:
        if isinstance(node, str):
            try:
                return self._node_position[node]
            except KeyError:
                raise KeyError(f"no node named {node!r}") from None
        index = int(node)
        if not 0 <= index < len(self.node_names):
            raise IndexError(f"node index {index} outside [0, {len(self.node_names)})")
        return index

    def _workload(self, workload: int | str) -> int:
        if isinstance(workload, str):
            try:
                return self._workload_position[workload]
            except KeyError:
                raise KeyError(f"no workload named {workload!r}") from None
        index = int(workload)
        if not 0 <= index < len(self.workload_names):
            raise IndexError(f"workload index {index} outside [0, {len(self.workload_names)})")
        return index

    def _series_row(self, workload: np.ndarray) -> np.ndarray:
        """Row of the stacked series for each pod: its workload, or W for a background pod."""
        return np.where(workload >= 0, workload, len(self.workload_names))

    def _workload_slots(self, index: int) -> np.ndarray:
        pods = self._pods
        slots = np.flatnonzero(pods.alive & (pods.workload == index))
        return slots[np.argsort(pods.serial[slots], kind="stable")]

    def _fits(self, node: int, cpu_millicores: float, memory_bytes: float) -> bool:
        free_cpu = self._node_cpu[node] - self._node_cpu_requested[node]
        free_memory = self._node_memory[node] - self._node_memory_requested[node]
        return bool(
            cpu_millicores <= free_cpu + _FIT_TOLERANCE * self._node_cpu[node]
            and memory_bytes <= free_memory + _FIT_TOLERANCE * self._node_memory[node]
        )

    def _create_workload_pods(self, index: int, count: int, *, count_churn: bool) -> tuple[str, ...]:
        if count == 0:
            return ()
        first = int(self._name_counter[index])
        self._name_counter[index] += count
        names = [f"{self.workload_names[index]}-{first + i}" for i in range(count)]
        cpu_request, cpu_limit, memory_request, memory_limit = self._template[index]
        numbers = np.arange(first, first + count)
        phases: np.ndarray | int = 0
        if self.scenario.replica_memory_phases or self.scenario.replica_cpu_phases:
            phases = replica_phase_steps(index, numbers, self._memory.shape[1])
        weights: np.ndarray | float = 1.0
        if self.scenario.replica_cpu_spread > 0:
            weights = replica_cpu_weights(self.scenario.replica_seed, index, numbers, self.scenario.replica_cpu_spread)
        self._pods.add(
            names,
            workload=index,
            cpu_request_millicores=cpu_request,
            cpu_limit_millicores=cpu_limit,
            memory_request_bytes=memory_request,
            memory_limit_bytes=memory_limit,
            created_seconds=self._time,
            phase_steps=phases,
            cpu_weight=weights,
        )
        self._names_version += 1
        if count_churn:
            self._churn[index] += count
        return tuple(names)

    def _delete(self, slots: np.ndarray, *, count_churn: bool = True) -> tuple[str, ...]:
        """Delete pods, releasing their nodes' requests; returns their names."""
        pods = self._pods
        names = tuple(pods.names[s] for s in slots.tolist())
        bound = slots[pods.node[slots] != UNBOUND]
        n_nodes = len(self.node_names)
        node = pods.node[bound]
        self._node_cpu_requested -= np.bincount(node, weights=pods.cpu_request_millicores[bound], minlength=n_nodes)
        self._node_memory_requested -= np.bincount(node, weights=pods.memory_request_bytes[bound], minlength=n_nodes)
        self._node_pods -= np.bincount(node, minlength=n_nodes)
        if count_churn:
            owned = pods.workload[slots]
            owned = owned[owned >= 0]
            self._churn += np.bincount(owned, minlength=len(self.workload_names))
        if len(self._background_slot):
            self._background_slot[np.isin(self._background_slot, slots)] = -1
        pods.remove(slots)
        self._names_version += 1
        return names

    def _count_per_workload(self, slots: np.ndarray) -> np.ndarray:
        workload = self._pods.workload[slots]
        return np.bincount(workload[workload >= 0], minlength=len(self.workload_names))

    def _memory_pressure_evictions(self, slots: np.ndarray, memory: np.ndarray) -> np.ndarray:
        """bool mask over ``slots``: pods kubelet evicts because their node is out of memory.

        On a node whose pods use more memory than it has, pods using more than their request
        go first, largest excess first, until the rest fit. That always suffices: the bind
        check keeps the sum of requests within the node.
        """
        pods = self._pods
        n_nodes = len(self.node_names)
        node = pods.node[slots]
        node_memory = np.bincount(node, weights=memory, minlength=n_nodes)
        evicted = np.zeros(len(slots), dtype=bool)
        pressured = node_memory > self._node_memory
        if not np.any(pressured):
            return evicted
        excess = memory - pods.memory_request_bytes[slots]
        candidates = np.flatnonzero(pressured[node] & (excess > 0))
        order = candidates[np.lexsort((-excess[candidates], node[candidates]))]
        ordered_node, ordered_memory = node[order], memory[order]
        cumulative = np.cumsum(ordered_memory)
        starts = np.flatnonzero(np.r_[True, ordered_node[1:] != ordered_node[:-1]])
        group = np.cumsum(np.r_[True, ordered_node[1:] != ordered_node[:-1]]) - 1
        released_before = cumulative - ordered_memory - (cumulative - ordered_memory)[starts][group]
        still_over = node_memory[ordered_node] - released_before > self._node_memory[ordered_node]
        evicted[order[still_over]] = True
        return evicted

    def _evict(self, slots: np.ndarray) -> None:
        """Delete evicted pods; replace each workload pod by a Pending one (as a ReplicaSet)."""
        if len(slots) == 0:
            return
        workload = self._pods.workload[slots]
        self._delete(slots, count_churn=False)
        replaced = np.bincount(workload[workload >= 0], minlength=len(self.workload_names))
        for index in np.flatnonzero(replaced).tolist():
            self._create_workload_pods(index, int(replaced[index]), count_churn=False)

    def _restart_after_oom(self, slots: np.ndarray) -> None:
        pods = self._pods
        pods.consecutive_ooms[slots] += 1
        backoff = self.config.restart_backoff_initial_seconds * 2.0 ** (pods.consecutive_ooms[slots] - 1)
        pods.restart_remaining_seconds[slots] = np.minimum(backoff, self.config.restart_backoff_max_seconds)

    def _network(self, rate: np.ndarray, workload: np.ndarray, node: np.ndarray) -> NetworkEffect:
        return network_effect(
            rate,
            workload,
            node,
            self._dependency_source,
            self._dependency_target,
            self._calls_per_request,
            self._bytes_per_call,
            self.config.network,
        )

    def _advance_clock(self) -> None:
        dt = self.config.step_seconds
        pods = self._pods
        np.maximum(pods.restart_remaining_seconds - dt, 0.0, out=pods.restart_remaining_seconds)
        np.maximum(pods.warmup_remaining_seconds - dt, 0.0, out=pods.warmup_remaining_seconds)
        np.maximum(self._wake_remaining - dt, 0.0, out=self._wake_remaining)
        empty = self._node_pods == 0
        self._idle_seconds = np.where(empty, self._idle_seconds + dt, 0.0)
        self._standby |= empty & (self._idle_seconds >= self.config.standby_after_idle_seconds)
        self._step_index += 1
        self._time = self._step_index * dt
        self._background_events()

    def _background_events(self) -> None:
        """Create background pods whose arrival has come; delete those whose departure has."""
        background = self.scenario.background
        if background is None:
            return
        gone = np.flatnonzero((self._background_slot >= 0) & (background.departure_seconds <= self._time))
        if len(gone):
            self._delete(self._background_slot[gone], count_churn=False)
        order = self._background_arrival_order
        start = self._background_next
        stop = start + int(np.searchsorted(background.arrival_seconds[order[start:]], self._time, side="right"))
        arriving = order[start:stop]
        arriving = arriving[background.departure_seconds[arriving] > self._time]
        self._background_next = stop
        if len(arriving) == 0:
            return
        slots = self._pods.add(
            [background.names[i] for i in arriving.tolist()],
            workload=-1,
            cpu_request_millicores=background.cpu_request_millicores[arriving],
            cpu_limit_millicores=np.inf,
            memory_request_bytes=background.memory_request_bytes[arriving],
            memory_limit_bytes=np.inf,
            created_seconds=self._time,
            background_cpu_millicores=background.cpu_usage_millicores[arriving],
            background_memory_bytes=background.memory_usage_bytes[arriving],
        )
        self._background_slot[arriving] = slots
        self._names_version += 1

    def _count_unschedulable(self, pending: np.ndarray) -> int:
        """Pending pods whose requests fit in no schedulable node's free capacity."""
        if len(pending) == 0:
            return 0
        pods = self._pods
        free_cpu = np.where(self._schedulable, self._node_cpu - self._node_cpu_requested, -np.inf)
        free_memory = np.where(self._schedulable, self._node_memory - self._node_memory_requested, -np.inf)
        # Nodes by free CPU, most first: the nodes with enough CPU for a pod are a prefix, and
        # the pod fits somewhere iff the most free memory within that prefix is enough.
        order = np.argsort(-free_cpu, kind="stable")
        cpu_descending = free_cpu[order] * (1 + _FIT_TOLERANCE)
        most_memory = np.maximum.accumulate(free_memory[order] * (1 + _FIT_TOLERANCE))
        enough_cpu = np.searchsorted(-cpu_descending, -pods.cpu_request_millicores[pending], side="right")
        fits = (enough_cpu > 0) & (
            most_memory[np.maximum(enough_cpu - 1, 0)] >= pods.memory_request_bytes[pending]
        )
        return int(np.count_nonzero(~fits))

    def _node_table(self, cpu_usage: np.ndarray, memory_usage: np.ndarray, standby: np.ndarray) -> NodeTable:
        return NodeTable(
            names=self.node_names,
            cpu_capacity_millicores=self._node_cpu.copy(),
            memory_capacity_bytes=self._node_memory.copy(),
            cpu_requested_millicores=self._node_cpu_requested.copy(),
            memory_requested_bytes=self._node_memory_requested.copy(),
            cpu_usage_millicores=cpu_usage.copy(),
            memory_usage_bytes=memory_usage.copy(),
            power_class=self._power_class,
            schedulable=self._schedulable.copy(),
            standby=standby.copy(),
        )

    def _names(self, slots: np.ndarray) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """Pod and container names of the live slots, cached until a pod is created or deleted."""
        if self._names_cache is None or self._names_cache[0] != self._names_version:
            pods = self._pods
            names = tuple(pods.names[s] for s in slots.tolist())
            containers = tuple(
                WORKLOAD_CONTAINER if w >= 0 else BACKGROUND_CONTAINER for w in pods.workload[slots].tolist()
            )
            self._names_cache = (self._names_version, names, containers)
        return self._names_cache[1], self._names_cache[2]


def _live_name(name: str | None) -> str:
    """A live slot's pod name (only a free slot has none)."""
    assert name is not None, "a free pod slot"
    return name


def replica_phase_steps(workload: int, pod_numbers: np.ndarray, horizon_steps: int) -> np.ndarray:
    """The memory phase of a workload's pods by their number (``name-N``): a fixed hash, so that a
    pod's phase depends on neither the seed's random stream (every policy must see the same
    arrivals) nor on which policy created it. Pod 0 reads the series unshifted."""
    # Knuth's multiplicative hash spreads consecutive numbers over the horizon.
    mixed = (np.asarray(pod_numbers, dtype=np.int64) * 2654435761 + workload * 40503) % (2**32)
    return np.where(np.asarray(pod_numbers) == 0, 0, mixed % max(horizon_steps, 1)).astype(np.int64)


def replica_cpu_weights(seed: int, workload: int, pod_numbers: np.ndarray, spread: float) -> np.ndarray:
    """The CPU weights of a workload's pods by their number (``name-N``), uniform in
    ``[1 - spread, 1 + spread)``: a fixed hash (SplitMix64's finaliser) of the seed, the workload
    and the number, so that, like :func:`replica_phase_steps`, a pod's weight depends neither on
    the simulator's random stream nor on the policy that created it."""
    with np.errstate(over="ignore"):
        x = (np.uint64(seed % 2**64) * np.uint64(0x9E3779B97F4A7C15)
             + np.uint64(workload) * np.uint64(0xBF58476D1CE4E5B9)
             + np.asarray(pod_numbers, dtype=np.uint64) * np.uint64(0x94D049BB133111EB) + np.uint64(1))
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    uniform = (x >> np.uint64(11)).astype(float) / 2.0**53
    return 1.0 + spread * (2.0 * uniform - 1.0)
