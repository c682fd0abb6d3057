"""The Vertical Pod Autoscaler: its recommender's algorithm and its updater's rule.

Upstream: ``kubernetes/autoscaler`` ``vertical-pod-autoscaler/pkg/``:

* ``recommender/model/aggregate_container_state.go``, ``recommender/model/container.go``,
  ``recommender/model/aggregations_config.go``: what is aggregated, per workload and container
  name, over all its pods;
* ``recommender/logic/recommender.go``, ``recommender/logic/estimator.go``: the estimators;
* ``updater/priority/update_priority_calculator.go``, ``updater/priority/priority_processor.go``:
  when a pod is actually resized.

The recommender, with upstream's defaults:

* **CPU**: every usage sample (cores) goes into a decaying histogram (24 h half-life,
  exponential buckets from 0.01 core growing by 5 %), weighted by the container's CPU request
  in cores (at least 0.1), so that history decays faster after the request grows.
* **Memory**: each pod's container contributes one sample per 24 h aggregation interval, its
  peak in that interval (a higher sample replaces the interval's peak), into a decaying
  histogram (24 h half-life, buckets from 10 MB growing by 5 %). An **OOM kill** adds the
  sample ``max(used + 100 MiB, used x 1.2)``, ``used = max(memory request, interval peak)``.
* **Estimates**: target = P90 x (1 + 15 % margin); lower bound = P50 x margin x
  ``(1 + 0.001/c)**-2``; upper bound = P95 x margin x ``(1 + 1/c)``, where ``c`` is the
  history's length in days (capped by samples / 1440); then at least the pod minimum (25m CPU,
  250 MiB) divided among the pod's containers; then capped to the container's bounds.

The updater resizes a pod to the target when a controlled request lies outside
``[lower bound, upper bound]``, when the container was OOM-killed recently ("quick OOM"), or
when the pod is older than 12 h and ``sum |request - target| / request >= 10 %``. The simulator
has no container start times, so any OOM kill within the history window counts as quick; this
errs in the VPA's favour. Resizes are in place (VPA's ``InPlaceOrRecreate`` mode), limits keep
their ratio to requests (the decision core does that), and the safety pipeline bounds them like
every other policy's. Thrifty sizes all pods of a workload alike, so once the updater would
resize any pod of a workload, all of them go to the target; and a new pod starts at the
workload's current size, where upstream's admission controller would give it the target.

The recommender's first bucket was 0.01 core for years; recent upstream uses 0.001 core
(``cpu_first_bucket_cores``). Its samples come from the snapshot's usage history, so the first
call ingests the whole window, as a recommender restarted with Prometheus history does.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from thrifty import __version__
from thrifty.actions import SizingProposal, keep_proposal
from thrifty.baselines.histogram import MIN_SAMPLE_WEIGHT, DecayingHistogram, ExponentialBuckets, add_samples
from thrifty.baselines.kube_scheduler import KubeDefaultScoring, PlacedByKubeScheduler
from thrifty.policy.base import PolicyInfo
from thrifty.snapshot import ClusterSnapshot, ContainerTable

MEBIBYTE = 2**20
DAY_SECONDS = 86_400.0
SAMPLES_PER_DAY = 60 * 24
"""Confidence counts samples in days at upstream's one sample per minute."""
CPU, MEMORY = "cpu", "memory"


