"""``thrifty bench``: policies against baselines on trace-driven scenarios in the simulator.

Runs every policy on every scenario (cluster size x seed, built from the given traces) through
the same harness, decision core and safety pipeline as training, and writes ``DIR/results.csv``,
``DIR/results.md`` and plots (see :mod:`thrifty.bench`). ``--calibrate`` instead runs the
baselines' parameter grids and writes ``DIR/calibration.csv`` and ``DIR/calibration.md``.

``--cluster KUBECONFIG`` instead schedules a run of the openb pod stream on a real cluster twice,
with kube-scheduler and with Thrifty, and writes ``DIR/cluster.md`` (:mod:`thrifty.bench.cluster`).

Traces: any files in the supported formats; a part a scenario needs that none of them has is
taken from the shipped slices of the same split (held-out for a benchmark, training for
``--calibrate``) and the output says so (:mod:`thrifty.bench.scenarios`).
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from thrifty.commands.flags import non_negative_int, positive_float, positive_int

QUICK = {"nodes": [128], "seeds": [0, 1, 2, 3, 4], "steps": 240}
"""``--quick``: 128 nodes, five seeds, four simulated hours (the first not measured), so that
``make bench`` with every peer stays within 10 minutes on two cores."""
FULL = {"nodes": [512], "seeds": [0, 1, 2, 3, 4], "steps": 1440}
"""Without ``--quick``: 512 nodes, five seeds, one simulated day (the first hour not measured)."""
CALIBRATION = {"nodes": [128], "seeds": [100, 101, 102, 103], "steps": 360}
"""``--calibrate``: four seeds distinct from the benchmark's, six simulated hours."""
LIGHT_NODES = {"quick": [16], "full": [16, 32]}
"""Default cluster sizes of ``--regime light`` (the regime of the earlier benchmark)."""
WARMUP_STEPS = {"loaded": 60, "light": 0}
"""Steps left out of the metrics per regime: the loaded regime's first hour, in which the
cluster settles from every node on and the deployment's initial sizes."""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="benchmark policies against the baselines in the trace-driven simulator",
        description="Run policies (Thrifty's and the baselines) on scenarios built from traces and report "
                    "energy, SLO violations, slack, OOMs, throttling, cross-node traffic and decision latency.",
    )
    parser.add_argument("--trace", action="append", default=[], metavar="FILE", required=True,
                        help="trace file in any supported format (repeat); missing parts come from the shipped slices")
    parser.add_argument("--out", required=True, metavar="DIR", help="output directory (created if missing)")
    parser.add_argument("--nodes", type=positive_int("--nodes"), nargs="+", metavar="N",
                        help=f"cluster sizes (default {FULL['nodes']}, --quick {QUICK['nodes']})")
    parser.add_argument("--steps", type=positive_int("--steps"), metavar="N",
                        help=f"60 s steps per run (default {FULL['steps']}, --quick {QUICK['steps']})")
    parser.add_argument("--seeds", type=non_negative_int("--seeds"), nargs="+", metavar="S",
                        help=f"scenario and simulator seeds (default {FULL['seeds']}, --quick {QUICK['seeds']})")
    parser.add_argument("--policies", nargs="+", metavar="POLICY",
                        help="policies to run: PLACEMENT+SIZING, thrifty-heuristic, k8s-stack or rl:DIR "
                             "(default: Thrifty's heuristic and every baseline)")
    parser.add_argument("--regime", choices=("loaded", "light"), default="loaded",
                        help="loaded: requested CPU at 50-85%% of capacity at peak, 30-40%% in the trough, bursts, "
                             "the openb pod stream as background; light: the training scale, a few workloads on "
                             "an almost empty cluster (default %(default)s)")
    parser.add_argument("--background-pods", type=non_negative_int("--background-pods"), default=0, metavar="N",
                        help="--regime light: pods from the openb pod stream placed next to the workloads "
                             "(default %(default)s)")
    parser.add_argument("--quick", action="store_true", help="the short run of `make bench`")
    parser.add_argument("--calibrate", action="store_true",
                        help="run the baselines' calibration grids instead (give the training slices)")
    parser.add_argument("--grids", nargs="+", metavar="NAME",
                        help="with --calibrate: only these grids (by name, e.g. karpenter); the others' "
                             "parameters keep their calibrated values (default: every grid)")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    parser.add_argument("--address", metavar="HOST:PORT",
                        help="spread the runs over this Ray cluster, one task a run (its workers need Thrifty's "
                             "bench extra); default: one after another here")
    parser.add_argument("--cluster", metavar="KUBECONFIG",
                        help="instead, schedule a run of the openb pod stream on this cluster twice, with "
                             "kube-scheduler and with Thrifty (started here), and compare them")
    parser.add_argument("--cluster-pods", type=positive_int("--cluster-pods"), default=1000, metavar="N",
                        help="pods of the stream for --cluster (default %(default)s)")
    parser.add_argument("--cluster-operator-arg", action="append", default=[], dest="cluster_operator_args",
                        metavar="ARG", help="an argument for the --cluster run's `thrifty run`, e.g. "
                                            "--cluster-operator-arg=--percentage-of-nodes-to-score=0 (repeatable)")
    parser.add_argument("--cluster-request-scale", type=positive_float("--cluster-request-scale"), default=1.0,
                        metavar="X", help="multiply every pod's requests by X for --cluster, so that the stream does "
                                          "not saturate a small cluster (default %(default)s)")
    parser.set_defaults(func=run)


