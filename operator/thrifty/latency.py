"""Per-workload response-time percentile from an M/M/c queue, vectorised over workloads.

Model
-----
A workload with ``c`` running replicas is an M/M/c queue: requests arrive as a Poisson process
at ``λ`` per second and wait in one FCFS queue for the first free replica (least-outstanding-
requests balancing, as Envoy and most meshes do); each replica serves at rate ``μ`` per second
with exponential service times. ``μ`` is proportional to the CPU the replica can use::

    μ = CPU available to the replica [millicores] / CPU per request [millicore-seconds]

With offered load ``a = λ/μ`` and utilisation ``ρ = a/c < 1``, Erlang's C formula gives the
probability that a request waits, and the wait ``W`` given that it waits is exponential::

    P(W > t) = C(c, a) · exp(-θ t)          θ = cμ - λ

The response time is ``T = W + S`` with ``S ~ Exp(μ)`` independent of ``W``. Conditioning on
whether the request waits gives the exact distribution (the sum of two exponentials is
hypoexponential)::

    P(T > t) = (1 - C) e^{-μt} + C · H(t)
    H(t)     = (μ e^{-θt} - θ e^{-μt}) / (μ - θ)         (θ ≠ μ; the limit (1 + μt) e^{-μt} at θ = μ)

This is the exact response-time distribution of FCFS M/M/c (Kleinrock, *Queueing Systems*
vol. 1, 1975; Gross and Harris, *Fundamentals of Queueing Theory*). The percentile ``t_p`` with
``P(T > t_p) = 1 - p`` has no closed form, so it is solved numerically by Newton's method,
safeguarded by bisection inside a bracket that always contains it:

* lower: ``T >= S`` and ``T >= W``, so ``t_p >= max(ln(1/α)/μ, ln(C/α)/θ)`` with ``α = 1 - p``;
* upper: by the union bound ``P(S + W > s + w) <= P(S > s) + P(W > w)``, so
  ``t_p <= ln(2/α)/μ + max(0, ln(2C/α)/θ)``.

For ``c = 1`` the result is the textbook M/M/1 ``ln(1/α)/(μ - λ)``.

Edge cases (every output is defined; see :func:`response_time_percentile`):

* ``λ = 0``: nobody waits; the percentile is the service percentile ``ln(1/α)/μ`` (0 when the
  workload has no capacity: no request, no latency); never saturated.
* ``λ >= cμ``, ``c = 0`` or ``μ = 0`` with ``λ > 0``: saturated, the queue grows without bound;
  the latency is the finite cap ``saturated_latency_seconds`` and the workload counts as
  violating its SLO.
* ``μ = inf`` (a request needs no CPU): zero queueing latency.
* NaN in ``λ``, ``μ`` or ``c`` means unknown: latency and utilisation are NaN, not saturated.

Cross-node call latency from :mod:`thrifty.network` is added to the queueing percentile as
``extra_latency_seconds``: it is nearly deterministic (a fixed round trip per crossing call), so
adding its mean to the percentile is the natural approximation.

Pure numpy: no I/O, no Kubernetes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from thrifty.config import LatencyModelConfig

_NEWTON_MAX_ITERATIONS = 60
"""Safeguarded Newton converges in under 10 steps in practice; bisection fallback bounds it."""
_RELATIVE_TOLERANCE = 1e-12


@dataclass(frozen=True)
class LatencyEstimate:
    """Response-time figures of W workloads."""

    p95_seconds: np.ndarray
    """(W,) response-time percentile (the configured one, p95 by default) including the extra
    latency, capped at ``saturated_latency_seconds``; NaN when an input is unknown."""
    saturated: np.ndarray
    """bool (W,): arrivals at or above the service capacity (or no capacity at all)."""
    utilisation: np.ndarray
    """(W,) ``ρ = λ / (cμ)``: 0 without arrivals, inf without capacity, NaN when unknown."""


def service_rate_per_second(
    cpu_millicores: np.ndarray | float, cpu_per_request_millicore_seconds: np.ndarray | float
) -> np.ndarray:
    """Requests per second one replica serves with the given CPU (inf when requests are free)."""
    cpu = np.asarray(cpu_millicores, dtype=float)
    work = np.asarray(cpu_per_request_millicore_seconds, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(work > 0, np.maximum(cpu, 0.0) / work, np.where(np.isnan(work), np.nan, np.inf))


def erlang_c(servers: np.ndarray | float, offered_load: np.ndarray | float) -> np.ndarray:
    """Probability that an arriving request has to wait in an M/M/c queue (Erlang C).

    ``servers`` is ``c`` (floored to an integer), ``offered_load`` is ``a = λ/μ`` in erlangs.
    Computed through the Erlang B recursion ``B_k = a B_{k-1} / (k + a B_{k-1})``, which is
    numerically stable, and ``C = B / (1 - (a/c)(1 - B))``. Returns 1 where the queue is
    unstable (``a >= c``, including ``c = 0``) and NaN where an input is NaN.
    """
    c, a = np.broadcast_arrays(np.asarray(servers, dtype=float), np.asarray(offered_load, dtype=float))
    unknown = np.isnan(c) | np.isnan(a)
    c = np.floor(np.where(unknown, 0.0, c))
    a = np.where(unknown, 0.0, a)
    result = np.where(unknown, np.nan, 1.0)
    stable = ~unknown & (c >= 1) & (a < c)
    if np.any(stable):
        cs = c[stable].astype(np.int64)
        load = np.maximum(a[stable], 0.0)
        b = np.ones(cs.shape)
        b_at_c = np.empty(cs.shape)
        # One pass up to the largest c serves every workload: each picks B at its own c.
        for k in range(1, int(cs.max()) + 1):
            b = load * b / (k + load * b)
            at_k = cs == k
            b_at_c[at_k] = b[at_k]
        rho = load / cs
        result[stable] = b_at_c / (1.0 - rho * (1.0 - b_at_c))
    return result


def _decay_difference(rate_gap: np.ndarray, t: np.ndarray) -> np.ndarray:
    """``(1 - exp(-|δ| t)) / |δ|``, which tends to ``t`` as ``δ -> 0``, without cancellation."""
    gap = np.abs(rate_gap)
    x = gap * t
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(x > 1e-12, -np.expm1(-x) / gap, t)


def _survival_and_density(
    t: np.ndarray, mu: np.ndarray, theta: np.ndarray, wait_probability: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``P(T > t)`` and the density of ``T`` at ``t`` (see the module docstring).

    ``H(t) = e^{-μt} + μ e^{-min(μ,θ) t} (1 - e^{-|μ-θ| t}) / |μ-θ|`` is the same hypoexponential
    survival rewritten so that it is stable when ``θ`` is close to ``μ``.
    """
    service_survival = np.exp(-mu * t)
    shared = np.exp(-np.minimum(mu, theta) * t) * _decay_difference(mu - theta, t)
    survival = service_survival + wait_probability * mu * shared
    density = (1.0 - wait_probability) * mu * service_survival + wait_probability * mu * theta * shared
    return survival, density


