"""Which traces a benchmark runs on, and the scenarios built from them.

A scenario needs, from the given ``--trace`` files together, four parts (see
:func:`thrifty.sim.build_scenario`): a node inventory, call graphs, a request-rate series, and,
when background pods are asked for, a pod stream. CPU and memory usage series are optional.

**Fallback rule.** A part that none of the given files provides is taken from the slices shipped
in the repository's ``traces/`` folder, from the same split as the run (``heldout`` for an
evaluation, ``train`` for calibration), and the run says so on standard error and in
``results.md``. Parts the given files do provide are never mixed with shipped ones. Without a
checkout (no ``traces/`` folder) a missing part is an error naming it.

Regimes: ``loaded`` (the default of ``thrifty bench``, :mod:`thrifty.bench.loaded`) and
``light``. Light cluster size: ``n_nodes`` nodes and ``applications_per_node x n_nodes`` applications (rounded,
at least one), so the load grows with the cluster; every other scale is the
:class:`thrifty.config.ScenarioConfig` default, the one the gym environments train on.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from thrifty import traces as trace_loaders
from thrifty.bench.loaded import build_loaded
from thrifty.config import ScenarioConfig
from thrifty.sim import Scenario, build_scenario
from thrifty.traces import Trace, TraceFormatError

SHIPPED_TRACES = Path(__file__).resolve().parents[3] / "traces"
"""The repository's trace slices (present in a checkout, not in an installed wheel)."""

SPLITS = ("train", "heldout")

DEFAULT_APPLICATIONS_PER_NODE = ScenarioConfig().n_applications / ScenarioConfig().n_nodes
"""Applications per node of the default scenario (4 on 16 nodes)."""


@dataclass(frozen=True)
class TracePart:
    """One thing a scenario needs from the traces."""

    name: str
    present: Callable[[Sequence[Trace]], bool]
    shipped: tuple[str, ...]
    """Shipped slices that provide it, relative to ``traces/``; ``{split}`` is replaced."""


def _has_rates(traces: Sequence[Trace]) -> bool:
    return any(np.any(np.isfinite(c.request_rate_per_second)) for t in traces for c in t.containers)


SCENARIO_PARTS: tuple[TracePart, ...] = (
    TracePart("node inventory", lambda ts: any(t.nodes is not None for t in ts),
              ("alibaba-openb/nodes.csv.gz",)),
    TracePart("call graphs", lambda ts: any(t.call_graphs for t in ts),
              ("alibaba-callgraphs/callgraphs-{split}.jsonl.gz",)),
    TracePart("request-rate series", _has_rates,
              ("alibaba-genai/genai-{split}.tar.gz", "azure-llm/conv-{split}.csv.gz")),
)
POD_STREAM = TracePart("pod stream", lambda ts: any(t.pods is not None for t in ts),
                       ("alibaba-openb/pods-{split}.csv.gz",))


def shipped_slices(split: str) -> list[Path]:
    """Every shipped slice of ``split`` (and the shared node inventory), sorted."""
    if split not in SPLITS:
        raise ValueError(f"split: must be one of {SPLITS}, got {split!r}")
    return sorted(SHIPPED_TRACES.glob(f"*/*-{split}.*")) + [SHIPPED_TRACES / "alibaba-openb/nodes.csv.gz"]


def load_traces(paths: Sequence[str | Path], *, split: str,
                parts: Sequence[TracePart] = SCENARIO_PARTS) -> tuple[list[Trace], list[str]]:
    """The traces at ``paths``, completed by shipped slices for the ``parts`` they miss (see the
    module docstring). Returns the traces and one human-readable note per fallback.

    Raises ValueError naming ``--trace`` and the missing part when no shipped slice is there.
    """
    if not paths:
        raise ValueError("--trace: give at least one trace file")
    loaded = []
    for path in paths:
        try:
            loaded.append(trace_loaders.load(path))
        except (OSError, TraceFormatError) as error:
            raise ValueError(f"--trace: {error}") from error
    notes = []
    for part in parts:
        if part.present(loaded):
            continue
        files = [SHIPPED_TRACES / pattern.format(split=split) for pattern in part.shipped]
        missing = [f for f in files if not f.is_file()]
        if missing:
            raise ValueError(f"--trace: the given traces have no {part.name}, and the shipped slice "
                             f"{missing[0]} is not there to fall back on; add a --trace file that has one")
        loaded.extend(trace_loaders.load(f) for f in files)
        shown = ", ".join(str(f.relative_to(SHIPPED_TRACES.parent)) for f in files)
        notes.append(f"no {part.name} in the given traces: using the shipped {shown}")
    return loaded, notes


REGIMES = ("loaded", "light")
"""``loaded``: :mod:`thrifty.bench.loaded`; ``light``: the training environments' scale, a few
workloads on a cluster they barely use."""


@dataclass(frozen=True)
class ScenarioSpec:
    """One cell of the benchmark grid: regime, cluster size and seed (the traces are shared)."""

    n_nodes: int
    seed: int
    background_pods: int = 0
    """``light`` only: pods of the openb stream placed next to the workloads."""
    applications_per_node: float = DEFAULT_APPLICATIONS_PER_NODE
    """``light`` only (the loaded regime has its own)."""
    regime: str = "light"
    """One of :data:`REGIMES`."""
    warmup_steps: int = 0
    """Steps run before the metrics start counting (the cluster settles from its initial state)."""

    def __post_init__(self) -> None:
        if self.regime not in REGIMES:
            raise ValueError(f"ScenarioSpec.regime: must be one of {REGIMES}, got {self.regime!r}")

    @property
    def name(self) -> str:
        if self.regime == "loaded":
            return f"loaded-n{self.n_nodes}-s{self.seed}"
        suffix = f"-bg{self.background_pods}" if self.background_pods else ""
        return f"n{self.n_nodes}-s{self.seed}{suffix}"

    def config(self, steps: int) -> ScenarioConfig:
        """The scenario configuration; its series cover a day, or ``steps`` steps if longer."""
        default = ScenarioConfig()
        applications = max(1, round(self.applications_per_node * self.n_nodes))
        return dataclasses.replace(default, n_nodes=self.n_nodes, n_applications=applications,
                                   n_background_pods=self.background_pods,
                                   horizon_seconds=max(steps * default.step_seconds, default.horizon_seconds))

    def build(self, traces: Sequence[Trace], steps: int) -> Scenario:
        """The scenario for a run of ``steps`` steps (warm-up included)."""
        if self.regime == "loaded":
            return build_loaded(traces, n_nodes=self.n_nodes, steps=steps, seed=self.seed)
        return build_scenario(traces, config=self.config(steps), seed=self.seed)
