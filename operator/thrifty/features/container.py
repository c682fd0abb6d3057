"""Container behaviour: what a window of CPU and memory usage says about a container.

:func:`container_features` turns the usage windows of C containers into a (C, F) matrix whose
columns are :data:`FEATURE_NAMES`. Every statistic is computed along ``axis=1`` for all
containers at once, so one container and 10,000 containers cost the same Python.

Rules that hold for every column (see ``docs/features.md`` for the table):

* A sample that is NaN or infinite is missing and ignored; ``*_valid_fraction`` says how much
  of the window was present and ``*_has_data`` is 1 when at least one sample was.
* A statistic that is undefined (no samples, zero mean, no request, no limit, ...) takes a
  documented default, so the matrix never holds NaN or inf: the policy networks consume it.
* Variation below :data:`FLAT_RELATIVE_TOLERANCE` of the level is rounding, not behaviour, so a
  constant series has exactly zero standard deviation, CV 0 and no period.
"""

from __future__ import annotations

import numpy as np

from thrifty.features.columns import stack

QUANTILES = (50, 90, 95, 99)
"""Usage percentiles reported per resource (with the maximum)."""

SLACK_FLOOR = -10.0
"""Lowest slack and headroom reported: usage at 11 times the request (or limit) or more.

Also the slack of a container that uses a resource it requested none of (BestEffort), which is
the most under-requested a container can be."""

MIN_PERIOD_STRENGTH = 0.3
"""Strength (autocorrelation at the period) below which a series is called aperiodic.

White noise over a 288-sample window has autocorrelations of about 1/sqrt(288) = 0.06, so 0.3
rejects it (and all but 1.5 % of AR(1) series with coefficient 0.8, 3.5 % of random walks),
while a 24-step cycle twice as large as the noise is found in 99.8 % of windows
(docs/features.md)."""

FLAT_RELATIVE_TOLERANCE = 1e-9
"""A series whose standard deviation is at most this fraction of max(|mean|, 1) is constant."""

_MIN_PERIOD_STEPS = 2
"""The shortest period a sampled series can show (the Nyquist limit)."""

_FUNDAMENTAL_TOLERANCE = 0.9
"""A peak at a whole fraction of the highest peak's lag, at least this fraction of its height,
is taken as the fundamental period."""

_MAX_HARMONIC = 4
"""Highest multiple of the fundamental that the highest peak is checked against."""

_MAX_CLIMB_STEPS = 8
"""How far (in steps) the period may move from the biased estimate's peak to the unbiased one's."""

_SECONDS_PER_HOUR = 3600.0


def _resource_names(resource: str, unit: str) -> tuple[str, ...]:
    level = tuple(f"{resource}_p{q}_{unit}" for q in QUANTILES) + (f"{resource}_max_{unit}",)
    trend = (
        (f"{resource}_trend_per_hour",)
        if resource == "cpu"
        else (f"{resource}_growth_{unit}_per_hour", f"{resource}_growth_per_hour")
    )
    return (
        (f"{resource}_valid_fraction", f"{resource}_has_data")
        + (f"{resource}_mean_{unit}", f"{resource}_std_{unit}", f"{resource}_cv")
        + level
        + (f"{resource}_burstiness", f"{resource}_peak_to_mean")
        + trend
        + (f"{resource}_period_seconds", f"{resource}_period_strength")
    )


def _allocation_names(resource: str) -> tuple[str, ...]:
    return (f"{resource}_slack", f"{resource}_slack_p95", f"{resource}_limit_headroom")


FEATURE_NAMES: tuple[str, ...] = (
    _resource_names("cpu", "millicores")
    + _resource_names("memory", "bytes")
    + _allocation_names("cpu")
    + _allocation_names("memory")
    + ("cpu_throttled_periods_per_hour", "oom_kills_per_hour")
)
"""Columns of :func:`container_features`, in order."""


