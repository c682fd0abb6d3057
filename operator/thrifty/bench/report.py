"""Benchmark output: ``results.csv``, ``results.md`` and plots.

``results.csv`` has one row per policy and scenario, plus one ``lower-bound`` (loose) and one
``strict-bound`` (whole nodes) row per scenario (energy and node count only); every policy row
has its energy over each (``energy_over_bound``, ``strict_bound_ratio``). ``results.md`` has the
per-policy means over scenarios (the table ``docs/evaluation.md`` quotes) and energy and SLO
violations per scenario. Plots (matplotlib, Agg backend): energy against SLO violation rate per
policy, and cluster power over time on the first scenario with the lower bound.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path
from typing import SupportsFloat, SupportsIndex, cast

import numpy as np

from thrifty.bench.metrics import COLUMNS, JOULES_PER_KWH
from thrifty.bench.policies import THRIFTY_PLACEMENTS, THRIFTY_SIZINGS, parse_policy
from thrifty.bench.runner import RunResult

LOWER_BOUND = "lower-bound"
STRICT_BOUND = "strict-bound"
BOUNDS = (LOWER_BOUND, STRICT_BOUND)
KEY_COLUMNS = ("policy", "scenario", "nodes", "seed", "steps", "requested_cpu_fraction_peak")
RATIO_COLUMNS = ("energy_over_bound", "strict_bound_ratio")
CSV_COLUMNS = KEY_COLUMNS + COLUMNS + RATIO_COLUMNS

SUMMARY_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("energy_kwh", "energy kWh", "{:.2f}"),
    ("energy_over_bound", "x bound", "{:.2f}"),
    ("strict_bound_ratio", "x strict", "{:.2f}"),
    ("slo_violation_rate", "SLO viol. %", "{:.2%}"),
    ("latency_slo_ratio_p95", "p95/SLO p95", "{:.2f}"),
    ("powered_on_nodes", "nodes on", "{:.1f}"),
    ("cpu_slack", "CPU slack", "{:.2f}"),
    ("memory_slack", "mem slack", "{:.2f}"),
    ("oom_kills", "OOM kills", "{:.0f}"),
    ("throttled_hours", "throttled h", "{:.1f}"),
    ("cross_node_call_fraction", "cross-node calls", "{:.0%}"),
    ("unschedulable_pods", "unsched. pods", "{:.1f}"),
    ("decision_ms_p50", "decide p50 ms", "{:.1f}"),
    ("decision_ms_p99", "decide p99 ms", "{:.1f}"),
    ("fallbacks", "fallbacks", "{:.0f}"),
)
"""Column key, header and format of the summary table."""


def _number(value: object) -> float:
    """A numeric cell of a row as a float (rows hold names, numbers and intervals alike)."""
    if isinstance(value, str | SupportsFloat | SupportsIndex):
        return float(value)
    raise TypeError(f"not a number: {value!r}")


def _kwh(watts: np.ndarray, step_seconds: float) -> float:
    return float(watts.sum()) * step_seconds / JOULES_PER_KWH


def csv_rows(results: Sequence[RunResult]) -> list[dict[str, object]]:
    """One row per run, then the ``lower-bound`` and ``strict-bound`` rows of each scenario."""
    rows: list[dict[str, object]] = []
    bounds: dict[tuple[str, str], dict[str, object]] = {}
    for r in results:
        key = {"scenario": r.scenario.name, "nodes": r.scenario.n_nodes, "seed": r.scenario.seed, "steps": r.steps,
               "requested_cpu_fraction_peak": r.requested_cpu_fraction_peak}
        loose = _kwh(r.lower_bound_watts, r.step_seconds)
        strict = _kwh(r.strict_bound_watts, r.step_seconds)
        energy = r.metrics["energy_kwh"]
        rows.append({"policy": r.policy, **key, **r.metrics, "energy_over_bound": energy / loose,
                     "strict_bound_ratio": energy / strict})
        bounds.setdefault((r.scenario.name, LOWER_BOUND), {
            "policy": LOWER_BOUND, **key, "energy_kwh": loose, "energy_over_bound": 1.0,
            "strict_bound_ratio": loose / strict, "powered_on_nodes": float(np.mean(r.lower_bound_nodes))})
        bounds.setdefault((r.scenario.name, STRICT_BOUND), {
            "policy": STRICT_BOUND, **key, "energy_kwh": strict, "energy_over_bound": strict / loose,
            "strict_bound_ratio": 1.0, "powered_on_nodes": float(np.mean(r.strict_bound_nodes))})
    return rows + sorted(bounds.values(), key=lambda b: BOUNDS.index(str(b["policy"])))


def summary_rows(rows: Sequence[dict[str, object]]) -> list[dict[str, object]]:
    """Mean of every numeric column over scenarios, per policy, in first-seen order."""
    policies = list(dict.fromkeys(str(r["policy"]) for r in rows))
    summary = []
    for policy in policies:
        mine = [r for r in rows if r["policy"] == policy]
        means: dict[str, object] = {"policy": policy, "scenarios": len(mine)}
        for column in COLUMNS + RATIO_COLUMNS:
            values = [_number(r[column]) for r in mine if r.get(column) is not None]
            means[column] = float(np.mean(values)) if values else None
        summary.append(means)
    return summary


BOOTSTRAP_RESAMPLES = 2000
"""Resamples of the percentile bootstrap (seeded, so a report is reproducible)."""
CONFIDENCE = 0.95


def bootstrap_interval(values: Sequence[float], seed: int = 0, resamples: int = BOOTSTRAP_RESAMPLES,
                       confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (NaN, NaN for none)."""
    data = np.asarray(values, dtype=float)
    if len(data) == 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = data[rng.integers(len(data), size=(resamples, len(data)))].mean(axis=1)
    tail = (1.0 - confidence) / 2.0
    return float(np.quantile(means, tail)), float(np.quantile(means, 1.0 - tail))