@dataclass(frozen=True, kw_only=True)
class VpaConfig:
    """The recommender's and updater's flags that matter here, with upstream's defaults."""

    controlled_resources: tuple[str, ...] = (CPU, MEMORY)
    """``resourcePolicy.containerPolicies[].controlledResources``: what the VPA resizes."""
    target_cpu_percentile: float = 0.9
    lower_bound_cpu_percentile: float = 0.5
    upper_bound_cpu_percentile: float = 0.95
    target_memory_percentile: float = 0.9
    lower_bound_memory_percentile: float = 0.5
    upper_bound_memory_percentile: float = 0.95
    safety_margin_fraction: float = 0.15
    """``--recommendation-margin-fraction``: added on top of every percentile."""
    pod_min_cpu_millicores: float = 25.0
    """``--pod-recommendation-min-cpu-millicores``."""
    pod_min_memory_bytes: float = 250.0 * MEBIBYTE
    """``--pod-recommendation-min-memory-mb`` (MiB upstream)."""
    cpu_half_life_seconds: float = DAY_SECONDS
    memory_half_life_seconds: float = DAY_SECONDS
    memory_aggregation_interval_seconds: float = DAY_SECONDS
    cpu_first_bucket_cores: float = 0.01
    memory_first_bucket_bytes: float = 1e7
    bucket_growth: float = 0.05
    """Each bucket is this fraction wider than the one before."""
    oom_bump_up_ratio: float = 1.2
    oom_min_bump_up_bytes: float = 100.0 * MEBIBYTE
    update_threshold: float = 0.1
    """Updater's ``MinChangePriority``: least summed relative change for a routine update."""
    pod_lifetime_update_threshold_seconds: float = 12 * 3600.0
    """Updater's ``--pod-lifetime-update-threshold``: younger pods are resized only when out of
    the recommended range or after a quick OOM."""

    def __post_init__(self) -> None:
        unknown = set(self.controlled_resources) - {CPU, MEMORY}
        if unknown or not self.controlled_resources:
            raise ValueError(f"VpaConfig.controlled_resources: must be a non-empty subset of (cpu, memory), "
                             f"got {self.controlled_resources!r}")
        for name in ("target_cpu_percentile", "lower_bound_cpu_percentile", "upper_bound_cpu_percentile",
                     "target_memory_percentile", "lower_bound_memory_percentile", "upper_bound_memory_percentile"):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise ValueError(f"VpaConfig.{name}: must lie in (0, 1], got {getattr(self, name)!r}")
        if self.safety_margin_fraction < 0:
            raise ValueError(f"VpaConfig.safety_margin_fraction: must be >= 0, got {self.safety_margin_fraction!r}")


@dataclass(frozen=True)
class Recommendation:
    """Target and bounds of one container, millicores and bytes (NaN: resource not known)."""

    cpu_target: float
    cpu_lower: float
    cpu_upper: float
    memory_target: float
    memory_lower: float
    memory_upper: float


@dataclass
class _Aggregate:
    """``AggregateContainerState``: one per workload and container name."""

    cpu: DecayingHistogram
    memory_peaks: DecayingHistogram
    first_cpu_sample: float = np.inf
    last_cpu_sample: float = -np.inf
    cpu_samples: int = 0

    def confidence_days(self) -> float:
        """``getConfidence``: history length in days, capped by sample count in days."""
        if self.cpu_samples == 0:
            return 0.0
        return min((self.last_cpu_sample - self.first_cpu_sample) / DAY_SECONDS, self.cpu_samples / SAMPLES_PER_DAY)


@dataclass
class _ContainerState:
    """``ContainerState``: one per pod's container, for per-interval memory peaks and OOMs."""

    aggregate: _Aggregate
    last_cpu_sample: float = -np.inf
    last_memory_sample: float = -np.inf
    window_end: float | None = None
    memory_peak: float = 0.0
    oom_peak: float = 0.0
    oom_kills_seen: float = 0.0