def container_features(
    cpu_history_millicores: np.ndarray,
    memory_history_bytes: np.ndarray,
    step_seconds: float,
    cpu_request_millicores: np.ndarray | float,
    cpu_limit_millicores: np.ndarray | float,
    memory_request_bytes: np.ndarray | float,
    memory_limit_bytes: np.ndarray | float,
    throttled_periods_total: np.ndarray | float = 0.0,
    oom_kills_total: np.ndarray | float = 0.0,
) -> np.ndarray:
    """Behaviour features of C containers from their usage windows.

    Args:
        cpu_history_millicores: (C, W) CPU usage samples in millicores, oldest first.
        memory_history_bytes: (C, W) memory usage samples in bytes, oldest first.
        step_seconds: seconds between two samples (> 0).
        cpu_request_millicores, cpu_limit_millicores: (C,) or scalar. A limit that is inf, NaN
            or not positive means no limit.
        memory_request_bytes, memory_limit_bytes: (C,) or scalar, likewise.
        throttled_periods_total: (C,) or scalar: CFS periods throttled during the window.
        oom_kills_total: (C,) or scalar: OOM kills during the window.

    Returns:
        float64 (C, len(FEATURE_NAMES)), finite everywhere.
    """
    cpu = _as_history(cpu_history_millicores, "cpu_history_millicores")
    memory = _as_history(memory_history_bytes, "memory_history_bytes")
    if cpu.shape != memory.shape:
        raise ValueError(
            f"memory_history_bytes: shape {memory.shape} differs from cpu_history_millicores {cpu.shape}"
        )
    if not (np.isfinite(step_seconds) and step_seconds > 0):
        raise ValueError(f"step_seconds: must be finite and positive, got {step_seconds}")
    n_containers, window = cpu.shape

    def per_container(values: np.ndarray | float, name: str) -> np.ndarray:
        array = np.asarray(values, dtype=float)
        if array.ndim > 1 or (array.ndim == 1 and array.shape[0] != n_containers):
            raise ValueError(f"{name}: expected a scalar or {n_containers} values, got shape {array.shape}")
        return np.broadcast_to(array, (n_containers,))

    window_hours = window * step_seconds / _SECONDS_PER_HOUR
    columns: dict[str, np.ndarray] = {}
    cpu_stats = _UsageStatistics(cpu, step_seconds)
    memory_stats = _UsageStatistics(memory, step_seconds)
    columns.update(_resource_columns("cpu", "millicores", cpu_stats))
    columns.update(_resource_columns("memory", "bytes", memory_stats))
    columns.update(
        _allocation_columns(
            "cpu",
            cpu_stats,
            per_container(cpu_request_millicores, "cpu_request_millicores"),
            per_container(cpu_limit_millicores, "cpu_limit_millicores"),
        )
    )
    columns.update(
        _allocation_columns(
            "memory",
            memory_stats,
            per_container(memory_request_bytes, "memory_request_bytes"),
            per_container(memory_limit_bytes, "memory_limit_bytes"),
        )
    )
    columns["cpu_throttled_periods_per_hour"] = _rate_per_hour(
        per_container(throttled_periods_total, "throttled_periods_total"), window_hours
    )
    columns["oom_kills_per_hour"] = _rate_per_hour(
        per_container(oom_kills_total, "oom_kills_total"), window_hours
    )
    return stack(columns, FEATURE_NAMES, n_containers)


