"""Unit tests of thrifty.features: hand-worked cases for every feature, edge cases, vectorisation,
the snapshot-level observations, the normaliser, the schema rule and the ``features`` command."""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tests.unit.snapshots import GI, MI, make_snapshot
from thrifty import cli
from thrifty.energy import DEFAULT_PROFILES, PowerModel
from thrifty.features import (
    CONTAINER_OBSERVATION_NAMES,
    CONTEXT_FEATURE_NAMES,
    FEATURE_NAMES,
    NODE_FEATURE_NAMES,
    PAIR_FEATURE_NAMES,
    PLACEMENT_ROW_NAMES,
    POD_FEATURE_NAMES,
    SCHEMA_NAMES,
    SCHEMA_VERSION,
    WORKLOAD_FEATURE_NAMES,
    PodFeatureCache,
    RunningNormaliser,
    container_features,
    from_snapshot,
    node_features,
    placement_observation,
    pod_features,
    schema_fingerprint,
    workload_features,
)
from thrifty.features.schema import SCHEMA_FINGERPRINTS
from thrifty.snapshot import ClusterSnapshot
from thrifty.traces.model import ContainerUsage

SMALL = DEFAULT_PROFILES["small"]
"""The power class of the hand-built nodes of the power-feature tests."""

STEP = 300.0
"""Seconds between samples in the hand-worked cases (5 minutes: 12 samples per hour)."""

DOCS = Path(__file__).resolve().parents[2] / "docs" / "features.md"


def features(
    cpu: list[list[float]] | np.ndarray,
    memory: list[list[float]] | np.ndarray | None = None,
    *,
    cpu_request: float | np.ndarray = 1000.0,
    cpu_limit: float | np.ndarray = np.inf,
    memory_request: float | np.ndarray = 1e9,
    memory_limit: float | np.ndarray = np.inf,
    throttled: float | np.ndarray = 0.0,
    ooms: float | np.ndarray = 0.0,
    step: float = STEP,
) -> dict[str, np.ndarray]:
    """container_features as {column name: (C,) values}; memory defaults to the CPU series."""
    cpu = np.asarray(cpu, dtype=float)
    memory = cpu if memory is None else np.asarray(memory, dtype=float)
    matrix = container_features(
        cpu, memory, step, cpu_request, cpu_limit, memory_request, memory_limit, throttled, ooms
    )
    assert matrix.shape == (cpu.shape[0], len(FEATURE_NAMES))
    assert np.all(np.isfinite(matrix))
    return dict(zip(FEATURE_NAMES, matrix.T, strict=True))


def sine(
    period_steps: float, window: int = 288, level: float = 500.0, amplitude: float = 200.0
) -> np.ndarray:
    return level + amplitude * np.sin(2 * np.pi * np.arange(window) / period_steps)


# ---------------------------------------------------------------------------------------------
# Container behaviour: hand-worked, table-driven
# ---------------------------------------------------------------------------------------------

NO_DATA = {
    "cpu_valid_fraction": 0.0,
    "cpu_has_data": 0.0,
    "cpu_mean_millicores": 0.0,
    "cpu_std_millicores": 0.0,
    "cpu_cv": 0.0,
    "cpu_p50_millicores": 0.0,
    "cpu_p99_millicores": 0.0,
    "cpu_max_millicores": 0.0,
    "cpu_burstiness": 0.0,
    "cpu_peak_to_mean": 1.0,
    "cpu_trend_per_hour": 0.0,
    "cpu_period_seconds": 0.0,
    "cpu_period_strength": 0.0,
    "memory_growth_bytes_per_hour": 0.0,
    "memory_growth_per_hour": 0.0,
    "cpu_slack": 0.0,
    "cpu_slack_p95": 0.0,
    "cpu_limit_headroom": 1.0,
    "memory_limit_headroom": 1.0,
    "cpu_throttled_periods_per_hour": 0.0,
    "oom_kills_per_hour": 0.0,
}

SPIKE = [100.0] * 9 + [1000.0]  # mean 190, population sigma 270
RAMP = [100.0 + 10.0 * i for i in range(24)]  # +10 millicores per 5-minute step: +120 per hour

