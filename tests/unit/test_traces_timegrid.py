"""Properties of the resampling onto a regular grid that every usage loader relies on."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from thrifty.traces.timegrid import anchored_bins, bin_means, typical_step

STEP = 300.0

# No per-example deadline: the machines that run the tests are shared and their timing varies.
NO_DEADLINE = settings(deadline=None)


@NO_DEADLINE
@given(st.lists(st.floats(0.55, 1.45), min_size=1, max_size=200))
def test_one_sample_per_step_gives_consecutive_bins_however_the_clock_drifts(
    intervals: list[float],
) -> None:
    # Each interval is within 45 % of the step, so the clock may drift arbitrarily far from
    # a fixed grid; still every sample gets its own bin and no bin is left empty.
    times = np.concatenate([[0.0], np.cumsum(np.array(intervals) * STEP)])
    np.testing.assert_array_equal(anchored_bins(times, STEP), np.arange(len(times)))


@NO_DEADLINE
@given(st.lists(st.tuples(st.integers(0, 5), st.floats(-0.4, 0.4)), min_size=1, max_size=100))
def test_a_gap_of_k_steps_leaves_k_minus_one_empty_bins(
    jumps: list[tuple[int, float]],
) -> None:
    # Intervals of k steps (k = 0: a repeated sample) with a jitter below half a step.
    intervals = [max(k + jitter, 0.0) if k else 0.0 for k, jitter in jumps]
    times = np.concatenate([[0.0], np.cumsum(np.array(intervals) * STEP)])
    bins = anchored_bins(times, STEP)
    np.testing.assert_array_equal(np.diff(bins), [k for k, _ in jumps])


@NO_DEADLINE
@given(
    st.lists(
        st.tuples(st.integers(0, 9), st.one_of(st.floats(0, 1e6), st.just(float("nan")))),
        max_size=50,
    )
)
def test_bin_means_average_finite_samples_and_mark_empty_bins(
    samples: list[tuple[int, float]],
) -> None:
    bins = np.array([b for b, _ in samples], dtype=np.int64)
    values = np.array([v for _, v in samples], dtype=np.float64)
    means = bin_means(bins, values, 10, empty=-1.0)
    for b in range(10):
        in_bin = values[bins == b]
        if in_bin.size == 0:
            assert means[b] == -1.0
        elif np.isnan(in_bin).all():
            assert np.isnan(means[b])
        else:
            assert np.isclose(means[b], np.nanmean(in_bin))


def test_typical_step_is_the_most_common_interval() -> None:
    sparse = np.array([0, 57, 171, 228, 285, 456])  # most intervals one step, some several
    dense = np.arange(0, 570, 57)
    assert typical_step([sparse, dense], default=60) == 57
    assert typical_step([np.array([5.0])], default=60) == 60
