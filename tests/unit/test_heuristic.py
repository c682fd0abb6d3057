"""Thrifty's heuristic: memory sizing after OOM kills (no OOM loop)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.unit.snapshots import GI, MI, make_snapshot
from thrifty.policy.heuristic import HeuristicConfig, HeuristicPolicy, MemoryLedger, memory_floors

WINDOW = 8
CONFIG = HeuristicConfig(memory_shrink_min_samples=WINDOW)
"""The hand-built snapshots hold 8 samples: a full window for these tests."""


def one_pod(**pod) -> dict:
    return {"workload": 0, "node": 0, "usage": 100.0, **pod}


@pytest.mark.parametrize(("case", "pod", "ledger", "expected_bytes"), [
    pytest.param("new kill: double the limit hit, not the surviving peak",
                 one_pod(memory=512 * MI, memory_limit=512 * MI, memory_usage=300 * MI, ooms=1),
                 MemoryLedger(), 1024 * MI, id="bump"),
    pytest.param("new kill of a small limit: at least the limit plus 100 MiB",
                 one_pod(memory=64 * MI, memory_limit=64 * MI, memory_usage=50 * MI, ooms=1),
                 MemoryLedger(), 164 * MI, id="min-bump"),
    pytest.param("new kill without a limit: bump the request",
                 one_pod(memory=512 * MI, memory_usage=300 * MI, ooms=1),
                 MemoryLedger(), 1024 * MI, id="no-limit"),
    pytest.param("a kill already seen: no second bump, but no shrink either",
                 one_pod(memory=1024 * MI, memory_limit=1024 * MI, memory_usage=300 * MI, ooms=1),
                 MemoryLedger(kills_seen={("default/pod-0", "app"): 1.0}), 1024 * MI, id="seen"),
    pytest.param("no kill, full window: down to the peak plus headroom",
                 one_pod(memory=GI, memory_limit=GI, memory_usage=300 * MI),
                 MemoryLedger(), 360 * MI, id="shrink"),
    pytest.param("no kill, a remembered peak a half-life ago: its half is the floor",
                 one_pod(memory=GI, memory_limit=GI, memory_usage=300 * MI),
                 MemoryLedger(peaks={("default/w0", "app"): (800 * MI, 1000.0 - 24 * 3600.0)}), 480 * MI,
                 id="remembered-peak"),
])
def test_memory_floors(case, pod, ledger, expected_bytes) -> None:
    snapshot = make_snapshot(node_cpu=[8000], pods=[pod], workloads=[{}], window=WINDOW)
    floors = memory_floors(snapshot, ledger, CONFIG)
    assert floors[0] == pytest.approx(expected_bytes), case


def test_a_short_window_never_shrinks_memory() -> None:
    snapshot = make_snapshot(node_cpu=[8000], pods=[one_pod(memory=GI, memory_usage=300 * MI)], workloads=[{}],
                             window=WINDOW)
    floors = memory_floors(snapshot, MemoryLedger(), HeuristicConfig(memory_shrink_min_samples=WINDOW + 1))
    assert floors[0] == GI


def test_the_limit_hit_is_shared_by_every_pod_of_the_workload() -> None:
    snapshot = make_snapshot(node_cpu=[8000], workloads=[{}], window=WINDOW, pods=[
        one_pod(memory=512 * MI, memory_limit=512 * MI, memory_usage=300 * MI, ooms=1),
        one_pod(memory=512 * MI, memory_limit=512 * MI, memory_usage=300 * MI),
    ])
    np.testing.assert_allclose(memory_floors(snapshot, MemoryLedger(), CONFIG), [1024 * MI, 1024 * MI])


def test_after_a_kill_the_heuristic_grows_memory_and_bumps_only_once() -> None:
    """The OOM loop: the killed step leaves no sample, and sizing on the survivors shrank memory."""
    killed = one_pod(memory=512 * MI, memory_limit=512 * MI, memory_usage=300 * MI, ooms=1)
    snapshot = make_snapshot(node_cpu=[8000], pods=[killed], workloads=[{}], window=WINDOW)
    policy = HeuristicPolicy(CONFIG)
    assert policy.size(snapshot).memory_request_bytes[0] >= 1024 * MI
    # Next call: the same kill, still in the window, at the new size: kept, not doubled again.
    resized = make_snapshot(node_cpu=[8000], pods=[{**killed, "memory": 1024 * MI, "memory_limit": 1024 * MI}],
                            workloads=[{}], window=WINDOW)
    assert policy.size(resized).memory_request_bytes[0] == pytest.approx(1024 * MI)
