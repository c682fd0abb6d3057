"""Histograms of the operator's ``/metrics``, read after a cluster run: the extender's own
latency, and any histogram's quantile (``make perf-cluster``'s sizing steps). Pure.

Quantiles are interpolated within buckets as PromQL's ``histogram_quantile`` does, so they are
as fine as the buckets.
"""

from __future__ import annotations

import math

from prometheus_client.parser import text_string_to_metric_families

FAMILY = "thrifty_extender_request_duration_seconds"


def request_quantile_seconds(metrics_text: str, verb: str, q: float) -> float:
    """The ``q`` quantile of the extender's ``verb`` calls (NaN when it served none)."""
    return histogram_quantile(metrics_text, FAMILY, q, verb=verb)


def histogram_quantile(metrics_text: str, family_name: str, q: float, **labels: str) -> float:
    """The ``q`` quantile of the histogram ``family_name``'s series with ``labels``; NaN when it
    holds no observation."""
    return buckets_quantile(histogram_buckets(metrics_text, family_name, **labels), q)


def histogram_buckets(metrics_text: str, family_name: str, **labels: str) -> list[tuple[float, float]]:
    """``(le, cumulative count)`` of the series of ``family_name`` with ``labels``, by ``le``."""
    for family in text_string_to_metric_families(metrics_text):
        if family.name == family_name:
            return sorted((float(s.labels["le"]), s.value) for s in family.samples
                          if s.name == f"{family_name}_bucket"
                          and all(s.labels.get(k) == v for k, v in labels.items()))
    return []


def buckets_quantile(buckets: list[tuple[float, float]], q: float) -> float:
    """The ``q`` quantile of cumulative buckets, interpolated within a bucket as PromQL's
    ``histogram_quantile`` does; NaN when they hold no observation."""
    if not buckets or buckets[-1][1] <= 0:
        return math.nan
    rank = q * buckets[-1][1]
    lower, below = 0.0, 0.0
    for upper, count in buckets:
        if count >= rank:
            if math.isinf(upper):
                return lower  # past the last finite bucket: its bound, as histogram_quantile answers
            return lower + (upper - lower) * (rank - below) / max(count - below, 1e-12)
        lower, below = upper, count
    return lower


def request_count(metrics_text: str, verb: str) -> int:
    for family in text_string_to_metric_families(metrics_text):
        if family.name == FAMILY:
            return int(sum(s.value for s in family.samples
                           if s.name == f"{FAMILY}_count" and s.labels.get("verb") == verb))
    return 0