def _as_history(values: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.ndim != 2:
        raise ValueError(f"{name}: expected shape (containers, window), got {array.shape}")
    return array


class _UsageStatistics:
    """Per-row statistics of one resource's usage window; undefined values hold defaults."""

    def __init__(self, history: np.ndarray, step_seconds: float) -> None:
        valid = np.isfinite(history)
        count = valid.sum(axis=1)
        window = history.shape[1]
        self.has_data = count > 0
        self.valid_fraction = count / window if window else np.zeros(history.shape[0])
        safe_count = np.maximum(count, 1)
        self.mean = np.where(valid, history, 0.0).sum(axis=1) / safe_count
        deviation = np.where(valid, history - self.mean[:, None], 0.0)
        std = np.sqrt((deviation**2).sum(axis=1) / safe_count)
        resolution = FLAT_RELATIVE_TOLERANCE * np.maximum(np.abs(self.mean), 1.0)
        self.std = np.where(std <= resolution, 0.0, std)
        self.quantiles, self.max = _nan_quantiles(history, count)
        self.slope_per_hour, residual = _trend(deviation, valid, step_seconds)
        self.period_seconds, self.period_strength = _dominant_period(
            residual, valid, count, resolution, step_seconds
        )

    def ratio_to_mean(self, values: np.ndarray, default: float) -> np.ndarray:
        """values / mean where the mean is positive, ``default`` elsewhere."""
        positive = self.mean > 0
        return np.where(positive, values / np.where(positive, self.mean, 1.0), default)


def _resource_columns(resource: str, unit: str, stats: _UsageStatistics) -> dict[str, np.ndarray]:
    cv = stats.ratio_to_mean(stats.std, default=0.0)
    columns = {
        f"{resource}_valid_fraction": stats.valid_fraction,
        f"{resource}_has_data": stats.has_data.astype(float),
        f"{resource}_mean_{unit}": stats.mean,
        f"{resource}_std_{unit}": stats.std,
        f"{resource}_cv": cv,
        # Goh-Barabasi burstiness (sigma - mu) / (sigma + mu) = (CV - 1) / (CV + 1): -1 for a
        # constant series, 0 when sigma equals mu (exponentially distributed samples), towards 1
        # for rare large bursts. The CV's information, bounded in [-1, 1] for a network input.
        f"{resource}_burstiness": np.where(stats.has_data, (cv - 1.0) / (cv + 1.0), 0.0),
        # Peak-to-mean sees a single spike that barely moves sigma: it is the headroom a
        # request at the mean would need.
        f"{resource}_peak_to_mean": stats.ratio_to_mean(stats.max, default=1.0),
        f"{resource}_max_{unit}": stats.max,
        f"{resource}_period_seconds": stats.period_seconds,
        f"{resource}_period_strength": stats.period_strength,
    }
    for q, values in zip(QUANTILES, stats.quantiles, strict=True):
        columns[f"{resource}_p{q}_{unit}"] = values
    relative_trend = stats.ratio_to_mean(stats.slope_per_hour, default=0.0)
    if resource == "cpu":
        columns["cpu_trend_per_hour"] = relative_trend
    else:
        columns[f"{resource}_growth_{unit}_per_hour"] = stats.slope_per_hour
        columns[f"{resource}_growth_per_hour"] = relative_trend
    return columns


def _allocation_columns(
    resource: str, stats: _UsageStatistics, request: np.ndarray, limit: np.ndarray
) -> dict[str, np.ndarray]:
    p95 = stats.quantiles[QUANTILES.index(95)]
    return {
        f"{resource}_slack": _slack(request, stats.mean, stats.has_data),
        f"{resource}_slack_p95": _slack(request, p95, stats.has_data),
        f"{resource}_limit_headroom": _limit_headroom(limit, stats.max, stats.has_data),
    }


def _nan_quantiles(history: np.ndarray, count: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """Percentiles (numpy's 'linear' method) and maximum of the finite samples of each row.

    ``np.nanpercentile`` loops over rows in Python when NaNs are present; sorting once and
    gathering by per-row rank keeps this vectorised. Rows without samples get 0.
    """
    n_rows = history.shape[0]
    if history.shape[1] == 0:
        zeros = np.zeros(n_rows)
        return [zeros] * len(QUANTILES), zeros
    # Sorting puts NaN last; infinities are missing samples too, so turn them into NaN first.
    ordered = np.sort(np.where(np.isfinite(history), history, np.nan), axis=1)
    last = np.maximum(count - 1, 0)
    has_data = count > 0

    def at_rank(rank: np.ndarray) -> np.ndarray:
        return np.take_along_axis(ordered, rank[:, None], axis=1)[:, 0]

    quantiles = []
    for q in QUANTILES:
        position = q / 100.0 * last
        below = np.floor(position).astype(np.int64)
        above = np.minimum(below + 1, last)
        low, high = at_rank(below), at_rank(above)
        value = low + (position - below) * (high - low)
        quantiles.append(np.where(has_data, value, 0.0))
    maximum = np.where(has_data, at_rank(last), 0.0)
    return quantiles, maximum


def _trend(deviation: np.ndarray, valid: np.ndarray, step_seconds: float) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares slope of usage against time (units per hour) and the detrended residual.

    ``deviation`` is usage minus its row mean, 0 at missing samples. Because it sums to 0 over
    each row's samples, the slope's numerator reduces to one matrix-vector product. The residual
    (0 at missing samples) feeds the period search, so that a trend does not pass for a long
    period. Rows with fewer than two samples have slope 0.
    """
    window = deviation.shape[1]
    # Times centred on the window's middle keep the sums small and well conditioned.
    times = np.arange(window, dtype=float) - (window - 1) / 2.0
    mask = valid.astype(float)
    count = np.maximum(mask.sum(axis=1), 1.0)
    mean_time = (mask @ times) / count
    spread = mask @ times**2 - count * mean_time**2
    has_slope = spread > 1e-9
    slope_per_step = np.where(has_slope, (deviation @ times) / np.where(has_slope, spread, 1.0), 0.0)
    fitted = slope_per_step[:, None] * (times[None, :] - mean_time[:, None])
    residual = np.where(valid, deviation - fitted, 0.0)
    return slope_per_step * _SECONDS_PER_HOUR / step_seconds, residual


def _dominant_period(
    residual: np.ndarray, valid: np.ndarray, count: np.ndarray, resolution: np.ndarray, step_seconds: float
) -> tuple[np.ndarray, np.ndarray]:
    """Dominant period (seconds) and its strength in [0, 1] of each row.

    1. Autocorrelation of the detrended residual by FFT (Wiener-Khinchin), missing samples as 0.
    2. Candidates are the positive local maxima of the biased estimate (each lag's sum over the
       lag-0 sum) from 2 steps to half the window (two full cycles must fit), after its first
       negative value: that skips the slow decay near lag 0 of noise and of trend leftovers.
    3. The highest candidate wins, unless a whole fraction of its lag peaks nearly as high
       (:func:`_fundamental`). The biased estimate's taper already favours shorter lags.
    4. The lag climbs to the nearest peak of the pair-normalised estimate (each lag's sum over
       its number of present pairs, which neither gaps nor the lag weaken), and a parabola
       through that peak places the period between steps.
    5. The strength is that estimate times (W - lag) / W, as the biased estimate would weigh
       it: noise at long lags, supported by few pairs, does not pass for a cycle.

    Rows whose residual is within ``resolution`` (rounding left by detrending a constant or a
    straight line), with fewer than 4 samples, or whose strength is below
    ``MIN_PERIOD_STRENGTH`` get (0, 0).
    """
    n_rows, window = residual.shape
    longest = window // 2
    if longest < _MIN_PERIOD_STEPS or window < 2 * _MIN_PERIOD_STEPS:
        return np.zeros(n_rows), np.zeros(n_rows)
    size = 2 * window  # zero padding to 2W turns the FFT's circular correlation into a linear one
    # Sums over pairs at lags 0 .. longest + 1 (one beyond, for the local-maximum test).
    products = _lagged_products(residual, size, longest + 2)
    energy = products[:, 0]
    has_energy = (energy > count * resolution**2) & (count >= 2 * _MIN_PERIOD_STEPS)
    biased = products / np.where(energy > 0, energy, 1.0)[:, None]

    decayed = np.logical_or.accumulate(biased < 0, axis=1)
    centre = biased[:, 1:-1]  # lags 1 .. longest
    peak = decayed[:, 1:-1] & (centre > 0) & (centre >= biased[:, :-2]) & (centre > biased[:, 2:])
    peak[:, : _MIN_PERIOD_STEPS - 1] = False
    heights = np.where(peak, centre, -np.inf)  # column j is lag j + 1
    found = peak.any(axis=1) & has_energy
    best = _fundamental(heights, np.argmax(heights, axis=1) + 1)

    corrected = _pair_normalised(products, _pair_counts(valid, size, longest + 2))
    best = _climb(corrected, best, longest)
    rows = np.arange(n_rows)
    before, at, after = corrected[rows, best - 1], corrected[rows, best], corrected[rows, best + 1]
    curvature = before - 2.0 * at + after
    offset = np.where(curvature < 0, 0.5 * (before - after) / np.where(curvature < 0, curvature, -1.0), 0.0)
    strength = np.clip(at * (window - best) / window, 0.0, 1.0)
    periodic = found & (strength >= MIN_PERIOD_STRENGTH)
    period_seconds = (best + np.clip(offset, -0.5, 0.5)) * step_seconds
    return np.where(periodic, period_seconds, 0.0), np.where(periodic, strength, 0.0)


def _lagged_products(values: np.ndarray, size: int, lags: int) -> np.ndarray:
    """(rows, lags): sum over t of values[t] * values[t + lag], by FFT of length ``size``."""
    spectrum = np.fft.rfft(values, n=size, axis=1)
    return np.fft.irfft(spectrum.real**2 + spectrum.imag**2, n=size, axis=1)[:, :lags]


def _fundamental(heights: np.ndarray, highest: np.ndarray) -> np.ndarray:
    """The shortest whole fraction of each row's highest-peak lag that also peaks nearly as high.

    When a period falls between samples, the sampled series repeats exactly only at a multiple
    of it, whose peak can top the period's own (period 10.5 steps: 0.96 at lags 10 and 11, 1.0
    at 21). ``heights`` (rows, lags) holds peak heights at lags 1.. (-inf elsewhere).
    """
    rows = np.arange(len(highest))
    top = heights[rows, highest - 1]
    chosen = highest.copy()
    undecided = np.ones(len(highest), dtype=bool)
    for divisor in range(_MAX_HARMONIC, 1, -1):  # shortest candidate first
        # Peaks within a step either side of lag highest / divisor.
        centre_lag = np.rint(highest / divisor).astype(np.int64)
        nearby = np.clip(centre_lag[:, None] + np.arange(-1, 2), 1, heights.shape[1])
        values = heights[rows[:, None], nearby - 1]
        candidate = nearby[rows, np.argmax(values, axis=1)]
        strong = (
            undecided
            & (centre_lag >= _MIN_PERIOD_STEPS)
            & np.isfinite(top)
            & (values.max(axis=1) >= _FUNDAMENTAL_TOLERANCE * top)
        )
        chosen = np.where(strong, candidate, chosen)
        undecided &= ~strong
    return chosen


def _climb(acf: np.ndarray, lag: np.ndarray, highest: int) -> np.ndarray:
    """Move each row's lag uphill on ``acf``, one step at a time, within [2, highest].

    The biased estimate's taper pulls its peaks towards shorter lags (by a step or more for a
    period of a third of the window); the pair-normalised estimate has no taper.
    """
    rows = np.arange(len(lag))
    for _ in range(_MAX_CLIMB_STEPS):
        left = np.maximum(lag - 1, _MIN_PERIOD_STEPS)
        right = np.minimum(lag + 1, highest)
        here, up_left, up_right = acf[rows, lag], acf[rows, left], acf[rows, right]
        lag = np.where((up_right > here) & (up_right >= up_left), right, np.where(up_left > here, left, lag))
    return lag


def _pair_normalised(products: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Autocorrelation with each lag's sum divided by its pair count; 0 where pairs < 2."""
    usable = pairs >= 2
    per_pair = np.where(usable, products / np.where(usable, pairs, 1.0), 0.0)
    variance = per_pair[:, :1]
    return per_pair / np.where(variance > 0, variance, 1.0)


