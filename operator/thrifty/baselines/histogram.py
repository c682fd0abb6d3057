"""The VPA recommender's decaying histogram with exponential buckets.

Upstream: ``kubernetes/autoscaler`` ``vertical-pod-autoscaler/pkg/recommender/util/``
(``histogram_options.go``, ``histogram.go``, ``decaying_histogram.go``).

Buckets: the first covers ``[0, first_bucket)``; bucket ``n >= 1`` starts at
``first_bucket * (ratio**n - 1) / (ratio - 1)``, so each is ``ratio`` times wider than the one
before; the last starts at or above ``max_value`` and is open-ended.

Decay: a sample added at time ``t`` weighs ``weight * 2 ** ((t - reference) / half_life)``, so
it counts half as much as one added ``half_life`` later. Only relative weights matter, so when
the exponent grows past ``MAX_DECAY_EXPONENT`` the reference moves forward and every weight is
rescaled, as upstream does to avoid overflow.

Percentile: the end of the first bucket at which the cumulative weight reaches the percentile
of the total (the start of the last bucket if it is that one); 0 for an empty histogram.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

MAX_DECAY_EXPONENT = 100
"""Upstream ``maxDecayExponent``: renormalise once weights would exceed 2**100."""

MIN_SAMPLE_WEIGHT = 0.1
"""Upstream ``minSampleWeight``: least weight of a CPU sample (before decay)."""

EPSILON = 0.001 * MIN_SAMPLE_WEIGHT
"""Upstream ``epsilon``: a bucket lighter than this counts as empty."""


@dataclass(frozen=True)
class ExponentialBuckets:
    """``NewExponentialHistogramOptions(max_value, first_bucket, ratio, epsilon)``."""

    max_value: float
    first_bucket: float
    ratio: float

    def __post_init__(self) -> None:
        if not (self.max_value > 0 and self.first_bucket > 0 and self.ratio > 1):
            raise ValueError(f"ExponentialBuckets: need max_value > 0, first_bucket > 0, ratio > 1, got {self}")

    @property
    def count(self) -> int:
        """Number of buckets."""
        return int(math.ceil(math.log(self.max_value * (self.ratio - 1) / self.first_bucket + 1, self.ratio))) + 1

    def find(self, value: float) -> int:
        """Index of the bucket holding ``value`` (the first or last one outside the range)."""
        if value < self.first_bucket:
            return 0
        bucket = int(math.log(value * (self.ratio - 1) / self.first_bucket + 1) / math.log(self.ratio))
        return min(bucket, self.count - 1)

    def find_many(self, values: np.ndarray) -> np.ndarray:
        """:meth:`find` of each of ``values`` (int64), with the same results.

        The logarithm is numpy's, which may differ from ``math.log`` in the last bit; where that
        could move a value across a bucket edge (the quotient within 1e-9 of an integer), the
        bucket is computed again with ``math.log``, so every result equals :meth:`find`'s."""
        values = np.asarray(values, dtype=float)
        log_ratio = math.log(self.ratio)
        with np.errstate(divide="ignore", invalid="ignore"):
            quotient = np.log(values * (self.ratio - 1) / self.first_bucket + 1) / log_ratio
        below = values < self.first_bucket
        quotient = np.where(below, 0.0, quotient)
        buckets = np.minimum(np.floor(quotient), self.count - 1).astype(np.int64)
        near = np.flatnonzero(~below & (np.abs(quotient - np.round(quotient)) < 1e-9))
        for i in near.tolist():
            buckets[i] = self.find(float(values[i]))
        buckets[below] = 0
        return buckets

    def start(self, bucket: int) -> float:
        """Lower edge of ``bucket``."""
        if bucket == 0:
            return 0.0
        return self.first_bucket * (self.ratio**bucket - 1) / (self.ratio - 1)


def _nearest_multiple(value: float, step: float) -> float:
    """``value`` rounded to a multiple of ``step``, halves up (Go's ``time.Round`` for t > 0)."""
    return math.floor(value / step + 0.5) * step