CASES = [
    pytest.param([[]], {}, NO_DATA, id="empty-window"),
    pytest.param([[np.nan] * 12], {}, NO_DATA, id="all-nan"),
    pytest.param([[np.inf, -np.inf, np.nan]], {}, NO_DATA, id="all-infinite-is-missing"),
    pytest.param(
        [[250.0] * 12],
        {},
        {
            "cpu_valid_fraction": 1.0,
            "cpu_has_data": 1.0,
            "cpu_mean_millicores": 250.0,
            "cpu_std_millicores": 0.0,
            "cpu_cv": 0.0,
            "cpu_p50_millicores": 250.0,
            "cpu_p90_millicores": 250.0,
            "cpu_p95_millicores": 250.0,
            "cpu_p99_millicores": 250.0,
            "cpu_max_millicores": 250.0,
            "cpu_burstiness": -1.0,
            "cpu_peak_to_mean": 1.0,
            "cpu_trend_per_hour": 0.0,
            "cpu_period_seconds": 0.0,
            "cpu_period_strength": 0.0,
            "cpu_slack": 0.75,
            "cpu_slack_p95": 0.75,
        },
        id="constant",
    ),
    pytest.param(
        [[0.1] * 288],
        {},
        {"cpu_std_millicores": 0.0, "cpu_cv": 0.0, "cpu_burstiness": -1.0, "cpu_period_strength": 0.0},
        id="constant-with-rounding",
    ),
    pytest.param(
        [[0.0] * 12],
        {},
        {
            "cpu_cv": 0.0,
            "cpu_burstiness": -1.0,
            "cpu_peak_to_mean": 1.0,
            "cpu_slack": 1.0,
            "cpu_trend_per_hour": 0.0,
        },
        id="all-zero",
    ),
    pytest.param(
        [[1.0, np.nan, 3.0, np.nan, 5.0]],
        {},
        {
            "cpu_valid_fraction": 0.6,
            "cpu_has_data": 1.0,
            "cpu_mean_millicores": 3.0,
            "cpu_std_millicores": np.sqrt(8.0 / 3.0),
            "cpu_p50_millicores": 3.0,
            "cpu_p90_millicores": 4.6,
            "cpu_max_millicores": 5.0,
            # 1, 3, 5 at steps 0, 2, 4: +1 per step, 12 steps per hour, over a mean of 3.
            "cpu_trend_per_hour": 12.0 / 3.0,
        },
        id="nan-in-data",
    ),
    pytest.param(
        [list(range(1, 102))],
        {},
        {
            "cpu_p50_millicores": 51.0,
            "cpu_p90_millicores": 91.0,
            "cpu_p95_millicores": 96.0,
            "cpu_p99_millicores": 100.0,
            "cpu_max_millicores": 101.0,
            "cpu_mean_millicores": 51.0,
        },
        id="percentiles",
    ),
    pytest.param(
        [SPIKE],
        {},
        {
            "cpu_mean_millicores": 190.0,
            "cpu_std_millicores": 270.0,
            "cpu_cv": 270.0 / 190.0,
            "cpu_burstiness": (270.0 - 190.0) / (270.0 + 190.0),
            "cpu_peak_to_mean": 1000.0 / 190.0,
            "cpu_p50_millicores": 100.0,
            "cpu_max_millicores": 1000.0,
            "cpu_limit_headroom": 1.0,
        },
        id="spike",
    ),
    pytest.param(
        [RAMP],
        {},
        {
            "cpu_mean_millicores": 215.0,
            "cpu_trend_per_hour": 120.0 / 215.0,
            "cpu_period_seconds": 0.0,
            "cpu_period_strength": 0.0,
        },
        id="linear-ramp",
    ),
    pytest.param(
        [[500.0] * 12],
        {"cpu_request": 0.0, "memory_request": 0.0},
        {"cpu_slack": -10.0, "cpu_slack_p95": -10.0, "memory_slack": -10.0},
        id="zero-request-used",
    ),
    pytest.param(
        [[0.0] * 12],
        {"cpu_request": 0.0},
        {"cpu_slack": 0.0, "cpu_slack_p95": 0.0},
        id="zero-request-unused",
    ),
    pytest.param([[500.0] * 12], {"cpu_request": np.nan}, {"cpu_slack": 0.0}, id="unknown-request"),
    pytest.param([[500.0] * 12], {"cpu_request": np.inf}, {"cpu_slack": 1.0}, id="infinite-request"),
    pytest.param(
        [[400.0] * 11 + [600.0]],
        {"cpu_request": 500.0},
        # Mean (11 * 400 + 600) / 12; p95 at rank 0.95 * 11 = 10.45: 400 + 0.45 * 200 = 490.
        {"cpu_slack": 1.0 - (5000.0 / 12) / 500.0, "cpu_slack_p95": 1.0 - 490.0 / 500.0},
        id="slack-mean-and-p95",
    ),
    pytest.param([[100.0] * 12], {"cpu_request": 10.0}, {"cpu_slack": -9.0}, id="over-request-ten-times"),
    pytest.param([[100.0] * 12], {"cpu_request": 1.0}, {"cpu_slack": -10.0}, id="slack-floor"),
    pytest.param([[250.0] * 12], {"cpu_limit": np.inf}, {"cpu_limit_headroom": 1.0}, id="inf-limit"),
    pytest.param([[250.0] * 12], {"cpu_limit": 0.0}, {"cpu_limit_headroom": 1.0}, id="zero-limit-is-none"),
    pytest.param([[250.0] * 12], {"cpu_limit": np.nan}, {"cpu_limit_headroom": 1.0}, id="unknown-limit"),
    pytest.param([SPIKE], {"cpu_limit": 2000.0}, {"cpu_limit_headroom": 0.5}, id="limit-headroom-at-peak"),
    pytest.param(
        [[np.nan] * 12], {"cpu_limit": 2000.0}, {"cpu_limit_headroom": 0.0}, id="limit-without-data"
    ),
    pytest.param(
        [[100.0] * 12],
        {"throttled": 30.0, "ooms": 2.0},
        {"cpu_throttled_periods_per_hour": 30.0, "oom_kills_per_hour": 2.0},
        id="rates-over-one-hour",
    ),
    pytest.param(
        [[100.0] * 24],
        {"throttled": 30.0, "ooms": 1.0},
        {"cpu_throttled_periods_per_hour": 15.0, "oom_kills_per_hour": 0.5},
        id="rates-over-two-hours",
    ),
    pytest.param([[]], {"throttled": 5.0, "ooms": 5.0}, {"oom_kills_per_hour": 0.0}, id="rates-empty-window"),
    pytest.param(
        [[1.0] * 12], {"throttled": np.nan, "ooms": np.nan}, {"oom_kills_per_hour": 0.0}, id="rates-unknown"
    ),
]


@pytest.mark.parametrize(("cpu", "options", "expected"), CASES)
@pytest.mark.filterwarnings("error")  # degenerate inputs must not warn either
def test_container_feature_cases(cpu: list[list[float]], options: dict, expected: dict[str, float]) -> None:
    values = features(cpu, **options)
    for name, value in expected.items():
        assert values[name][0] == pytest.approx(value, rel=1e-9, abs=1e-12), name


def test_memory_growth_of_a_linear_leak_is_exact() -> None:
    leak = 1e9 + 1e6 * np.arange(48)  # +1 MB per 5 minutes: +12 MB per hour
    values = features([np.full(48, 100.0)], [leak])
    assert values["memory_growth_bytes_per_hour"][0] == pytest.approx(12e6, rel=1e-12)
    assert values["memory_growth_per_hour"][0] == pytest.approx(12e6 / leak.mean(), rel=1e-12)
    assert values["memory_period_strength"][0] == 0.0


def test_memory_block_mirrors_cpu_block() -> None:
    values = features([SPIKE], [np.array(SPIKE) * 1e6], memory_limit=2e9, memory_request=500e6)
    assert values["memory_mean_bytes"][0] == pytest.approx(190e6)
    assert values["memory_cv"][0] == pytest.approx(270.0 / 190.0)
    assert values["memory_burstiness"][0] == pytest.approx(80.0 / 460.0)
    assert values["memory_peak_to_mean"][0] == pytest.approx(1000.0 / 190.0)
    assert values["memory_limit_headroom"][0] == pytest.approx(0.5)
    assert values["memory_slack"][0] == pytest.approx(1.0 - 190.0 / 500.0)


def sine_rows(period_steps: float, phases: int = 8, window: int = 288) -> np.ndarray:
    shifts = np.linspace(0, 2 * np.pi, phases, endpoint=False)[:, None]
    return 500.0 + 200.0 * np.sin(2 * np.pi * np.arange(window) / period_steps + shifts)


@pytest.mark.parametrize("period_steps", [6.0, 12.0, 24.0, 37.5, 72.0])
def test_pure_sine_period_within_one_step(period_steps: float) -> None:
    values = features(sine_rows(period_steps))
    np.testing.assert_array_less(np.abs(values["cpu_period_seconds"] / STEP - period_steps), 1.0)
    # The strength is discounted by the share of the window the lag spans.
    assert np.all(values["cpu_period_strength"] >= 0.9 * (1.0 - period_steps / 288))