@dataclass
class VpaRecommender(PlacedByKubeScheduler):
    """The VPA (recommender + updater) as a sizing policy; replicas are kept as they are.

    State (histograms, per-container peaks) lives in the object and is updated from every
    snapshot passed to :meth:`size`. Pods are placed by the default kube-scheduler profile.
    """

    config: VpaConfig = field(default_factory=VpaConfig)
    placement: KubeDefaultScoring = field(default_factory=KubeDefaultScoring)

    def __post_init__(self) -> None:
        cfg = self.config
        self._cpu_buckets = ExponentialBuckets(1000.0, cfg.cpu_first_bucket_cores, 1.0 + cfg.bucket_growth)
        self._memory_buckets = ExponentialBuckets(1e12, cfg.memory_first_bucket_bytes, 1.0 + cfg.bucket_growth)
        self._aggregates: dict[tuple[str, str], _Aggregate] = {}
        self._containers: dict[tuple[str, str], _ContainerState] = {}
        self.info = PolicyInfo(name="vpa", version=__version__, backend="baseline")

    # ------------------------------------------------------------------ feeding

    def _aggregate(self, key: tuple[str, str]) -> _Aggregate:
        if key not in self._aggregates:
            self._aggregates[key] = _Aggregate(
                cpu=DecayingHistogram(self._cpu_buckets, self.config.cpu_half_life_seconds),
                memory_peaks=DecayingHistogram(self._memory_buckets, self.config.memory_half_life_seconds))
        return self._aggregates[key]

    def _add_memory_sample(self, state: _ContainerState, usage: float, time: float, *, oom: bool) -> None:
        """``ContainerState.addMemorySample``: keep one peak per aggregation interval."""
        if not oom and time < state.last_memory_sample:
            return
        state.last_memory_sample = time
        interval = self.config.memory_aggregation_interval_seconds
        if state.window_end is None:
            state.window_end = time
        histogram = state.aggregate.memory_peaks
        add_peak = False
        if time < state.window_end:
            old_peak = max(state.memory_peak, state.oom_peak)
            if old_peak != 0 and usage > old_peak:
                histogram.subtract(old_peak, 1.0, state.window_end)
                add_peak = True
        else:
            state.window_end += (time - state.window_end) // interval * interval + interval
            state.memory_peak = state.oom_peak = 0.0
            add_peak = True
        if add_peak:
            histogram.add(usage, 1.0, state.window_end)
            if oom:
                state.oom_peak = usage
            else:
                state.memory_peak = usage

    def _record_oom(self, state: _ContainerState, time: float, memory_request: float) -> None:
        """``ContainerState.RecordOOM``: an artificial sample above what the container had."""
        interval = self.config.memory_aggregation_interval_seconds
        if state.window_end is not None and time < state.window_end - interval:
            return
        used = max(memory_request, state.memory_peak)
        needed = max(used + self.config.oom_min_bump_up_bytes, used * self.config.oom_bump_up_ratio)
        self._add_memory_sample(state, needed, time, oom=True)

    def observe(self, snapshot: ClusterSnapshot) -> None:
        """Feed the usage samples and OOM kills of ``snapshot`` not seen before.

        Vectorised over containers and samples; the result is that of feeding every container's
        samples one by one in row order (:class:`thrifty.baselines.reference.ReferenceVpa`, which
        ``tests/unit/test_baselines_vectorised.py`` compares it with, histograms to the last bit).
        What stays a loop: one dictionary look-up per container for its state, the memory samples
        of a container that opens a new aggregation interval (once a day), and each new memory
        peak (a histogram subtract and add, in order)."""
        containers, pods, workloads = snapshot.containers, snapshot.pods, snapshot.workloads
        window = containers.cpu_history_millicores.shape[1]
        times = snapshot.time_seconds - containers.history_step_seconds * (window - np.arange(window))
        rows = np.flatnonzero(containers.workload_index >= 0)
        states: list[_ContainerState] = []
        live = set()
        for r in rows.tolist():
            key = (pods.names[containers.pod_index[r]], containers.names[r])
            live.add(key)
            state = self._containers.get(key)
            if state is None:
                aggregate = self._aggregate((workloads.names[containers.workload_index[r]], containers.names[r]))
                state = self._containers[key] = _ContainerState(aggregate)
            states.append(state)
        for key in set(self._containers) - live:
            del self._containers[key]
        if len(rows) == 0:
            return

        # CPU: every new sample, row by row (row-major), into its aggregate's histogram at once.
        cpu = containers.cpu_history_millicores[rows]
        last_cpu = np.array([state.last_cpu_sample for state in states])
        new_cpu = np.isfinite(cpu) & (times[None, :] > last_cpu[:, None])
        row, column = np.nonzero(new_cpu)
        if len(row):
            aggregates = [state.aggregate for state in states]
            index = {id(a): i for i, a in enumerate(aggregates)}
            which = np.array([index[id(a)] for a in aggregates])[row]
            sample_times = times[column]
            sample_weight = np.maximum(containers.cpu_request_millicores[rows] / 1000.0, MIN_SAMPLE_WEIGHT)
            add_samples([a.cpu for a in aggregates], which, cpu[row, column] / 1000.0, sample_weight[row],
                        sample_times)
            used, count = np.unique(which, return_counts=True)
            earliest = np.full(len(aggregates), np.inf)
            latest = np.full(len(aggregates), -np.inf)
            np.minimum.at(earliest, which, sample_times)
            np.maximum.at(latest, which, sample_times)
            for i, n in zip(used.tolist(), count.tolist(), strict=True):
                aggregate = aggregates[i]
                aggregate.first_cpu_sample = min(aggregate.first_cpu_sample, earliest[i])
                aggregate.last_cpu_sample = max(aggregate.last_cpu_sample, latest[i])
                aggregate.cpu_samples += n
            newest_cpu = times[window - 1 - np.argmax(new_cpu[:, ::-1], axis=1)]
            for i in np.flatnonzero(new_cpu.any(axis=1)).tolist():
                states[i].last_cpu_sample = newest_cpu[i]

        # Memory: within an aggregation interval a sample matters only if it beats the running
        # peak; find those for every container at once, then apply them (and OOMs) in row order.
        memory = containers.memory_history_bytes[rows]
        last_memory = np.array([state.last_memory_sample for state in states])
        new_memory = np.isfinite(memory) & (times[None, :] > last_memory[:, None])
        has_memory = new_memory.any(axis=1)
        newest_memory = times[window - 1 - np.argmax(new_memory[:, ::-1], axis=1)]
        window_end = np.array([np.nan if state.window_end is None else state.window_end for state in states])
        old_peak = np.array([max(state.memory_peak, state.oom_peak) for state in states])
        # Rows the scalar rule must handle: no interval yet, an interval that ends within the
        # new samples, or no peak yet in the interval.
        slow = has_memory & ~((newest_memory < window_end) & (old_peak != 0))
        candidates = np.where(new_memory, memory, -np.inf)
        running = np.maximum.accumulate(np.concatenate([old_peak[:, None], candidates], axis=1), axis=1)
        beats = new_memory & (candidates > running[:, :-1]) & ~slow[:, None]
        kills = containers.oom_kills_total[rows].astype(float)
        seen = np.array([state.oom_kills_seen for state in states])
        killed = kills > seen
        for i in np.flatnonzero(slow | beats.any(axis=1) | killed).tolist():
            state = states[i]
            if slow[i]:
                for j in np.flatnonzero(new_memory[i]).tolist():
                    self._add_memory_sample(state, float(memory[i, j]), float(times[j]), oom=False)
            else:
                histogram, interval_end = state.aggregate.memory_peaks, state.window_end
                for j in np.flatnonzero(beats[i]).tolist():
                    assert interval_end is not None  # a row with a new peak is in an interval
                    histogram.subtract(max(state.memory_peak, state.oom_peak), 1.0, interval_end)
                    state.memory_peak = float(memory[i, j])
                    histogram.add(state.memory_peak, 1.0, interval_end)
                if has_memory[i]:
                    state.last_memory_sample = float(newest_memory[i])
            if killed[i]:
                # The snapshot counts kills over a sliding window: a rise is a new kill.
                self._record_oom(state, snapshot.time_seconds, float(containers.memory_request_bytes[rows[i]]))
        for i in np.flatnonzero(has_memory & ~slow & ~beats.any(axis=1) & ~killed).tolist():
            states[i].last_memory_sample = float(newest_memory[i])
        for state, count in zip(states, kills.tolist(), strict=True):
            state.oom_kills_seen = count

    # ------------------------------------------------------------ recommending

    def recommend(self, workload: str, container: str, containers_per_pod: int = 1) -> Recommendation | None:
        """The recommender's output for one container of a workload; None before any sample."""
        aggregate = self._aggregates.get((workload, container))
        if aggregate is None or aggregate.cpu.is_empty():
            return None
        cfg = self.config
        margin = 1.0 + cfg.safety_margin_fraction
        confidence = aggregate.confidence_days()
        upper_factor = 1.0 + 1.0 / confidence if confidence > 0 else np.inf
        lower_factor = (1.0 + 0.001 / confidence) ** -2 if confidence > 0 else 0.0
        min_cpu = cfg.pod_min_cpu_millicores / containers_per_pod
        min_memory = cfg.pod_min_memory_bytes / containers_per_pod
        factors = np.array([1.0, lower_factor, upper_factor]) * margin
        cpu = aggregate.cpu.percentiles(
            [cfg.target_cpu_percentile, cfg.lower_bound_cpu_percentile, cfg.upper_bound_cpu_percentile])
        memory = aggregate.memory_peaks.percentiles(
            [cfg.target_memory_percentile, cfg.lower_bound_memory_percentile, cfg.upper_bound_memory_percentile])
        with np.errstate(invalid="ignore"):  # 0 x inf (empty histogram, no history): no upper bound
            cpu = np.maximum(np.nan_to_num(cpu * 1000.0 * factors, nan=np.inf), min_cpu)
            memory = np.maximum(np.nan_to_num(memory * factors, nan=np.inf), min_memory)
        return Recommendation(*cpu.tolist(), *memory.tolist())

    def _should_update(self, request: dict[str, float], target: dict[str, float], lower: dict[str, float],
                       upper: dict[str, float], *, age_seconds: float, oom_killed: bool) -> bool:
        """The updater's rule for one pod (see the module docstring)."""
        outside = any(request[r] < lower[r] or request[r] > upper[r] for r in target)
        diff = sum(abs(request[r] - target[r]) / max(request[r], 1.0) for r in target)
        if oom_killed and MEMORY in target:
            return diff > 0
        if outside:
            return True
        return age_seconds >= self.config.pod_lifetime_update_threshold_seconds and diff >= self.config.update_threshold

    def size(self, snapshot: ClusterSnapshot) -> SizingProposal:
        """The updater's rule (:meth:`_should_update`) for every pod at once, with the results of
        the per-pod rule (:class:`thrifty.baselines.reference.ReferenceVpa`): one recommendation
        per workload and container name, then the rule over all container rows together."""
        self.observe(snapshot)
        proposal = keep_proposal(snapshot)
        containers, pods = snapshot.containers, snapshot.pods
        controlled = [r for r in (CPU, MEMORY) if r in self.config.controlled_resources]
        cfg = self.config
        members: list[np.ndarray] = []
        given: list[tuple[float, ...]] = []
        for w, groups in enumerate(_container_groups(containers, len(snapshot.workloads))):
            for name, rows in groups.items():
                recommendation = self.recommend(snapshot.workloads.names[w], name, containers_per_pod=len(groups))
                if recommendation is not None:
                    members.append(rows)
                    given.append(dataclasses.astuple(recommendation))
        if not members:
            return proposal
        rows = np.concatenate(members)
        group = np.repeat(np.arange(len(members)), [len(m) for m in members])
        recommended = np.array(given)[group]  # (rows, 6): CPU target, lower, upper, then memory
        bounds = {
            CPU: (0, containers.cpu_min_millicores[rows], containers.cpu_max_millicores[rows],
                  containers.cpu_request_millicores[rows]),
            MEMORY: (3, containers.memory_min_bytes[rows], containers.memory_max_bytes[rows],
                     containers.memory_request_bytes[rows]),
        }
        targets = {}
        outside = np.zeros(len(rows), dtype=bool)
        diff: np.ndarray | int = 0
        for resource in controlled:
            column, low, high, request = bounds[resource]
            target, lower, upper = (np.fmin(np.fmax(recommended[:, column + i], low), high) for i in range(3))
            targets[resource] = target
            outside |= (request < lower) | (request > upper)
            diff = diff + np.abs(request - target) / np.maximum(request, 1.0)
        age = pods.age_seconds[containers.pod_index[rows]]
        update = outside | ((age >= cfg.pod_lifetime_update_threshold_seconds) & (diff >= cfg.update_threshold))
        if MEMORY in controlled:
            update = np.where(containers.oom_kills_total[rows] > 0, diff > 0, update)
        # Thrifty gives all pods of a workload one size: once the updater would resize any of
        # them, all go to the target of the first such pod (rows ascend within a group).
        position = np.arange(len(rows))
        first = np.full(len(members), len(rows))
        np.minimum.at(first, group[update], position[update])
        resized = first[group] < len(rows)
        if CPU in controlled:
            proposal.cpu_request_millicores[rows[resized]] = targets[CPU][first[group[resized]]]
        if MEMORY in controlled:
            proposal.memory_request_bytes[rows[resized]] = targets[MEMORY][first[group[resized]]]
        return proposal