class DecayingHistogram:
    """A histogram whose samples lose half their weight every ``half_life_seconds``."""

    def __init__(self, buckets: ExponentialBuckets, half_life_seconds: float) -> None:
        if not half_life_seconds > 0:
            raise ValueError(f"DecayingHistogram.half_life_seconds: must be > 0, got {half_life_seconds!r}")
        self.buckets = buckets
        self.half_life_seconds = float(half_life_seconds)
        self.weights = np.zeros(buckets.count)
        self.total_weight = 0.0
        self.reference_seconds: float | None = None

    def _decay_factor(self, time_seconds: float) -> float:
        if self.reference_seconds is None:
            self.reference_seconds = _nearest_multiple(time_seconds, self.half_life_seconds)
        if time_seconds > self.reference_seconds + MAX_DECAY_EXPONENT * self.half_life_seconds:
            self._shift_reference(self.reference_seconds, time_seconds)
        return 2.0 ** ((time_seconds - self.reference_seconds) / self.half_life_seconds)

    def _shift_reference(self, reference_seconds: float, time_seconds: float) -> None:
        new_reference = _nearest_multiple(time_seconds, self.half_life_seconds)
        exponent = math.floor((reference_seconds - new_reference) / self.half_life_seconds + 0.5)
        self.weights *= 2.0**exponent
        self.total_weight *= 2.0**exponent
        self.reference_seconds = new_reference

    def add(self, value: float, weight: float, time_seconds: float) -> None:
        """Add a sample of ``value`` with ``weight`` (>= 0) taken at ``time_seconds``."""
        if weight < 0:
            raise ValueError(f"DecayingHistogram.add: weight must be >= 0, got {weight!r}")
        decayed = weight * self._decay_factor(time_seconds)
        self.weights[self.buckets.find(value)] += decayed
        self.total_weight += decayed

    def add_many(self, values: np.ndarray, weights: np.ndarray | float, times_seconds: np.ndarray) -> None:
        """:meth:`add` of each sample in order, with the same result to the last bit
        (:func:`add_samples` with this histogram only)."""
        values = np.asarray(values, dtype=float)
        add_samples([self], np.zeros(len(values), dtype=np.int64), values, weights, times_seconds)

    def subtract(self, value: float, weight: float, time_seconds: float) -> None:
        """Remove a sample added earlier with the same value, weight and time."""
        bucket = self.buckets.find(value)
        decayed = weight * self._decay_factor(time_seconds)
        if decayed > self.weights[bucket] - EPSILON:
            decayed = self.weights[bucket]
        self.weights[bucket] -= decayed
        self.total_weight -= decayed

    def is_empty(self) -> bool:
        return not np.any(self.weights >= EPSILON)

    def percentile(self, fraction: float) -> float:
        """The ``fraction`` (0 to 1) percentile, as upstream: the end of its bucket."""
        return float(self.percentiles([fraction])[0])

    def percentiles(self, fractions: Sequence[float]) -> np.ndarray:
        """:meth:`percentile` of each of ``fractions``, with one pass over the buckets."""
        heavy = np.flatnonzero(self.weights >= EPSILON)
        if len(heavy) == 0:
            return np.zeros(len(fractions))
        first, last = int(heavy[0]), int(heavy[-1])
        cumulative = np.cumsum(self.weights[first:last])
        # The first bucket at which the running sum reaches the threshold; the last if none.
        reached = np.searchsorted(cumulative, np.asarray(fractions, dtype=float) * self.total_weight, side="left")
        buckets = np.where(reached < len(cumulative), first + reached, last)
        ends = np.minimum(buckets + 1, self.buckets.count - 1)
        return np.array([self.buckets.start(int(b)) for b in ends])


def add_samples(histograms: Sequence[DecayingHistogram], which: np.ndarray, values: np.ndarray,
                weights: np.ndarray | float, times_seconds: np.ndarray) -> None:
    """``histograms[which[k]].add(values[k], weights[k], times_seconds[k])`` for every ``k`` in
    order, with the same result to the last bit, in a few array operations.

    Why it is the same: a sample's decay factor is computed with the scalar formula, once per
    distinct exponent; each bucket receives its samples in order (``np.add.at`` is unbuffered
    and sequential) and so does each total; a histogram's reference time is set from its first
    sample, as :meth:`DecayingHistogram.add` sets it. Where a sample would move a reference
    (over ``MAX_DECAY_EXPONENT`` half-lives after it) or the histograms' buckets differ, every
    sample goes through :meth:`DecayingHistogram.add` one by one instead.
    """
    values = np.asarray(values, dtype=float)
    if len(values) == 0:
        return
    times = np.asarray(times_seconds, dtype=float)
    weights = np.broadcast_to(np.asarray(weights, dtype=float), values.shape)
    if np.any(weights < 0):
        raise ValueError(f"DecayingHistogram.add: weight must be >= 0, got {float(weights.min())!r}")
    which = np.asarray(which, dtype=np.int64)
    used, first, compact = np.unique(which, return_index=True, return_inverse=True)
    chosen = [histograms[i] for i in used.tolist()]
    for histogram, position in zip(chosen, first.tolist(), strict=True):
        if histogram.reference_seconds is None:
            histogram.reference_seconds = _nearest_multiple(float(times[position]), histogram.half_life_seconds)
    reference = np.array([h.reference_seconds for h in chosen], dtype=float)[compact]
    half_life = np.array([h.half_life_seconds for h in chosen])[compact]
    buckets = chosen[0].buckets
    if np.any(times > reference + MAX_DECAY_EXPONENT * half_life) or any(h.buckets != buckets for h in chosen):
        for k, value, weight, time in zip(which.tolist(), values.tolist(), weights.tolist(), times.tolist(),
                                          strict=True):
            histograms[k].add(value, weight, time)
        return
    exponents, position = np.unique((times - reference) / half_life, return_inverse=True)
    decayed = weights * np.array([2.0**e for e in exponents.tolist()])[position]
    bucket = buckets.find_many(values)
    totals = np.array([h.total_weight for h in chosen], dtype=float)
    np.add.at(totals, compact, decayed)
    if len(chosen) == 1:
        np.add.at(chosen[0].weights, bucket, decayed)
    else:
        order = np.argsort(compact, kind="stable")  # each histogram's samples, still in order
        bounds = np.searchsorted(compact[order], np.arange(len(chosen) + 1))
        for i, histogram in enumerate(chosen):
            part = order[bounds[i]:bounds[i + 1]]
            np.add.at(histogram.weights, bucket[part], decayed[part])
    for histogram, total in zip(chosen, totals.tolist(), strict=True):
        histogram.total_weight = total