@pytest.mark.parametrize("period_steps", [96.0, 144.0])
def test_long_period_within_three_percent(period_steps: float) -> None:
    # Two or three cycles in the window: the sample autocorrelation's peak moves with the phase.
    values = features(sine_rows(period_steps))
    np.testing.assert_array_less(np.abs(values["cpu_period_seconds"] / STEP / period_steps - 1.0), 0.03)
    assert np.all(values["cpu_period_strength"] >= 0.3)


def test_period_between_samples_is_not_mistaken_for_its_multiple() -> None:
    # 10.5 steps: the samples repeat exactly only every 21 steps, which peaks higher.
    values = features(sine_rows(10.5))
    np.testing.assert_array_less(np.abs(values["cpu_period_seconds"] / STEP - 10.5), 1.0)


@pytest.mark.parametrize(
    ("name", "series"),
    [
        ("sine-plus-trend", sine(24.0) + 3.0 * np.arange(288)),
        ("sine-with-30%-gaps", np.where(np.random.default_rng(1).random(288) < 0.3, np.nan, sine(24.0))),
        ("noisy-sine", sine(24.0) + np.random.default_rng(2).normal(0, 100, 288)),
        ("square-wave", np.where(np.arange(288) % 24 < 12, 100.0, 900.0)),
        ("spike-train", np.where(np.arange(288) % 24 == 0, 1000.0, 100.0)),
    ],
)
def test_period_found_through_trend_gaps_noise_and_shape(name: str, series: np.ndarray) -> None:
    values = features([series])
    assert abs(values["cpu_period_seconds"][0] / STEP - 24.0) <= 1.0, name
    assert values["cpu_period_strength"][0] >= 0.3, name


def test_white_noise_has_no_period() -> None:
    noise = np.random.default_rng(3).normal(500.0, 50.0, (200, 288))
    values = features(noise)
    assert np.mean(values["cpu_period_strength"] > 0) < 0.05
    assert np.all((values["cpu_period_strength"] == 0) == (values["cpu_period_seconds"] == 0))


def _ar1(coefficient: float, rows: int, window: int, rng: np.random.Generator) -> np.ndarray:
    series = np.zeros((rows, window))
    shocks = rng.normal(0.0, 1.0, (rows, window))
    for t in range(1, window):  # a loop over time, vectorised over rows
        series[:, t] = coefficient * series[:, t - 1] + shocks[:, t]
    return series


def test_period_detection_rates() -> None:
    """The rates quoted in docs/features.md, with margins (1,000 seeded series each)."""
    rng = np.random.default_rng(7)
    rows, window = 1000, 288
    steps = np.arange(window)

    def periodic_share(series: np.ndarray, period: float | None = None) -> float:
        found = features(series)["cpu_period_seconds"] / STEP
        hits = found > 0 if period is None else np.abs(found - period) <= 1.0
        return float(np.mean(hits))

    cycle = 200.0 * np.sin(2 * np.pi * steps / 24 + rng.uniform(0, 2 * np.pi, (rows, 1)))
    assert periodic_share(rng.normal(500, 50, (rows, window))) < 0.01
    assert periodic_share(500 + 10 * _ar1(0.8, rows, window, rng)) < 0.03
    assert periodic_share(500 + np.cumsum(rng.normal(0, 5, (rows, window)), axis=1)) < 0.08
    assert periodic_share(500 + cycle + rng.normal(0, 100, (rows, window)), period=24) > 0.97
    assert periodic_share(500 + cycle + rng.normal(0, 200, (rows, window)), period=24) > 0.4


def test_too_short_for_two_cycles_has_no_period() -> None:
    assert features([sine(2.0, window=3)])["cpu_period_seconds"][0] == 0.0
    # 12 samples can show at most a 6-step period, so an 8-step cycle is not reported as such.
    assert features([sine(8.0, window=12)])["cpu_period_seconds"][0] <= 6 * STEP


def test_matches_numpy_nan_statistics_on_gappy_rows() -> None:
    rng = np.random.default_rng(4)
    cpu = rng.gamma(2.0, 100.0, (50, 40))
    cpu[rng.random(cpu.shape) < 0.2] = np.nan
    values = features(cpu)
    np.testing.assert_allclose(values["cpu_mean_millicores"], np.nanmean(cpu, axis=1), rtol=1e-12)
    np.testing.assert_allclose(values["cpu_std_millicores"], np.nanstd(cpu, axis=1), rtol=1e-12)
    np.testing.assert_allclose(values["cpu_max_millicores"], np.nanmax(cpu, axis=1), rtol=1e-12)
    for q in (50, 90, 95, 99):
        np.testing.assert_allclose(
            values[f"cpu_p{q}_millicores"], np.nanpercentile(cpu, q, axis=1), rtol=1e-12
        )
    np.testing.assert_allclose(values["cpu_valid_fraction"], np.mean(np.isfinite(cpu), axis=1))