class _Progress:
    """One status line on standard error, redrawn in place on a terminal."""

    def __init__(self, total_runs: int) -> None:
        self.total_runs = total_runs
        self.run = 0
        self.started = time.perf_counter()
        self.tty = sys.stderr.isatty()

    def start(self, label: str, steps: int) -> None:
        self.run += 1
        self.label, self.steps = label, steps
        self._draw(0, force=True)

    def _draw(self, done: int, force: bool = False) -> None:
        if not (self.tty or force):
            return
        elapsed = time.perf_counter() - self.started
        line = f"[{self.run}/{self.total_runs}] {self.label}: {done}/{self.steps} steps, {elapsed:.0f} s elapsed"
        if self.tty:
            sys.stderr.write("\r" + line.ljust(100)[:100])
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()

    def step(self, done: int) -> None:
        if done % 20 == 0 or done == self.steps:
            self._draw(done)

    def finish(self) -> None:
        if self.tty:
            sys.stderr.write("\n")


def _settings(args: argparse.Namespace) -> tuple[list[int], list[int], int]:
    defaults: dict[str, Any] = CALIBRATION if args.calibrate else QUICK if args.quick else FULL
    nodes = defaults["nodes"]
    if args.regime == "light":
        nodes = LIGHT_NODES["quick" if args.quick or args.calibrate else "full"]
    return (args.nodes or nodes, args.seeds if args.seeds is not None else defaults["seeds"],
            args.steps or defaults["steps"])


def _command_line(args: argparse.Namespace) -> str:
    """The command as given, flags in a fixed order, for the record in ``results.md``."""
    words = ["thrifty", "bench"] + [w for path in args.trace for w in ("--trace", path)] + ["--out", args.out]
    for flag, value in (("--nodes", args.nodes), ("--seeds", args.seeds)):
        if value is not None:
            words += [flag, *map(str, value)]
    if args.steps:
        words += ["--steps", str(args.steps)]
    if args.grids:
        words += ["--grids", *args.grids]
    if args.policies:
        words += ["--policies", *args.policies]
    words += ["--regime", args.regime]
    if args.background_pods:
        words += ["--background-pods", str(args.background_pods)]
    if args.address:
        words += ["--address", args.address]
    words += [flag for flag, on in (("--quick", args.quick), ("--calibrate", args.calibrate),
                                    ("--no-plots", args.no_plots)) if on]
    if args.cluster:
        words += ["--cluster", args.cluster, "--cluster-pods", str(args.cluster_pods),
                  "--cluster-request-scale", f"{args.cluster_request_scale:g}",
                  *(f"--cluster-operator-arg={a}" for a in args.cluster_operator_args)]
    return " ".join(shlex.quote(w) for w in words)