def _container_groups(containers: ContainerTable, n_workloads: int) -> list[dict[str, np.ndarray]]:
    """:func:`thrifty.actions.container_groups` of every workload at once: per workload,
    container name -> its rows (ascending), names in the order they first appear."""
    groups: list[dict[str, np.ndarray]] = [{} for _ in range(n_workloads)]
    owned = np.flatnonzero(containers.workload_index >= 0)
    if len(owned) == 0:
        return groups
    names, code = np.unique(np.asarray(containers.names, dtype=object)[owned].astype(str), return_inverse=True)
    key = containers.workload_index[owned] * len(names) + code
    order = np.argsort(key, kind="stable")  # by workload and name, rows ascending within
    starts = np.flatnonzero(np.r_[True, key[order][1:] != key[order][:-1]])
    pieces = np.split(owned[order], starts[1:])
    # Within a workload, names in the order of their first row.
    for piece in sorted(pieces, key=lambda rows: int(rows[0])):
        groups[int(containers.workload_index[piece[0]])][containers.names[piece[0]]] = piece
    return groups


def _capped(recommendation: Recommendation, containers: ContainerTable, row: int) -> Recommendation:
    """The recommendation within the container's bounds (``minAllowed``/``maxAllowed``), as the
    updater's recommendation processor caps it; NaN bounds leave a side open."""
    def cap(value: float, low: float, high: float) -> float:
        return float(np.fmin(np.fmax(value, low), high))

    cpu = (containers.cpu_min_millicores[row], containers.cpu_max_millicores[row])
    memory = (containers.memory_min_bytes[row], containers.memory_max_bytes[row])
    return Recommendation(
        cpu_target=cap(recommendation.cpu_target, *cpu),
        cpu_lower=cap(recommendation.cpu_lower, *cpu),
        cpu_upper=cap(recommendation.cpu_upper, *cpu),
        memory_target=cap(recommendation.memory_target, *memory),
        memory_lower=cap(recommendation.memory_lower, *memory),
        memory_upper=cap(recommendation.memory_upper, *memory),
    )