def _mixed_rows(count: int, window: int) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Rows that cycle through every kind of case, with varied requests and limits."""
    rng = np.random.default_rng(5)
    steps = np.arange(window)
    kinds = [
        lambda: sine(rng.uniform(4, window / 2), window) + rng.normal(0, 20, window),
        lambda: rng.normal(500, 50, window),
        lambda: np.full(window, np.nan),
        lambda: np.full(window, rng.uniform(0, 1000)),
        lambda: 50 + rng.uniform(0, 5) * steps,
        lambda: np.where(steps == rng.integers(window), 5000.0, 100.0),
        lambda: np.where(rng.random(window) < 0.5, np.nan, rng.gamma(2, 100, window)),
        lambda: np.zeros(window),
        lambda: 500 + np.cumsum(rng.normal(0, 5, window)),
        lambda: np.where(rng.random(window) < 0.05, np.nan, sine(24, window)),
    ]
    cpu = np.array([kinds[i % len(kinds)]() for i in range(count)])
    memory = cpu * 1e6 + 1e8
    options = {
        "cpu_request": rng.choice([0.0, 250.0, 1000.0, np.nan, np.inf], count),
        "cpu_limit": rng.choice([np.inf, 2000.0, 0.0], count),
        "memory_request": rng.choice([0.0, 5e8, 1e9], count),
        "memory_limit": rng.choice([np.inf, 2e9], count),
        "throttled": rng.integers(0, 100, count).astype(float),
        "ooms": rng.integers(0, 3, count).astype(float),
    }
    return cpu, memory, options


def test_ten_thousand_containers_equal_one_at_a_time() -> None:
    cpu, memory, options = _mixed_rows(10_000, 288)
    batch = features(cpu, memory, **options)
    # Stride 7 visits every kind (7 and 10 are coprime) in 1,429 single-container calls.
    for row in range(0, 10_000, 7):
        single = features(
            cpu[row : row + 1], memory[row : row + 1], **{k: v[row] for k, v in options.items()}
        )
        for name in FEATURE_NAMES:
            assert single[name][0] == pytest.approx(batch[name][row], rel=1e-9, abs=1e-6), (row, name)


@settings(max_examples=60, deadline=None)
@given(
    cpu=hnp.arrays(
        np.float64,
        st.tuples(st.integers(1, 4), st.integers(0, 40)),
        elements=st.one_of(st.floats(-1e12, 1e12), st.sampled_from([np.nan, np.inf, -np.inf, 0.0])),
    ),
    request=st.sampled_from([0.0, -5.0, 1.0, 1e9, np.nan, np.inf]),
    limit=st.sampled_from([0.0, -5.0, 1.0, 1e9, np.nan, np.inf]),
    step=st.floats(0.001, 1e6),
)
def test_output_is_always_finite(cpu: np.ndarray, request: float, limit: float, step: float) -> None:
    values = features(
        cpu,
        cpu[::-1],
        cpu_request=request,
        cpu_limit=limit,
        memory_request=request,
        memory_limit=limit,
        throttled=request,
        ooms=limit,
        step=step,
    )
    assert all(np.all(np.isfinite(column)) for column in values.values())
    assert np.all((values["cpu_valid_fraction"] >= 0) & (values["cpu_valid_fraction"] <= 1))
    assert np.all((values["cpu_slack"] >= -10) & (values["cpu_slack"] <= 1))
    assert np.all((values["cpu_period_strength"] >= 0) & (values["cpu_period_strength"] <= 1))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: container_features(np.zeros(5), np.zeros(5), STEP, 1, 1, 1, 1), "cpu_history_millicores"),
        (
            lambda: container_features(np.zeros((2, 5)), np.zeros((2, 4)), STEP, 1, 1, 1, 1),
            "memory_history_bytes",
        ),
        (lambda: container_features(np.zeros((2, 5)), np.zeros((2, 5)), 0.0, 1, 1, 1, 1), "step_seconds"),
        (
            lambda: container_features(np.zeros((2, 5)), np.zeros((2, 5)), STEP, [1, 2, 3], 1, 1, 1),
            "cpu_request",
        ),
    ],
)
def test_bad_inputs_are_named(call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()


def test_no_containers() -> None:
    assert container_features(np.zeros((0, 288)), np.zeros((0, 288)), STEP, 1, 1, 1, 1).shape == (
        0,
        len(FEATURE_NAMES),
    )


# ---------------------------------------------------------------------------------------------
# Schema
# ---------------------------------------------------------------------------------------------


def test_feature_names_match_columns_and_are_unique() -> None:
    assert container_features(np.ones((3, 10)), np.ones((3, 10)), STEP, 1, 1, 1, 1).shape[1] == len(
        FEATURE_NAMES
    )
    for names in (*SCHEMA_NAMES, CONTAINER_OBSERVATION_NAMES, PLACEMENT_ROW_NAMES):
        assert len(set(names)) == len(names)


def test_column_change_requires_a_schema_version_bump() -> None:
    assert SCHEMA_VERSION >= 1
    assert schema_fingerprint() == SCHEMA_FINGERPRINTS.get(SCHEMA_VERSION), (
        "feature columns changed: bump SCHEMA_VERSION in thrifty/features/schema.py, record "
        f"SCHEMA_FINGERPRINTS[{SCHEMA_VERSION + 1}] = {schema_fingerprint()!r} and update docs/features.md"
    )


def test_docs_list_every_feature_and_the_schema_version() -> None:
    text = DOCS.read_text()
    assert re.search(rf"schema version[^\n]*\b{SCHEMA_VERSION}\b", text, re.IGNORECASE)
    documented = set(re.findall(r"^\|\s*`([a-z0-9_<>]+)`", text, re.MULTILINE))
    # The pod block and the workload means repeat other tuples under a prefix: one row each.
    repeated = {f"pod_{name}" for name in CONTAINER_OBSERVATION_NAMES}
    repeated |= {f"container_mean_{name}" for name in FEATURE_NAMES}
    expected = {name for names in SCHEMA_NAMES for name in names} - repeated
    assert expected - documented == set()
    assert {"pod_<name>", "container_mean_<name>"} <= documented


# ---------------------------------------------------------------------------------------------
# Snapshot-level: containers with context, pods, nodes, placement, workloads
# ---------------------------------------------------------------------------------------------


def with_nodes(snapshot: ClusterSnapshot, **columns) -> ClusterSnapshot:
    """The snapshot with some NodeTable columns replaced."""
    return replace(snapshot, nodes=replace(snapshot.nodes, **columns))


def one_node_snapshot() -> ClusterSnapshot:
    """A 4-core 'small' node (idle 60 W, peak 210 W), 1 core requested, half a core used."""
    snapshot = make_snapshot(
        node_cpu=[4000.0],
        node_memory=[8 * GI],
        pods=[{"node": 0, "cpu": 1000.0, "memory": 1 * GI, "usage": 500.0, "memory_usage": 512 * MI}],
    )
    return with_nodes(
        snapshot,
        power_class=("small",),
        cpu_usage_millicores=np.array([500.0]),
        memory_usage_bytes=np.array([512.0 * MI]),
    )


def node_values(snapshot: ClusterSnapshot, power: PowerModel | None = None) -> dict[str, np.ndarray]:
    matrix = node_features(snapshot, power)
    assert matrix.shape == (len(snapshot.nodes), len(NODE_FEATURE_NAMES))
    assert np.all(np.isfinite(matrix))
    return dict(zip(NODE_FEATURE_NAMES, matrix.T, strict=True))


def test_node_features_of_one_node_by_hand() -> None:
    values = node_values(one_node_snapshot())
    # Utilisation 0.125: curve 0.18 + 0.25 * (0.29 - 0.18) = 0.2075 of the idle-to-peak range.
    idle, peak, standby = SMALL.idle_watts, SMALL.peak_watts, SMALL.standby_watts
    current = idle + (peak - idle) * 0.2075
    expected = {
        "cpu_requested_fraction": 0.25,
        "memory_requested_fraction": 0.125,
        "cpu_used_fraction": 0.125,
        "memory_used_fraction": 0.0625,
        "usage_known": 1.0,
        "cpu_free_share": 0.75,
        "memory_free_share": 0.875,
        "cpu_capacity_share": 1.0,
        "pod_count": 1.0,
        "empty": 0.0,
        "schedulable": 1.0,
        "standby": 0.0,
        "idle_watts_share": idle / peak,
        "peak_watts_share": 1.0,
        "standby_watts_share": standby / peak,
        "wake_watts_share": 0.0,
        "current_watts_share": current / peak,
        # Segment 10-20 %: (0.29 - 0.18) of the range per 10 % of the node, over 4 cores.
        "marginal_watts_per_core": (0.29 - 0.18) * (peak - idle) / 0.1 / 4.0,
        "peak_watts_per_core": peak / 4.0,
    }
    for name, value in expected.items():
        assert values[name][0] == pytest.approx(value, rel=1e-9), name


def three_node_snapshot() -> ClusterSnapshot:
    """Node 0 roomy, node 1 full on CPU, node 2 zero capacity; medium power class."""
    return make_snapshot(
        node_cpu=[8000.0, 4000.0, 0.0],
        node_memory=[16 * GI, 16 * GI, 0.0],
        pods=[
            {"node": 0, "cpu": 2000.0, "memory": 2 * GI, "usage": 1000.0, "memory_usage": GI, "workload": 0},
            {"node": 1, "cpu": 4000.0, "memory": 1 * GI, "usage": 3000.0, "memory_usage": GI, "workload": 1},
            {"node": -1, "cpu": 1000.0, "memory": 1 * GI, "workload": 0},
        ],
        workloads=[{"rate": 50.0, "latency": 0.1, "slo": 0.2, "min": 1, "max": 5}, {"energy_weight": 0.9}],
        dependencies=[(0, 1, 0.8)],
    )


def test_node_features_of_three_nodes_with_a_zero_capacity_one() -> None:
    values = node_values(three_node_snapshot())
    np.testing.assert_allclose(values["cpu_requested_fraction"], [0.25, 1.0, 1.0])
    np.testing.assert_allclose(values["cpu_free_share"], [0.75, 0.0, 0.0])
    np.testing.assert_allclose(values["cpu_capacity_share"], [1.0, 0.5, 0.0])
    np.testing.assert_allclose(values["pod_count"], [1, 1, 0])
    np.testing.assert_allclose(values["empty"], [0, 0, 1])
    # Unknown node usage counts as the request, as in thrifty.energy.
    np.testing.assert_allclose(values["usage_known"], [0, 0, 0])
    np.testing.assert_allclose(values["cpu_used_fraction"], [0.25, 1.0, 1.0])
    assert values["marginal_watts_per_core"][2] == 0.0 and values["peak_watts_per_core"][2] == 0.0
    # The concave curve makes a core dearer on the 8-core node at 25 % than at the 4-core top.
    assert values["marginal_watts_per_core"][0] > 0 and values["marginal_watts_per_core"][1] > 0


def test_node_features_standby_and_no_nodes() -> None:
    snapshot = with_nodes(
        make_snapshot(node_cpu=[16000.0, 16000.0], standby=[False, True]), power_class=("small", "small")
    )
    values = node_values(snapshot)
    idle, peak, standby = SMALL.idle_watts, SMALL.peak_watts, SMALL.standby_watts
    assert values["wake_watts_share"].tolist() == pytest.approx([0.0, (idle - standby) / peak])
    assert values["current_watts_share"].tolist() == pytest.approx([idle / peak, standby / peak])
    assert node_features(make_snapshot(node_cpu=[])).shape == (0, len(NODE_FEATURE_NAMES))


def placement(snapshot: ClusterSnapshot, pod_row: int, **kwargs) -> dict[str, np.ndarray]:
    observation = placement_observation(snapshot, pod_row, **kwargs)
    n = len(snapshot.nodes)
    assert observation["node_rows"].shape == (n, len(PLACEMENT_ROW_NAMES))
    assert observation["mask"].shape == (n,) and observation["mask"].dtype == bool
    assert np.all(np.isfinite(observation["node_rows"]))
    return observation


def pair(observation: dict[str, np.ndarray], name: str) -> np.ndarray:
    return observation["pair_features"][:, PAIR_FEATURE_NAMES.index(name)]


def test_placement_layout_is_node_then_pod_then_pair() -> None:
    snapshot = three_node_snapshot()
    observation = placement(snapshot, 2)
    rows = observation["node_rows"]
    n_node, n_pod = len(NODE_FEATURE_NAMES), len(POD_FEATURE_NAMES)
    np.testing.assert_array_equal(rows[:, :n_node], node_features(snapshot))
    np.testing.assert_array_equal(
        rows[:, n_node : n_node + n_pod], np.tile(observation["pod_features"], (3, 1))
    )
    np.testing.assert_array_equal(rows[:, n_node + n_pod :], observation["pair_features"])


def test_placement_mask_excludes_full_zero_capacity_and_unschedulable_nodes() -> None:
    snapshot = three_node_snapshot()
    assert placement(snapshot, 2)["mask"].tolist() == [True, False, False]
    cordoned = with_nodes(snapshot, schedulable=np.array([False, True, True]))
    assert placement(cordoned, 2)["mask"].tolist() == [False, False, False]
    asleep = with_nodes(snapshot, standby=np.array([True, False, False]))
    assert placement(asleep, 2)["mask"].tolist() == [True, False, False]  # standby is allowed
    no_memory = with_nodes(snapshot, memory_requested_bytes=np.array([15.5 * GI, GI, 0.0]))
    assert placement(no_memory, 2)["mask"].tolist() == [False, False, False]


def test_placement_on_one_node() -> None:
    snapshot = make_snapshot(node_cpu=[4000.0], pods=[{"cpu": 500.0}])
    observation = placement(snapshot, 0)
    assert observation["mask"].tolist() == [True]
    assert pair(observation, "cpu_fit_fraction")[0] == pytest.approx(500.0 / 4000.0)


def test_dependency_traffic_equals_adjacency_times_pods_per_node() -> None:
    # Pending pod of workload 0; 0-1 weight 0.8, 2-0 weight 0.3, a 0-0 self edge is ignored.
    snapshot = make_snapshot(
        node_cpu=[8000.0, 8000.0, 8000.0],
        pods=[
            {"workload": 1, "node": 0},
            {"workload": 1, "node": 0},
            {"workload": 2, "node": 1},
            {"workload": 0, "node": 2},
            {"workload": 0, "node": -1},
        ],
        workloads=[{}, {}, {}],
        dependencies=[(0, 1, 0.8), (2, 0, 0.3), (0, 0, 0.5)],
    )
    observation = placement(snapshot, 4)
    np.testing.assert_allclose(pair(observation, "dependency_traffic"), [1.6, 0.3, 0.0])
    reference = snapshot.dependencies.adjacency(3)[0] @ snapshot.workload_pods_per_node()
    np.testing.assert_allclose(pair(observation, "dependency_traffic"), reference)
    np.testing.assert_allclose(pair(observation, "dependency_traffic_fraction"), [1.6 / 1.9, 0.3 / 1.9, 0.0])
    lone = make_snapshot(node_cpu=[1000.0], pods=[{"node": -1}])
    assert pair(placement(lone, 0), "dependency_traffic_fraction").tolist() == [0.0]


def test_placement_watts_include_waking_a_standby_node() -> None:
    snapshot = with_nodes(
        make_snapshot(node_cpu=[10000.0, 10000.0], standby=[False, True], pods=[{"cpu": 1000.0}]),
        power_class=("small", "small"),
    )
    watts = pair(placement(snapshot, 0), "placement_watts_share") * SMALL.peak_watts
    # Awake node: 0 -> 10 % costs 0.18 of the range. Standby node: waking (idle - standby) too.
    step = 0.18 * (SMALL.peak_watts - SMALL.idle_watts)
    assert watts.tolist() == pytest.approx([step, SMALL.idle_watts - SMALL.standby_watts + step])


def test_fit_fractions() -> None:
    observation = placement(three_node_snapshot(), 2)
    assert pair(observation, "cpu_fit_fraction").tolist() == pytest.approx([1000.0 / 6000.0, 10.0, 10.0])
    assert pair(observation, "memory_fit_fraction").tolist() == pytest.approx([1.0 / 14.0, 1.0 / 15.0, 10.0])


def pod_value(observation: dict[str, np.ndarray], name: str) -> float:
    return float(observation["pod_features"][POD_FEATURE_NAMES.index(name)])


def test_new_replica_borrows_its_siblings_history() -> None:
    observation = placement(three_node_snapshot(), 2)
    assert pod_value(observation, "pod_features_from_siblings") == 1.0
    assert pod_value(observation, "pod_cpu_mean_millicores") == pytest.approx(1000.0)
    assert pod_value(observation, "pod_cpu_request_share") == pytest.approx(1000.0 / 8000.0)
    assert pod_value(observation, "pod_workload_known") == 1.0
    assert pod_value(observation, "pod_latency_slo_ratio") == pytest.approx(0.5)
    own = placement(three_node_snapshot(), 0)
    assert pod_value(own, "pod_features_from_siblings") == 0.0


def test_placement_with_precomputed_inputs_is_the_same() -> None:
    snapshot = three_node_snapshot()
    plain = placement(snapshot, 2)
    power = PowerModel()
    cached = placement(
        snapshot,
        2,
        power_model=power,
        node_feature_matrix=node_features(snapshot, power),
        pods_features=pod_features(snapshot),
    )
    np.testing.assert_allclose(cached["node_rows"], plain["node_rows"])
    np.testing.assert_array_equal(cached["mask"], plain["mask"])
    with pytest.raises(IndexError):
        placement_observation(snapshot, 3)
    with pytest.raises(ValueError, match="node_feature_matrix"):
        placement_observation(snapshot, 2, node_feature_matrix=np.zeros((2, 3)))


def test_pod_cache_gives_the_same_rows_and_forgets_a_new_observation() -> None:
    snapshot = three_node_snapshot()
    cache = PodFeatureCache()
    cached = placement(snapshot, 2, pod_cache=cache)
    np.testing.assert_array_equal(cached["node_rows"], placement(snapshot, 2)["node_rows"])
    # Binding a pod (what plan_placements does between decisions) keeps the rows valid.
    bound = replace(snapshot, pods=replace(snapshot.pods, node_index=np.where(
        snapshot.pods.node_index < 0, 0, snapshot.pods.node_index)))
    np.testing.assert_array_equal(placement(bound, 2, pod_cache=cache)["node_rows"], placement(bound, 2)["node_rows"])
    # New usage (a new observation) must not be served from the old rows.
    containers = snapshot.containers
    busier = replace(snapshot, containers=replace(
        containers, cpu_history_millicores=containers.cpu_history_millicores * 3.0))
    fresh = placement(busier, 2, pod_cache=cache)
    np.testing.assert_array_equal(fresh["node_rows"], placement(busier, 2)["node_rows"])
    assert not np.array_equal(fresh["node_rows"], cached["node_rows"])


def test_from_snapshot_adds_workload_context() -> None:
    snapshot = three_node_snapshot()
    result = from_snapshot(snapshot)
    assert result.matrix.shape == (3, len(CONTAINER_OBSERVATION_NAMES))
    assert result.names == FEATURE_NAMES + CONTEXT_FEATURE_NAMES
    containers = snapshot.containers
    np.testing.assert_array_equal(
        result.behaviour,
        container_features(
            containers.cpu_history_millicores,
            containers.memory_history_bytes,
            containers.history_step_seconds,
            containers.cpu_request_millicores,
            containers.cpu_limit_millicores,
            containers.memory_request_bytes,
            containers.memory_limit_bytes,
            containers.throttled_periods_total,
            containers.oom_kills_total,
        ),
    )
    assert result.column("request_rate_per_second").tolist() == [50.0, 0.0, 50.0]
    assert result.column("request_rate_per_replica").tolist() == [25.0, 0.0, 25.0]
    assert result.column("load_known").tolist() == [1.0, 0.0, 1.0]
    assert result.column("latency_slo_ratio").tolist() == pytest.approx([0.5, 1.0, 0.5])
    assert result.column("slo_slack").tolist() == pytest.approx([0.5, 0.0, 0.5])
    assert result.column("energy_weight").tolist() == [0.5, 0.9, 0.5]
    assert result.column("dependency_degree").tolist() == [1.0, 1.0, 1.0]
    assert result.column("dependency_weight").tolist() == pytest.approx([0.8, 0.8, 0.8])


def test_context_of_a_container_outside_any_workload() -> None:
    snapshot = make_snapshot(node_cpu=[1000.0], pods=[{"node": 0, "usage": 10.0}])
    result = from_snapshot(snapshot)
    context = dict(zip(CONTEXT_FEATURE_NAMES, result.matrix[0, len(FEATURE_NAMES) :], strict=True))
    assert context == {
        "workload_known": 0.0,
        "request_rate_per_second": 0.0,
        "request_rate_per_replica": 0.0,
        "load_known": 0.0,
        "latency_slo_ratio": 1.0,
        "slo_slack": 0.0,
        "latency_known": 0.0,
        "energy_weight": 0.5,
        "dependency_degree": 0.0,
        "dependency_weight": 0.0,
    }


def test_pod_features_sum_their_containers() -> None:
    snapshot = make_snapshot(node_cpu=[4000.0], pods=[{"node": 0, "cpu": 300.0}], window=4)
    containers = snapshot.containers
    two = replace(
        containers,
        pod_index=np.array([0, 0]),
        names=("app", "sidecar"),
        workload_index=np.array([-1, -1]),
        **{
            name: np.repeat(getattr(containers, name), 2, axis=0)
            for name in (
                "cpu_request_millicores",
                "cpu_limit_millicores",
                "memory_request_bytes",
                "memory_limit_bytes",
                "cpu_min_millicores",
                "cpu_max_millicores",
                "memory_min_bytes",
                "memory_max_bytes",
            )
        },
        cpu_history_millicores=np.array([[100.0, np.nan, 100.0, np.nan], [50.0, 50.0, np.nan, np.nan]]),
        memory_history_bytes=np.full((2, 4), 1e6),
        throttled_periods_total=np.array([2.0, 3.0]),
        oom_kills_total=np.array([1.0, np.nan]),
    )
    result = pod_features(replace(snapshot, containers=two))
    hour = 4 * 60.0 / 3600.0
    assert result.column("cpu_valid_fraction")[0] == 0.75
    assert result.column("cpu_mean_millicores")[0] == pytest.approx(100.0)  # 150, 50, 100
    assert result.column("cpu_slack")[0] == pytest.approx(1.0 - 100.0 / 300.0)
    assert result.column("memory_mean_bytes")[0] == 2e6
    assert result.column("cpu_throttled_periods_per_hour")[0] == pytest.approx(5.0 / hour)
    assert result.column("oom_kills_per_hour")[0] == pytest.approx(1.0 / hour)


def workload_values(snapshot: ClusterSnapshot) -> dict[str, np.ndarray]:
    matrix = workload_features(snapshot)
    assert matrix.shape == (len(snapshot.workloads), len(WORKLOAD_FEATURE_NAMES))
    assert np.all(np.isfinite(matrix))
    return dict(zip(WORKLOAD_FEATURE_NAMES, matrix.T, strict=True))


def test_workload_features_by_hand() -> None:
    snapshot = make_snapshot(
        node_cpu=[8000.0],
        pods=[
            {
                "workload": 0,
                "node": 0,
                "cpu": 1000.0,
                "memory": GI,
                "usage": 500.0,
                "memory_usage": GI / 2,
                "ooms": 1,
            },
            {
                "workload": 0,
                "node": 0,
                "cpu": 1000.0,
                "memory": GI,
                "usage": 250.0,
                "memory_usage": GI / 4,
                "throttled": 6,
            },
            {"workload": 0, "node": -1, "cpu": 1000.0, "memory": GI},
            {"workload": 1, "node": 0, "cpu": 100.0},
        ],
        workloads=[
            {"min": 1, "max": 5, "rate": 30.0, "latency": 0.3, "slo": 0.2, "energy_weight": 0.7},
            {"min": 1, "max": 1, "latency": 9.0, "slo": 0.2},
            {"min": 2, "max": 4},
        ],
        dependencies=[(0, 1, 0.5), (0, 2, 0.25), (1, 0, 0.5)],
        window=60,
    )
    values = workload_values(snapshot)
    expected_first = {
        "replicas": 3.0,
        "replicas_position": 0.5,
        "at_min_replicas": 0.0,
        "at_max_replicas": 0.0,
        "request_rate_per_second": 30.0,
        "request_rate_per_replica": 10.0,
        "latency_slo_ratio": 1.5,
        "slo_slack": -0.5,
        "latency_known": 1.0,
        "energy_weight": 0.7,
        "cpu_request_utilisation": 750.0 / 2000.0,  # the pending pod's usage is unknown
        "memory_request_utilisation": 0.75 / 2.0,
        "usage_known": 2.0 / 3.0,
        "oom_kills_per_hour": 1.0,  # 60 one-minute samples: one hour
        "throttled_periods_per_hour": 6.0,
        "dependency_degree": 2.0,
        "dependency_weight": 1.25,
        "container_count": 3.0,
        "history_fraction": 2.0 / 3.0,
        "container_mean_cpu_mean_millicores": 375.0,  # over the two containers with history
        "container_mean_cpu_has_data": 1.0,
    }
    for name, value in expected_first.items():
        assert values[name][0] == pytest.approx(value), name
    # min == max: position 0, both bounds reached; latency capped at 10 x SLO.
    assert values["replicas_position"][1] == 0.0
    assert values["at_min_replicas"][1] == values["at_max_replicas"][1] == 1.0
    assert values["latency_slo_ratio"][1] == 10.0
    assert values["cpu_request_utilisation"][1] == 1.0 and values["usage_known"][1] == 0.0
    # A workload scaled to zero: no-history defaults, as documented.
    assert values["container_count"][2] == 0.0 and values["replicas"][2] == 0.0
    assert values["at_min_replicas"][2] == 1.0
    assert values["container_mean_cpu_peak_to_mean"][2] == 1.0
    assert values["container_mean_cpu_limit_headroom"][2] == 1.0
    assert values["container_mean_cpu_has_data"][2] == 0.0
    np.testing.assert_allclose(values["watts"], PowerModel().workload_watts(snapshot))
    adjacency = snapshot.dependencies.adjacency(3)
    np.testing.assert_allclose(values["dependency_weight"], adjacency.sum(axis=1))
    np.testing.assert_allclose(values["dependency_degree"], (adjacency > 0).sum(axis=1))


def test_workload_features_reuse_container_features_and_power_model() -> None:
    snapshot = three_node_snapshot()
    power = PowerModel(profiles=dict(DEFAULT_PROFILES), default_class="large")
    reused = workload_features(snapshot, power, from_snapshot(snapshot))
    np.testing.assert_allclose(reused, workload_features(snapshot, power))
    assert workload_features(make_snapshot(node_cpu=[1000.0])).shape == (0, len(WORKLOAD_FEATURE_NAMES))


# ---------------------------------------------------------------------------------------------
# Normaliser
# ---------------------------------------------------------------------------------------------


def test_running_normaliser_matches_whole_data_statistics() -> None:
    rng = np.random.default_rng(6)
    data = rng.normal([5.0, -3.0, 1e9], [2.0, 0.5, 1e8], (1000, 3))
    data[:, 1] = 7.0  # a constant column is centred, not blown up
    normaliser = RunningNormaliser.new(("a", "b", "c"))
    for batch in np.array_split(data, 7):
        normaliser.update(batch)
    np.testing.assert_allclose(normaliser.mean, data.mean(axis=0), rtol=1e-10)
    np.testing.assert_allclose(normaliser.variance, data.var(axis=0), rtol=1e-8, atol=1e-12)
    scaled = normaliser(data)
    np.testing.assert_allclose(scaled[:, 1], 0.0, atol=1e-9)
    np.testing.assert_allclose(scaled[:, 0].std(), 1.0, rtol=1e-6)
    assert normaliser(np.array([1e3, 7.0, 1e9]))[0] == 10.0  # clipped


def test_normaliser_round_trips_through_dict_and_npz(tmp_path: Path) -> None:
    normaliser = RunningNormaliser.fixed(
        ("x", "y"), SCHEMA_VERSION, mean=[1.0, 2.0], std=[0.5, 4.0], clip=5.0
    )
    restored = RunningNormaliser.from_dict(json.loads(json.dumps(normaliser.to_dict())))
    path = tmp_path / "normaliser.npz"
    normaliser.save(path)
    loaded = RunningNormaliser.load(path)
    sample = np.array([[0.0, 0.0], [100.0, -100.0]])
    for other in (restored, loaded):
        assert other.names == ("x", "y") and other.schema_version == SCHEMA_VERSION and other.clip == 5.0
        np.testing.assert_array_equal(other(sample), normaliser(sample))
    np.testing.assert_allclose(normaliser(sample[0]), [-2.0, -0.5])


def test_normaliser_refuses_other_schemas_and_bad_batches() -> None:
    normaliser = RunningNormaliser.new(FEATURE_NAMES)
    normaliser.check(FEATURE_NAMES, SCHEMA_VERSION)
    with pytest.raises(ValueError, match="schema"):
        normaliser.check(FEATURE_NAMES[:-1], SCHEMA_VERSION)
    with pytest.raises(ValueError, match="schema"):
        normaliser.check(FEATURE_NAMES, SCHEMA_VERSION + 1)
    with pytest.raises(ValueError, match="columns"):
        normaliser(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="NaN"):
        normaliser.update(np.full((1, len(FEATURE_NAMES)), np.nan))
    with pytest.raises(ValueError, match="missing field"):
        RunningNormaliser.from_dict({"names": ["a"]})


# ---------------------------------------------------------------------------------------------
# The `thrifty features` command
# ---------------------------------------------------------------------------------------------

BITBRAINS_HEADER = (
    "Timestamp [ms];\tCPU cores;\tCPU capacity provisioned [MHZ];\tCPU usage [MHZ];\tCPU usage [%];\t"
    "Memory capacity provisioned [KB];\tMemory usage [KB]"
)


def write_bitbrains_vm(path: Path, samples: int, cpu_mhz) -> None:
    """A Bitbrains VM file: 4 cores of 2600 MHz, 4 GiB, a 5-minute step."""
    lines = [BITBRAINS_HEADER]
    for i in range(samples):
        mhz = cpu_mhz(i)
        fields = (
            1376314846 + 300 * i,
            4,
            10400,
            f"{mhz:.3f}",
            f"{mhz / 104:.3f}",
            4194304,
            1048576 + 1024 * i,
        )
        lines.append(";\t".join(map(str, fields)))
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture
def bitbrains_trace(tmp_path: Path) -> Path:
    trace = tmp_path / "vms"
    trace.mkdir()
    # VM 1: a 2-hour cycle (24 steps) around 1 core; VM 2: a flat quarter core.
    write_bitbrains_vm(trace / "1.csv", 400, lambda i: 2600 + 1300 * np.sin(2 * np.pi * i / 24))
    write_bitbrains_vm(trace / "2.csv", 100, lambda i: 650.0)
    return trace


def test_cli_prints_an_aligned_table(bitbrains_trace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["features", str(bitbrains_trace)]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = lines[0].split()
    assert header[0] == "container" and "cpu_p95_millicores" in header and "cpu_period_seconds" in header
    rows = {line.split()[0]: dict(zip(header, line.split(), strict=True)) for line in lines[1:3]}
    assert set(rows) == {"1", "2"}
    assert float(rows["1"]["cpu_period_seconds"]) == pytest.approx(24 * 300, abs=300)
    assert float(rows["2"]["cpu_cv"]) == 0.0
    assert float(rows["2"]["cpu_mean_millicores"]) == pytest.approx(250.0)
    assert float(rows["2"]["cpu_slack"]) == pytest.approx(
        1.0 - 250.0 / 4000.0, abs=1e-3
    )  # capacity as request
    assert float(rows["2"]["cpu_valid_fraction"]) == pytest.approx(100 / 288, abs=1e-3)  # short: NaN-padded
    assert rows["2"]["memory_mean_bytes"].endswith("Gi")
    # Aligned: names start each line, every number column ends at the same offset on every line.
    ends = [[match.end() for match in re.finditer(r"\S+", line)][1:] for line in lines[:3]]
    assert ends[0] == ends[1] == ends[2]
    assert "2 of 2 containers" in lines[3]


def test_cli_csv_all_columns_window_and_limit(
    bitbrains_trace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        cli.main(
            ["features", str(bitbrains_trace), "--format", "csv", "--all", "--window", "48", "--limit", "1"]
        )
        == 0
    )
    rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert rows[0] == ["container", *FEATURE_NAMES]
    assert len(rows) == 2 and rows[1][0] == "1"
    values = dict(zip(FEATURE_NAMES, map(float, rows[1][1:]), strict=True))
    assert values["cpu_valid_fraction"] == 1.0
    assert values["memory_growth_bytes_per_hour"] == pytest.approx(1024 * 1024 * 12)  # +1 MiB per step


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("garbage\n", "unrecognised trace format"),
        (BITBRAINS_HEADER + "\n1;\t4;\tlots;\t1;\t1;\t1;\t1\n", "bad.csv:2"),
        ("sn,cpu_milli,memory_mib,gpu,model\nnode-1,64000,262144,0,\n", "no container usage"),
    ],
    ids=["unknown-format", "bad-number", "nodes-only"],
)
def test_cli_bad_trace_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, message: str
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content)
    assert cli.main(["features", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert len(captured.err.strip().splitlines()) == 1 and message in captured.err


def test_cli_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["features", str(tmp_path / "nope.csv")]) == 2
    assert "nope.csv" in capsys.readouterr().err


def test_cli_windows_from_in_memory_usage() -> None:
    from thrifty.commands.features import trace_features, usage_windows

    def usage(name: str, step: float, cpu: list[float]) -> ContainerUsage:
        values = np.asarray(cpu, dtype=float)
        return ContainerUsage(
            name=name,
            step_seconds=step,
            start_seconds=0.0,
            cpu_usage_millicores=values,
            memory_usage_bytes=values * 1e6,
            request_rate_per_second=np.full(len(values), np.nan),
            cpu_capacity_millicores=1000.0,
        )

    containers = [usage("a", 60.0, [1, 2, 3, 4, 5]), usage("b", 300.0, [7, 8]), usage("c", 60.0, [])]
    cpu, memory = usage_windows(containers, 3)
    np.testing.assert_array_equal(cpu, [[3, 4, 5], [np.nan, 7, 8], [np.nan] * 3])
    np.testing.assert_array_equal(memory[0], [3e6, 4e6, 5e6])
    matrix = trace_features(containers, 3)
    values = dict(zip(FEATURE_NAMES, matrix.T, strict=True))
    # "a": +1 per one-minute step is +60 per hour; "b": +1 per five minutes is +12 per hour.
    assert values["cpu_trend_per_hour"].tolist() == pytest.approx([60.0 / 4.0, 12.0 / 7.5, 0.0])
    assert values["cpu_slack"].tolist() == pytest.approx([1 - 4 / 1000, 1 - 7.5 / 1000, 0.0])
    assert values["memory_slack"].tolist() == [0.0, 0.0, 0.0]  # memory capacity unknown