def is_baseline(policy: str) -> bool:
    """Whether ``policy`` is a peer (neither a bound nor one of Thrifty's policies)."""
    if policy in BOUNDS:
        return False
    spec = parse_policy(policy)
    return spec.rl_directory is None and spec.placement not in THRIFTY_PLACEMENTS and spec.sizing not in THRIFTY_SIZINGS


def best_baseline(summary: Sequence[dict[str, object]], violation_rate: float) -> str | None:
    """The peer of least mean energy among those with at most ``violation_rate`` mean SLO
    violations; if none has that few, the peer with the fewest. None without peers."""
    peers = [row for row in summary if is_baseline(str(row["policy"]))]
    if not peers:
        return None
    eligible = [row for row in peers if _number(row["slo_violation_rate"]) <= violation_rate] or \
        [min(peers, key=lambda row: _number(row["slo_violation_rate"]))]
    return str(min(eligible, key=lambda row: _number(row["energy_kwh"]))["policy"])


def statistics_rows(rows: Sequence[dict[str, object]]) -> list[dict[str, object]]:
    """Per policy: mean energy and SLO violation rate over scenarios with their 95 % bootstrap
    intervals, and, against the best baseline for it (:func:`best_baseline`), the mean paired
    difference per scenario (this policy minus that one) with its interval."""
    summary = [r for r in summary_rows(rows) if str(r["policy"]) not in BOUNDS]
    by = {(str(r["policy"]), str(r["scenario"])): r for r in rows}
    out = []
    for row in summary:
        policy = str(row["policy"])
        mine = [r for r in rows if r["policy"] == policy]
        energy = [_number(r["energy_kwh"]) for r in mine]
        slo = [_number(r["slo_violation_rate"]) for r in mine]
        stats: dict[str, object] = {
            "policy": policy, "scenarios": len(mine),
            "energy_kwh": float(np.mean(energy)), "energy_kwh_ci": bootstrap_interval(energy),
            "slo_violation_rate": float(np.mean(slo)), "slo_violation_rate_ci": bootstrap_interval(slo),
            "strict_bound_ratio": float(np.mean([_number(r["strict_bound_ratio"]) for r in mine])),
        }
        peer = best_baseline([r for r in summary if r["policy"] != policy], _number(row["slo_violation_rate"]))
        if peer is not None:
            pairs = [(r, by[(peer, str(r["scenario"]))]) for r in mine if (peer, str(r["scenario"])) in by]
            energy_diff = [_number(a["energy_kwh"]) - _number(b["energy_kwh"]) for a, b in pairs]
            slo_diff = [_number(a["slo_violation_rate"]) - _number(b["slo_violation_rate"]) for a, b in pairs]
            stats.update(best_baseline=peer,
                         energy_diff_kwh=float(np.mean(energy_diff)),
                         energy_diff_kwh_ci=bootstrap_interval(energy_diff),
                         slo_diff=float(np.mean(slo_diff)), slo_diff_ci=bootstrap_interval(slo_diff))
        out.append(stats)
    return out