def _response_time_quantile(
    mu: np.ndarray, theta: np.ndarray, wait_probability: np.ndarray, alpha: float
) -> np.ndarray:
    """``t`` with ``P(T > t) = alpha`` for stable queues (all inputs finite, μ, θ > 0)."""
    with np.errstate(divide="ignore"):
        wait_low = np.where(wait_probability > alpha, np.log(wait_probability / alpha) / theta, 0.0)
        wait_high = np.where(2 * wait_probability > alpha, np.log(2 * wait_probability / alpha) / theta, 0.0)
    low = np.maximum(np.log(1.0 / alpha) / mu, wait_low)
    high = np.log(2.0 / alpha) / mu + wait_high
    t = low.copy()
    for _ in range(_NEWTON_MAX_ITERATIONS):
        survival, density = _survival_and_density(t, mu, theta, wait_probability)
        excess = survival - alpha
        low = np.where(excess > 0, t, low)
        high = np.where(excess <= 0, t, high)
        with np.errstate(divide="ignore", invalid="ignore"):
            proposal = t + excess / density
        outside = ~np.isfinite(proposal) | (proposal < low) | (proposal > high)
        proposal = np.where(outside, 0.5 * (low + high), proposal)
        done = np.abs(proposal - t) <= _RELATIVE_TOLERANCE * np.maximum(proposal, 1e-300)
        t = proposal
        if np.all(done):
            break
    return t