def run(args: argparse.Namespace) -> int:
    from thrifty.bench.policies import DEFAULT_POLICIES, parse_policy
    from thrifty.bench.scenarios import POD_STREAM, SCENARIO_PARTS, ScenarioSpec, load_traces

    if args.address and (args.cluster or args.calibrate):
        print("thrifty bench: --address: spreads benchmark runs only (not --cluster or --calibrate)", file=sys.stderr)
        return 2
    if args.cluster:
        return _cluster(args)
    nodes, seeds, steps = _settings(args)
    try:
        policies = [parse_policy(name) for name in (args.policies or DEFAULT_POLICIES)]
        if args.regime == "loaded" and args.background_pods:
            raise ValueError("--background-pods: only with --regime light (the loaded regime sets its own)")
        parts = SCENARIO_PARTS + ((POD_STREAM,) if args.background_pods > 0 or args.regime == "loaded" else ())
        traces, notes = load_traces(args.trace, split="train" if args.calibrate else "heldout", parts=parts)
    except ValueError as error:
        print(f"thrifty bench: {error}", file=sys.stderr)
        return 2
    for note in notes:
        print(f"thrifty bench: {note}", file=sys.stderr)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    warmup = min(WARMUP_STEPS[args.regime], steps - 1)
    specs = [ScenarioSpec(n, s, args.background_pods, regime=args.regime, warmup_steps=warmup)
             for n in nodes for s in seeds]
    try:
        scenarios = [(spec, spec.build(traces, steps)) for spec in specs]
    except ValueError as error:
        print(f"thrifty bench: {error}", file=sys.stderr)
        return 2
    command = _command_line(args)
    if args.calibrate:
        return _calibrate(scenarios, steps, out, args.grids)
    return _benchmark(scenarios, policies, steps, out, notes=notes, command=command, plots=not args.no_plots,
                      address=args.address)


def _cluster(args: argparse.Namespace) -> int:
    from thrifty.bench import cluster
    from thrifty.bench.scenarios import POD_STREAM, load_traces

    try:
        traces, notes = load_traces(args.trace, split="heldout", parts=(POD_STREAM,))
    except ValueError as error:
        print(f"thrifty bench: {error}", file=sys.stderr)
        return 2
    for note in notes:
        print(f"thrifty bench: {note}", file=sys.stderr)
    stream = next(t.pods for t in traces if t.pods is not None)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = out / "operator.log"
    print(f"thrifty bench: {args.cluster_pods} pods, kube-scheduler then Thrifty (operator log: {log})",
          file=sys.stderr)
    scraped: list[str] = []
    try:
        runs = cluster.compare_schedulers(
            args.cluster, stream, args.cluster_pods,
            lambda namespace: cluster.operator_process(args.cluster, namespace, log, metrics_out=scraped,
                                                       extra_args=args.cluster_operator_args),
            request_scale=args.cluster_request_scale)
    except RuntimeError as error:
        print(f"thrifty bench: --cluster {args.cluster}: {error}", file=sys.stderr)
        return 1
    table = cluster.markdown(runs)
    if scraped:
        table += "\n\n" + _extender_latency(scraped[-1])
    (out / "cluster.md").write_text(f"Command: `{_command_line(args)}`\n\n{table}\n")
    print(table)
    print(f"\nwrote {out / 'cluster.md'}")
    return 0