def _interval(value: object, bounds: object, fmt: str, scale: float = 1.0) -> str:
    """``value [low, high]`` times ``scale`` (empty where there is none)."""
    if value is None or bounds is None:
        return ""
    low, high = cast(tuple[float, float], bounds)
    return f"{fmt.format(scale * cast(float, value))} [{fmt.format(scale * low)}, {fmt.format(scale * high)}]"


def markdown_statistics(stats: Sequence[dict[str, object]]) -> str:
    """The intervals and paired differences of :func:`statistics_rows`, in GitHub markdown
    (violation rates in percent, their differences in percentage points)."""
    lines = [("| policy | scenarios | energy kWh [95 % CI] | SLO viol. % [95 % CI] | x strict | best baseline | "
              "energy diff kWh [95 % CI] | SLO viol. diff pp [95 % CI] |"),
             "|---|---:|---:|---:|---:|---|---:|---:|"]
    for s in stats:
        lines.append(" | ".join([
            f"| {s['policy']}", str(s["scenarios"]),
            _interval(s["energy_kwh"], s["energy_kwh_ci"], "{:.2f}"),
            _interval(s["slo_violation_rate"], s["slo_violation_rate_ci"], "{:.2f}", 100.0),
            f"{cast(float, s['strict_bound_ratio']):.2f}", str(s.get("best_baseline") or ""),
            _interval(s.get("energy_diff_kwh"), s.get("energy_diff_kwh_ci"), "{:+.2f}"),
            _interval(s.get("slo_diff"), s.get("slo_diff_ci"), "{:+.2f}", 100.0),
        ]) + " |")
    return "\n".join(lines)


