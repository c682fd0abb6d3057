"""The safety pipeline (thrifty.safety): table-driven cases for each stage, and properties that no
ask, however wild, gets past a bound."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.snapshots import GI, MI, make_snapshot
from thrifty.actions import ContainerResources
from thrifty.safety import (
    ChurnLedger,
    InvalidPolicyOutput,
    ResourceBounds,
    SafetyConfig,
    bound_replicas,
    bound_resources,
    choose_node,
    feasible_nodes,
    resize_allowed,
    room_for_pods,
)

CONFIG = SafetyConfig()
NOW = 10_000.0
NAN = math.nan
UNBOUNDED = ResourceBounds(NAN, NAN, NAN, NAN)


# --- Config and ledger -------------------------------------------------------------------------

@pytest.mark.parametrize(("field", "value"), [
    ("max_replica_step", 0), ("max_resource_step_ratio", 1.0), ("min_resource_change_fraction", -0.1),
    ("scale_out_cooldown_seconds", -1.0), ("scale_in_cooldown_seconds", -1.0),
    ("resize_cooldown_seconds", -5.0), ("min_cpu_millicores", -1.0), ("min_memory_bytes", -1.0),
])
def test_config_refuses_bad_values_naming_the_field(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=f"SafetyConfig.{field}"):
        SafetyConfig(**{field: value})


def test_ledger_records_only_what_changed() -> None:
    ledger = ChurnLedger().record(workload="w", time_seconds=1.0, scaled_by=2, resized=False)
    ledger = ledger.record(workload="w", time_seconds=2.0, scaled_by=-1, resized=True)
    ledger = ledger.record(workload="v", time_seconds=3.0, scaled_by=0, resized=False)
    assert ledger == ChurnLedger({"w": 1.0}, {"w": 2.0}, {"w": 2.0})


@pytest.mark.parametrize(("last_resize", "allowed"), [(None, True), (NOW - 60.0, True), (NOW - 59.0, False)])
def test_resize_cooldown(last_resize: float | None, allowed: bool) -> None:
    ledger = ChurnLedger(last_resize={"w": last_resize} if last_resize is not None else {})
    assert resize_allowed(workload="w", now_seconds=NOW, ledger=ledger, config=CONFIG) is allowed


# --- Placement: validate and check capacity ------------------------------------------------------

def placement_snapshot():
    # node-0: 1000m, 600m used; node-1: 4000m empty; node-2: not schedulable; node-3: 8Gi memory only 1Gi
    return make_snapshot(
        node_cpu=[1000, 4000, 4000, 4000], node_memory=[4 * GI, 4 * GI, 4 * GI, GI],
        schedulable=[True, True, False, True],
        pods=[{"node": 0, "cpu": 600}, {"cpu": 500, "memory": 2 * GI}],
    )


def test_feasible_nodes() -> None:
    snapshot = placement_snapshot()
    assert feasible_nodes(snapshot, 500, 2 * GI).tolist() == [False, True, False, False]
    assert feasible_nodes(snapshot, 400, 128 * MI).tolist() == [True, True, False, True]


@pytest.mark.parametrize(("scores", "node"), [
    ([9.0, 1.0, 5.0, 8.0], 1),  # the only feasible node, whatever the others score
    ([NAN, 1.0, NAN, NAN], 1),  # infeasible nodes may score anything
    ([0.0, -math.inf, 0.0, 0.0], "invalid"),  # a feasible node must get a finite score
    ([1.0, NAN, 1.0, 1.0], "invalid"),
    ([1.0, 2.0], "invalid"),  # wrong shape
    ([[1.0, 2.0, 3.0, 4.0]], "invalid"),
])
def test_choose_node(scores: list, node: int | str) -> None:
    snapshot = placement_snapshot()
    if node == "invalid":
        with pytest.raises(InvalidPolicyOutput):
            choose_node(snapshot, 1, np.array(scores))
    else:
        assert choose_node(snapshot, 1, np.array(scores)) == node


def test_choose_node_when_nothing_fits() -> None:
    snapshot = make_snapshot(node_cpu=[1000], pods=[{"cpu": 2000}])
    assert choose_node(snapshot, 0, np.array([NAN])) == -1


@pytest.mark.parametrize(("cpu", "memory", "room"), [
    (500, 128 * MI, 0 + 8 + 8),  # node-0 has 400m free; node-2 is not schedulable
    (100, 0, 4 + 40 + 40),
    (500, 512 * MI, 0 + 8 + 2),  # node-3 has only 1Gi
    (0, 0, 10**6),
    (5000, 128 * MI, 0),
])
def test_room_for_pods(cpu: float, memory: float, room: int) -> None:
    snapshot = make_snapshot(node_cpu=[1000, 4000, 4000, 4000], node_memory=[4 * GI, 4 * GI, 4 * GI, GI],
                             schedulable=[True, True, False, True], pods=[{"node": 0, "cpu": 600, "memory": 0}])
    assert room_for_pods(snapshot, cpu, memory) == room


# --- Replicas: bound, limit the step, cool down, check capacity ---------------------------------

@pytest.mark.parametrize(("current", "asked", "bounds", "room", "ledger", "target", "why"), [
    (3, 3, (1, 5), 10, {}, 3, None),
    (3, 4, (1, 5), 10, {}, 4, None),
    (3, 9, (1, 10), 10, {}, 5, "step limit"),
    (3, 50, (1, 10), 10, {}, 5, "step limit"),
    (6, -7, (1, 10), 10, {}, 4, "step limit"),
    (4, 6, (1, 5), 10, {}, 5, "replicas bounds"),
    (2, 0, (1, 5), 10, {}, 1, "replicas bounds"),
    (3, 50, (1, 5), 10, {}, 5, "replicas bounds"),
    (3, 5, (1, 5), 1, {}, 4, "cluster capacity"),
    (3, 5, (1, 5), 0, {}, 3, "cluster capacity"),
    (0, 3, (1, 5), 10, {}, 1, "replicas.min"),  # below min: back to min whatever was asked
    (0, 0, (2, 5), 1, {}, 1, "replicas.min"),  # ... as far as the cluster has room
    (7, 7, (1, 5), 10, {}, 5, "replicas.max"),  # above max: back to max
    (3, 5, (1, 5), 10, {"out": NOW - 10}, 3, "scale-out cooldown"),
    (3, 5, (1, 5), 10, {"out": NOW - 30}, 5, None),
    (3, 2, (1, 5), 10, {"out": NOW - 100}, 3, "scale-in stabilisation window"),
    (3, 2, (1, 5), 10, {"in": NOW - 100}, 3, "scale-in stabilisation window"),
    (3, 2, (1, 5), 10, {"in": NOW - 300}, 2, None),
    (0, 5, (1, 5), 10, {"out": NOW}, 1, "replicas.min"),  # bounds win over cooldowns
    (0, 0, (0, 5), 10, {}, 0, None),  # scaled to zero, allowed by min 0
])
def test_bound_replicas(current: int, asked: int, bounds: tuple[int, int], room: int, ledger: dict, target: int,
                        why: str | None) -> None:
    churn = ChurnLedger({"w": ledger["out"]} if "out" in ledger else {}, {"w": ledger["in"]} if "in" in ledger else {})
    verdict = bound_replicas(workload="w", current=current, asked=asked, minimum=bounds[0], maximum=bounds[1],
                             room_for_new_pods=room, now_seconds=NOW, ledger=churn, config=CONFIG)
    assert (verdict.target, verdict.limited_by) == (target, why)


@given(current=st.integers(0, 30), asked=st.integers(-10**6, 10**6), minimum=st.integers(0, 10),
       span=st.integers(0, 10), room=st.integers(0, 50), step=st.integers(1, 5),
       last_out=st.one_of(st.none(), st.floats(0, NOW)), last_in=st.one_of(st.none(), st.floats(0, NOW)))
def test_no_replica_ask_escapes_the_bounds(current: int, asked: int, minimum: int, span: int, room: int, step: int,
                                           last_out: float | None, last_in: float | None) -> None:
    maximum = minimum + span
    ledger = ChurnLedger({"w": last_out} if last_out is not None else {}, {"w": last_in} if last_in is not None else {})
    config = SafetyConfig(max_replica_step=step)
    target = bound_replicas(workload="w", current=current, asked=asked, minimum=minimum, maximum=maximum,
                            room_for_new_pods=room, now_seconds=NOW, ledger=ledger, config=config).target
    if current < minimum:
        assert current <= target <= minimum and target - current <= room
    elif current > maximum:
        assert target == maximum
    else:
        assert minimum <= target <= maximum
        assert abs(target - current) <= step
        assert target - current <= room
        if target < current:
            assert (asked < current)
        if target > current:
            assert asked > current


# --- Resources: bound, limit the step, hysteresis, check capacity --------------------------------

def size(cpu: float, memory: float = 256 * MI, cpu_limit: float = math.inf, memory_limit: float = math.inf):
    return ContainerResources(cpu, cpu_limit, memory, memory_limit)


BOUNDS = ResourceBounds(100.0, 1000.0, 64 * MI, 1 * GI)


@pytest.mark.parametrize(("current", "asked", "bounds", "free", "target", "why"), [
    (size(400), size(500), BOUNDS, math.inf, size(500), None),
    (size(400), size(420), BOUNDS, math.inf, size(400), None),  # < 10 %: hysteresis keeps it
    (size(400), size(2000), BOUNDS, math.inf, size(800), "step limit"),
    (size(400), size(50), BOUNDS, math.inf, size(200), "step limit"),
    (size(800), size(1600), BOUNDS, math.inf, size(1000), "spec maximum"),
    (size(150), size(60), BOUNDS, math.inf, size(100), "spec minimum"),
    (size(50), size(50), BOUNDS, math.inf, size(100), "spec minimum"),  # outside the bounds: brought in
    (size(50), size(500), BOUNDS, math.inf, size(100), "step limit"),
    (size(400), size(800), BOUNDS, 100.0, size(500), "node capacity"),
    (size(400), size(800), BOUNDS, -50.0, size(400), "node capacity"),  # an overfull node: no growth
    (size(400), size(5), UNBOUNDED, math.inf, size(200), "step limit"),
    (size(15), size(1), UNBOUNDED, math.inf, size(10), "spec minimum"),  # the absolute floor
    # limits follow requests and never fall below them
    (size(400, cpu_limit=800), size(600, cpu_limit=1200), BOUNDS, math.inf, size(600, cpu_limit=1200), None),
    (size(400, cpu_limit=800), size(2000, cpu_limit=4000), BOUNDS, math.inf, size(800, cpu_limit=1600),
     "step limit"),
    (size(400, cpu_limit=800), size(600, cpu_limit=300), BOUNDS, math.inf, size(600, cpu_limit=600), None),
    (size(400, memory=256 * MI, memory_limit=512 * MI), size(400, memory=4 * GI, memory_limit=8 * GI), BOUNDS,
     math.inf, size(400, memory=512 * MI, memory_limit=1 * GI), "step limit"),
])
def test_bound_resources(current: ContainerResources, asked: ContainerResources, bounds: ResourceBounds, free: float,
                         target: ContainerResources, why: str | None) -> None:
    result, limited_by = bound_resources(current=current, asked=asked, bounds=bounds, node_cpu_free_millicores=free,
                                         node_memory_free_bytes=math.inf, config=CONFIG)
    assert result == target
    if why is not None:
        assert limited_by == why


def _between(value: float, current: float, low: float, high: float) -> bool:
    """Within [low, high], or strictly on the way there from ``current``."""
    low = low if np.isfinite(low) else -math.inf
    high = high if np.isfinite(high) else math.inf
    if low <= value <= high:
        return True
    return (current < low and current < value < low) or (current > high and high < value < current)


def _ordered(low: float, high: float) -> tuple[float, float]:
    """Bounds as the CRD allows them: min <= max when both are set."""
    return (min(low, high), max(low, high)) if not math.isnan(low + high) else (low, high)


finite_or_not = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.floats(0.0, 1e7))
bound_values = st.one_of(st.just(NAN), st.floats(1.0, 1e6))


@settings(max_examples=300)
@given(cpu=st.integers(1, 10**5), memory=st.integers(1, 10**11),
       limit_ratio=st.one_of(st.just(math.inf), st.floats(1, 8)),
       asked_cpu=finite_or_not, asked_memory=finite_or_not, asked_limit=finite_or_not,
       bounds=st.tuples(bound_values, bound_values, bound_values, bound_values),
       free_cpu=st.floats(-1e5, 1e6), free_memory=st.floats(-1e10, 1e12))
def test_no_resource_ask_escapes_the_bounds(cpu: int, memory: int, limit_ratio: float, asked_cpu: float,
                                            asked_memory: float, asked_limit: float, bounds: tuple,
                                            free_cpu: float, free_memory: float) -> None:
    """Requests are whole millicores and bytes, as the API stores them. Only finite positive asks
    reach bound_resources (the core drops the rest); with any of them the result is finite, inside
    the bounds or moving towards them, never grows past the node's free room, and keeps limits
    above requests."""
    cpu_min, cpu_max = _ordered(*bounds[:2])
    memory_min, memory_max = _ordered(*bounds[2:])
    current = size(cpu, memory, cpu * limit_ratio, memory * limit_ratio)
    asked_cpu = asked_cpu if math.isfinite(asked_cpu) and asked_cpu > 0 else cpu
    asked_memory = asked_memory if math.isfinite(asked_memory) and asked_memory > 0 else memory
    asked_limit = asked_limit if math.isfinite(asked_limit) and asked_limit >= asked_cpu else asked_cpu * limit_ratio
    asked = size(asked_cpu, asked_memory, asked_limit, asked_memory * limit_ratio)
    result, _ = bound_resources(current=current, asked=asked,
                                bounds=ResourceBounds(cpu_min, cpu_max, memory_min, memory_max),
                                node_cpu_free_millicores=free_cpu, node_memory_free_bytes=free_memory, config=CONFIG)
    assert math.isfinite(result.cpu_request_millicores) and math.isfinite(result.memory_request_bytes)
    assert result.cpu_limit_millicores >= result.cpu_request_millicores
    assert result.memory_limit_bytes >= result.memory_request_bytes
    # The floors apply unless the spec's maximum is below them: the maximum wins.
    cpu_low = np.fmin(np.fmax(cpu_min, CONFIG.min_cpu_millicores), cpu_max)
    memory_low = np.fmin(np.fmax(memory_min, CONFIG.min_memory_bytes), memory_max)
    # Rounding to whole millicores and bytes may cross a fractional bound by less than one unit.
    if result.cpu_request_millicores != cpu:
        assert _between(result.cpu_request_millicores, cpu, cpu_low - 1, cpu_max + 1)
        assert result.cpu_request_millicores - cpu <= max(free_cpu, 0.0) + 1
    if result.memory_request_bytes != memory:
        assert _between(result.memory_request_bytes, memory, memory_low - 1, memory_max + 1)
        assert result.memory_request_bytes - memory <= max(free_memory, 0.0) + 1


def test_a_sub_unit_ask_keeps_the_limit_finite() -> None:
    """Found by the property above: an asked request of 3.6e-306 millicores is raised to the floor,
    and scaling the limit by floor / ask overflowed to an infinite limit (no limit at all)."""
    current = size(500, 2**28, 1000, 2**29)
    asked = size(3.6e-306, 2**28, 1000.0, 2**29)
    result, _ = bound_resources(current=current, asked=asked, bounds=ResourceBounds(NAN, NAN, NAN, NAN),
                                node_cpu_free_millicores=1e6, node_memory_free_bytes=1e12, config=CONFIG)
    assert result.cpu_request_millicores >= CONFIG.min_cpu_millicores
    assert result.cpu_request_millicores <= result.cpu_limit_millicores < math.inf
