"""`thrifty bench --address` on a real Ray cluster started with `ray start` (a head without CPUs
and one worker): every run is a task on the worker, and the results are the local run's.

The simulator is deterministic for a seed, so each run's figures must equal those of the same
benchmark run here, one run after another; only the decision-latency columns, which time this
machine's work, may differ.
"""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO
from tests.support.ray_cluster import ray_cluster

TRACES = [*sorted((REPO / "traces").glob("*/*-heldout.*")), REPO / "traces/alibaba-openb/nodes.csv.gz"]
SMALL = ["--nodes", "8", "--steps", "70", "--seeds", "0", "1", "--policies", "thrifty-heuristic",
         "most-allocated+vpa", "--no-plots"]
"""Two loaded 8-node scenarios of 70 steps (60 of warm-up), two policies: four runs."""
TIMING = {"decision_ms_p50", "decision_ms_p99"}


def _bench(out: Path, *extra: str, env: dict | None = None) -> list[dict]:
    thrifty = Path(sys.executable).parent / "thrifty"
    proc = subprocess.run([str(thrifty), "bench", *(w for t in TRACES for w in ("--trace", str(t))),
                           "--out", str(out), *SMALL, *extra], capture_output=True, text=True, timeout=900,
                          cwd=REPO, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    with (out / "results.csv").open() as f:
        return [{k: v for k, v in row.items() if k not in TIMING} for row in csv.DictReader(f)]


def test_runs_spread_over_a_ray_cluster_give_the_local_results(tmp_path: Path) -> None:
    here = _bench(tmp_path / "here")
    with ray_cluster() as cluster:
        spread = _bench(tmp_path / "spread", "--address", cluster.address, env=cluster.env)
        tasks = cluster.task_logs("_run")
    assert len([r for r in here if r["policy"] in ("thrifty-heuristic", "most-allocated+vpa")]) == 4
    assert spread == here
    assert tasks, "no benchmark task ran on the cluster (was --address ignored?)"
    assert f"--address {cluster.address}" in (tmp_path / "spread" / "results.md").read_text()
