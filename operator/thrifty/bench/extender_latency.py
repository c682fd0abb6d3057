"""The extender's own latency, read from the operator's ``/metrics`` after a cluster run. Pure.

``thrifty_extender_request_duration_seconds`` is a histogram; its quantiles are interpolated
within buckets as PromQL's ``histogram_quantile`` does, so they are as fine as its buckets.
"""

from __future__ import annotations

import math

from prometheus_client.parser import text_string_to_metric_families

FAMILY = "thrifty_extender_request_duration_seconds"


def request_quantile_seconds(metrics_text: str, verb: str, q: float) -> float:
    """The ``q`` quantile of the extender's ``verb`` calls (NaN when it served none)."""
    buckets: list[tuple[float, float]] = []
    for family in text_string_to_metric_families(metrics_text):
        if family.name != FAMILY:
            continue
        buckets = sorted((float(s.labels["le"]), s.value) for s in family.samples
                         if s.name == f"{FAMILY}_bucket" and s.labels.get("verb") == verb)
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
