"""Put irregular samples onto a regular time grid.

Traces are sampled "every 5 minutes" or "every minute", but real samplers repeat samples, skip
some, add an odd extra one, and drift. The common model wants one value per fixed step, with NaN
where there is no sample. The rules here:

- a bin holds the mean of the finite samples that fall in it (duplicates average out);
- a bin with no sample is NaN (a gap), or ``empty`` where a format defines a missing sample as
  zero (e.g. request counters that only report non-zero values);
- a bin whose samples are all NaN is NaN.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


def typical_step(times: Iterable[np.ndarray], default: float) -> float:
    """The most common positive interval (to the millisecond) between consecutive samples.

    ``times`` holds one array of sample times (seconds) per series. The mode, not the median, so
    that sparse series, where most intervals are multiples of the step, still give the step.
    Returns ``default`` when no series has two distinct times.
    """
    diffs = [np.diff(np.unique(t)) for t in times if len(t) > 1]
    if not diffs:
        return default
    all_diffs = np.round(np.concatenate(diffs), 3)
    if all_diffs.size == 0:
        return default
    steps, counts = np.unique(all_diffs, return_counts=True)
    return float(steps[np.argmax(counts)])


def anchored_bins(times: np.ndarray, step: float) -> np.ndarray:
    """Bin index of each sample of one series, tolerant of a drifting sampler clock.

    ``times`` must be sorted. A sample goes to bin ``k + round((t - a) / step)``, where ``a`` is
    the first sample of the current bin ``k``. Re-anchoring at every new bin keeps a clock that
    slips a second every few dozen samples (Bitbrains does) aligned, where rounding against a
    fixed origin would eventually put two samples in one bin and leave the next one empty. A gap
    of ``n`` steps leaves ``n - 1`` empty bins.
    """
    bins = np.zeros(len(times), dtype=np.int64)
    if len(times) == 0:
        return bins
    current, anchor = 0, float(times[0])
    for i, t in enumerate(times.tolist()):
        ahead = round((t - anchor) / step)
        if ahead > 0:
            current += ahead
            anchor = t
        bins[i] = current
    return bins


def fixed_bins(times: np.ndarray, origin: float, step: float) -> np.ndarray:
    """Bin index of each sample on the grid ``origin + k * step`` (nearest grid point).

    For series that share one exact clock (e.g. an anonymised trace) and must line up.
    """
    return np.rint((times - origin) / step).astype(np.int64)


def bin_means(
    bins: np.ndarray, values: np.ndarray, length: int, empty: float = np.nan
) -> np.ndarray:
    """Mean of the finite ``values`` per bin, for bins ``0 .. length - 1``.

    Bins with no sample get ``empty``; bins whose samples are all NaN get NaN.
    """
    rows = np.bincount(bins, minlength=length)[:length]
    finite = np.isfinite(values)
    sums = np.bincount(bins[finite], weights=values[finite], minlength=length)[:length]
    counts = np.bincount(bins[finite], minlength=length)[:length]
    means = np.full(length, np.nan)
    np.divide(sums, counts, out=means, where=counts > 0)
    means[rows == 0] = empty
    return means