def _pair_counts(valid: np.ndarray, size: int, lags: int) -> np.ndarray:
    """(rows, lags): number of sample pairs (t, t + lag) that are both present, per lag."""
    window = valid.shape[1]
    counts = np.tile(window - np.arange(lags, dtype=float), (valid.shape[0], 1))
    # Only rows with gaps need the two extra FFTs; complete rows have W - lag pairs.
    gappy = ~valid.all(axis=1)
    if gappy.any():
        counts[gappy] = np.rint(_lagged_products(valid[gappy].astype(float), size, lags))
    return counts


def _slack(request: np.ndarray, usage: np.ndarray, has_data: np.ndarray) -> np.ndarray:
    """(request - usage) / request as Autopilot reports it, in [SLACK_FLOOR, 1].

    No request (0): -10 if the container uses the resource, 0 if not. Unknown request (NaN) or
    no usage samples: 0.
    """
    positive = request > 0
    relative = 1.0 - usage / np.where(positive, request, 1.0)
    unrequested = np.where(usage > 0, SLACK_FLOOR, 0.0)
    slack = np.where(positive, relative, np.where(request == 0, unrequested, 0.0))
    return np.where(has_data, np.clip(slack, SLACK_FLOOR, 1.0), 0.0)


def _limit_headroom(limit: np.ndarray, peak: np.ndarray, has_data: np.ndarray) -> np.ndarray:
    """(limit - max usage) / limit in [SLACK_FLOOR, 1]; 1 without a limit, 0 without samples."""
    limited = np.isfinite(limit) & (limit > 0)
    headroom = np.clip(1.0 - peak / np.where(limited, limit, 1.0), SLACK_FLOOR, 1.0)
    return np.where(limited, np.where(has_data, headroom, 0.0), 1.0)


def _rate_per_hour(total: np.ndarray, window_hours: float) -> np.ndarray:
    """Events per hour over the window; 0 for an unknown count or an empty window."""
    if window_hours <= 0:
        return np.zeros(total.shape)
    return np.where(np.isfinite(total), total, 0.0) / window_hours