def _extender_latency(metrics_text: str) -> str:
    """The extender's call latency, measured in the operator (thrifty_extender_request_duration_seconds)."""
    from thrifty.bench.extender_latency import request_count, request_quantile_seconds

    lines = ["| extender verb | calls | p50 ms | p99 ms |", "|---|---:|---:|---:|"]
    p50, p99 = (request_quantile_seconds(metrics_text, "prioritize", q) * 1000 for q in (0.5, 0.99))
    lines.append(f"| prioritize | {request_count(metrics_text, 'prioritize')} | {p50:.1f} | {p99:.1f} |")
    return "\n".join(lines)


def _run_here(scenarios, policies, steps: int) -> list:
    """One run after another in this process, with a progress line."""
    from thrifty.bench.runner import run_named_policy, strict_bound_of

    progress = _Progress(len(scenarios) * len(policies))
    results = []
    try:
        for spec, scenario in scenarios:
            strict = strict_bound_of(scenario)
            for policy in policies:
                progress.start(f"{spec.name} {policy.name}", steps)
                results.append(run_named_policy(scenario, spec, policy, steps, on_step=progress.step,
                                                strict_bound=strict))
    finally:
        progress.finish()
    return results


def _benchmark(scenarios, policies, steps: int, out: Path, *, notes: list[str], command: str, plots: bool,
               address: str | None = None) -> int:
    from thrifty.bench import report
    from thrifty.policy.base import PolicyError

    started = time.perf_counter()
    try:
        if address:
            from thrifty.bench.distributed import run_on_cluster

            results = run_on_cluster(address, scenarios, policies, steps)
        else:
            results = _run_here(scenarios, policies, steps)
    except PolicyError as error:
        print(f"thrifty bench: {error}", file=sys.stderr)
        return 2
    runtime = time.perf_counter() - started
    rows = report.csv_rows(results)
    summary = report.summary_rows(rows)
    table = report.markdown_summary(summary)
    report.write_csv(rows, out / "results.csv")
    statistics = report.markdown_statistics(report.statistics_rows(rows))
    report.write_markdown(table, report.markdown_per_scenario(rows), out / "results.md", command=command,
                          notes=notes, runtime_seconds=runtime, statistics=statistics)
    written = [out / "results.csv", out / "results.md"]
    if plots:
        try:
            written += report.write_plots(results, summary, out)
        except ImportError:
            print("thrifty bench: plots skipped: matplotlib is not installed", file=sys.stderr)
    print(table)
    print(f"\n{statistics}")
    print(f"\n{len(results)} runs of {steps} steps in {runtime:.0f} s; wrote {', '.join(str(p) for p in written)}")
    return 0


def _calibrate(scenarios, steps: int, out: Path, names: list[str] | None) -> int:
    import csv

    from thrifty.bench.calibration import GRIDS, calibrate, markdown

    grids = [g for g in GRIDS if names is None or g.name in names]
    unknown = sorted(set(names or ()) - {g.name for g in GRIDS})
    if unknown:
        print(f"thrifty bench: --grids: unknown {unknown}; known: {[g.name for g in GRIDS]}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    progress = _Progress(sum(len(g.settings()) for g in grids) * len(scenarios))

    def on_run(grid: str, setting: dict[str, float], spec) -> None:
        shown = ", ".join(f"{k}={v:g}" for k, v in setting.items())
        progress.start(f"{grid} {shown} {spec.name}", steps)

    trials = calibrate(scenarios, steps, grids=grids, on_run=on_run)
    progress.finish()
    table = markdown(trials)
    with (out / "calibration.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["grid", "setting", "energy_kwh", "slo_violation_rate", "chosen"])
        for t in trials:
            writer.writerow([t.grid, ";".join(f"{k}={v:g}" for k, v in t.setting.items()), t.energy_kwh,
                             t.slo_violation_rate, t.chosen])
    (out / "calibration.md").write_text(table + "\n")
    print(table)
    print(f"\n{len(trials)} settings x {len(scenarios)} scenarios x {steps} steps in "
          f"{time.perf_counter() - started:.0f} s; wrote {out / 'calibration.csv'}, {out / 'calibration.md'}")
    return 0