def _cell(value: object, fmt: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return fmt.format(value)


def markdown_summary(summary: Sequence[dict[str, object]]) -> str:
    """The per-policy table, in GitHub markdown."""
    header = "| policy | " + " | ".join(title for _, title, _ in SUMMARY_COLUMNS) + " |"
    rule = "|---|" + "---:|" * len(SUMMARY_COLUMNS)
    lines = [header, rule]
    for row in summary:
        cells = [_cell(row.get(key), fmt) for key, _, fmt in SUMMARY_COLUMNS]
        lines.append(f"| {row['policy']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown_per_scenario(rows: Sequence[dict[str, object]]) -> str:
    """Energy (kWh) / SLO violation rate of each policy on each scenario."""
    scenarios = list(dict.fromkeys(str(r["scenario"]) for r in rows))
    policies = list(dict.fromkeys(str(r["policy"]) for r in rows))
    cell = {(r["policy"], r["scenario"]): r for r in rows}
    lines = ["| policy | " + " | ".join(scenarios) + " |", "|---|" + "---:|" * len(scenarios)]
    for policy in policies:
        cells = []
        for scenario in scenarios:
            r = cell.get((policy, scenario))
            if r is None:
                cells.append("")
            elif r.get("slo_violation_rate") is None:
                cells.append(f"{r['energy_kwh']:.2f}")
            else:
                cells.append(f"{r['energy_kwh']:.2f} / {r['slo_violation_rate']:.1%}")
        lines.append(f"| {policy} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_csv(rows: Sequence[dict[str, object]], path: Path) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in CSV_COLUMNS})


def write_markdown(summary_table: str, per_scenario: str, path: Path, *, command: str, notes: Sequence[str],
                   runtime_seconds: float, statistics: str) -> None:
    text = [
        "# Thrifty benchmark results", "",
        f"Command: `{command}`", "",
        f"Runtime: {runtime_seconds:.0f} s", "",
        *[f"Note: {note}" for note in notes], *([""] if notes else []),
        "## Mean over scenarios", "", summary_table, "",
        "## Intervals and paired differences against the best baseline", "",
        ("Mean over scenarios with a 95 % percentile-bootstrap interval; the best baseline of a policy is "
         "the peer of least mean energy among those with no more mean SLO violations; differences are "
         "this policy minus that one, paired by scenario (same seed)."), "", statistics, "",
        "## Energy (kWh) / SLO violation rate per scenario", "", per_scenario, "",
        ("Columns are defined in `thrifty.bench.metrics`; both bounds (`lower-bound`, fractional; "
         "`strict-bound`, whole nodes with the all-on start) in `thrifty.bench.lower_bound`."), "",
    ]
    path.write_text("\n".join(text))


def write_plots(results: Sequence[RunResult], summary: Sequence[dict[str, object]], out: Path) -> list[Path]:
    """``energy_vs_slo.png`` and ``energy_over_time.png``; raises ImportError without matplotlib."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    policies = [s for s in summary if s["policy"] not in BOUNDS]
    figure, axes = plt.subplots(figsize=(8, 5.5))
    markers = "osD^v<>PX*"
    for i, row in enumerate(policies):
        axes.scatter(100 * _number(row["slo_violation_rate"]), _number(row["energy_kwh"]), s=50,
                     marker=markers[i % len(markers)], label=str(row["policy"]))
    for name, style in ((LOWER_BOUND, ":"), (STRICT_BOUND, "--")):
        bound = next((s for s in summary if s["policy"] == name), None)
        if bound is not None:
            axes.axhline(_number(bound["energy_kwh"]), linestyle=style, color="grey", label=name)
    axes.legend(fontsize=7, loc="best")
    axes.set_xlabel("SLO violations (% of workload-steps)")
    axes.set_ylabel("energy (kWh, mean over scenarios)")
    axes.set_title("Energy against SLO violations")
    axes.grid(alpha=0.3)
    figure.tight_layout()
    paths.append(out / "energy_vs_slo.png")
    figure.savefig(paths[-1], dpi=120)
    plt.close(figure)

    first = results[0].scenario.name
    figure, axes = plt.subplots(figsize=(9, 5))
    shown = [r for r in results if r.scenario.name == first]
    step_hours = results[0].step_seconds / 3600.0
    for r in shown:
        axes.plot(np.arange(r.steps) * step_hours, r.watts / 1000.0, label=r.policy, linewidth=1)
    axes.plot(np.arange(shown[0].steps) * step_hours, shown[0].lower_bound_watts / 1000.0, "k:",
              label=LOWER_BOUND, linewidth=1)
    axes.plot(np.arange(shown[0].steps) * step_hours, shown[0].strict_bound_watts / 1000.0, "k--",
              label=STRICT_BOUND, linewidth=1)
    axes.set_xlabel("hours")
    axes.set_ylabel("cluster power (kW)")
    axes.set_title(f"Power over time, scenario {first}")
    axes.legend(fontsize=7, ncol=2)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    paths.append(out / "energy_over_time.png")
    figure.savefig(paths[-1], dpi=120)
    plt.close(figure)
    return paths
