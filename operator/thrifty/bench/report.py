"""Benchmark output: ``results.csv``, ``results.md`` and plots.

``results.csv`` has one row per policy and scenario, plus one ``lower-bound`` (loose) and one
``strict-bound`` (whole nodes) row per scenario (energy and node count only); every policy row
has its energy over each (``energy_over_bound``, ``strict_bound_ratio``). ``results.md`` has the per-policy means over scenarios (the table
``docs/evaluation.md`` quotes) and energy and SLO violations per scenario. Plots (matplotlib,
Agg backend): energy against SLO violation rate per policy, and cluster power over time on the
first scenario with the lower bound.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from thrifty.bench.metrics import COLUMNS, JOULES_PER_KWH
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
            values = [float(r[column]) for r in mine if r.get(column) is not None]
            means[column] = float(np.mean(values)) if values else None
        summary.append(means)
    return summary


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
                   runtime_seconds: float) -> None:
    text = [
        "# Thrifty benchmark results", "",
        f"Command: `{command}`", "",
        f"Runtime: {runtime_seconds:.0f} s", "",
        *[f"Note: {note}" for note in notes], *([""] if notes else []),
        "## Mean over scenarios", "", summary_table, "",
        "## Energy (kWh) / SLO violation rate per scenario", "", per_scenario, "",
        "Columns are defined in `thrifty.bench.metrics`; both bounds (`lower-bound`, fractional; "
        "`strict-bound`, whole nodes with the all-on start) in `thrifty.bench.lower_bound`.", "",
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
        axes.scatter(100 * float(row["slo_violation_rate"]), float(row["energy_kwh"]), s=50,
                     marker=markers[i % len(markers)], label=str(row["policy"]))
    for name, style in ((LOWER_BOUND, ":"), (STRICT_BOUND, "--")):
        bound = next((s for s in summary if s["policy"] == name), None)
        if bound is not None:
            axes.axhline(float(bound["energy_kwh"]), linestyle=style, color="grey", label=name)
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