def response_time_percentile(
    arrival_rate_per_second: np.ndarray | float,
    service_rate_per_second: np.ndarray | float,
    servers: np.ndarray | float,
    *,
    extra_latency_seconds: np.ndarray | float = 0.0,
    config: LatencyModelConfig = LatencyModelConfig(),
) -> LatencyEstimate:
    """Response-time percentile of W workloads modelled as M/M/c queues.

    ``arrival_rate_per_second`` is λ, ``service_rate_per_second`` is μ per replica, ``servers``
    is c (running replicas). ``extra_latency_seconds`` (for example cross-node call latency) is
    added to every request's latency. All inputs broadcast to a common (W,) shape. See the
    module docstring for the model and every edge case.
    """
    lam, mu, c, extra = np.broadcast_arrays(
        np.asarray(arrival_rate_per_second, dtype=float),
        np.asarray(service_rate_per_second, dtype=float),
        np.floor(np.asarray(servers, dtype=float)),
        np.asarray(extra_latency_seconds, dtype=float),
    )
    lam, mu, c, extra = (np.atleast_1d(x) for x in (lam, mu, c, extra))
    alpha = 1.0 - config.latency_percentile
    cap = config.saturated_latency_seconds

    unknown = np.isnan(lam) | np.isnan(mu) | np.isnan(c)
    lam = np.where(unknown, 0.0, np.maximum(lam, 0.0))
    mu = np.where(unknown, 0.0, np.maximum(mu, 0.0))
    c = np.where(unknown, 0.0, np.maximum(c, 0.0))
    extra = np.where(np.isnan(extra), 0.0, np.maximum(extra, 0.0))
    with np.errstate(invalid="ignore"):
        capacity = c * mu  # inf * 0 (no replica, free requests) is nan: no capacity
    capacity = np.where(np.isnan(capacity), 0.0, capacity)

    idle = ~unknown & (lam == 0)
    saturated = ~unknown & (lam > 0) & (lam >= capacity)
    free_service = ~unknown & ~idle & ~saturated & np.isinf(mu)
    queueing = ~unknown & ~idle & ~saturated & ~free_service

    with np.errstate(divide="ignore", invalid="ignore"):
        utilisation = np.where(lam > 0, lam / capacity, 0.0)
        service_percentile = np.where(mu > 0, np.log(1.0 / alpha) / mu, 0.0)
    utilisation = np.where(unknown, np.nan, np.where(saturated & (capacity == 0), np.inf, utilisation))

    latency = np.zeros(lam.shape)
    latency[idle] = np.where(capacity[idle] > 0, service_percentile[idle] + extra[idle], 0.0)
    latency[free_service] = extra[free_service]
    if np.any(queueing):
        m, lq, cq = mu[queueing], lam[queueing], c[queueing]
        wait_probability = erlang_c(cq, lq / m)
        latency[queueing] = _response_time_quantile(m, cq * m - lq, wait_probability, alpha) + extra[queueing]
    latency = np.minimum(latency, cap)
    latency[saturated] = cap
    latency[unknown] = np.nan
    return LatencyEstimate(p95_seconds=latency, saturated=saturated, utilisation=utilisation)
