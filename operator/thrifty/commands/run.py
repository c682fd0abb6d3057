"""``thrifty run``: the operator.

Loads the policy (falling back to the heuristic, loudly, if it cannot), serves ``/metrics``,
makes sure the peering object exists, and runs kopf with the handlers of :mod:`thrifty.handlers`
until SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import sys
import time
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from thrifty.commands import run_placement
from thrifty.safety import SafetyConfig

if TYPE_CHECKING:
    from thrifty.handlers import OperatorConfig

logger = logging.getLogger("thrifty")


def register(subparsers: argparse._SubParsersAction) -> None:
    defaults = SafetyConfig()
    parser = subparsers.add_parser(
        "run", help="run the operator",
        description="Run the Thrifty operator: place, size and scale RLWorkloads with the policy.",
    )
    parser.add_argument("--kubeconfig", metavar="PATH",
                        help="kubeconfig file (default: in-cluster credentials, else $KUBECONFIG or ~/.kube/config)")
    parser.add_argument("--namespace", metavar="NS", help="watch only this namespace (default: all namespaces)")
    parser.add_argument("--interval-seconds", type=float, default=15.0,
                        help="seconds between two sizing steps of a workload (default: %(default)s)")
    parser.add_argument("--metrics-port", type=int, default=8000,
                        help="port of the Prometheus /metrics endpoint (default: %(default)s)")
    parser.add_argument("--metrics-address", default="0.0.0.0",
                        help="address the /metrics endpoint listens on (default: %(default)s)")
    parser.add_argument("--liveness", metavar="URL",
                        help="serve kopf's health endpoint, e.g. http://0.0.0.0:8080/healthz (default: none)")
    parser.add_argument("--prometheus-url", metavar="URL",
                        help="Prometheus that answers spec.slo.latencyQuery (http:// or https://)")
    parser.add_argument("--prometheus-timeout-seconds", type=float, default=5.0,
                        help="longest wait for one Prometheus query (default: %(default)s)")
    parser.add_argument("--policy", default="heuristic",
                        help="'heuristic' (default), a trained policy directory (policies/<name>/), or module:Class")
    parser.add_argument("--policy-backend", default="numpy", choices=("numpy", "rllib"),
                        help="how a policy directory is served (default: %(default)s)")
    parser.add_argument("--peering", default="thrifty", metavar="NAME",
                        help="kopf peering object shared by the operator's replicas; only one acts "
                             "(default: %(default)s)")
    parser.add_argument("--standalone", action="store_true", help="run without peering (a single replica)")
    parser.add_argument("--priority", type=int,
                        help="peering priority (default: start time in ms, so the newest replica acts)")
    parser.add_argument("--max-replica-step", type=int, default=defaults.max_replica_step,
                        help="most replicas added or removed in one step (default: %(default)s)")
    parser.add_argument("--scale-out-cooldown-seconds", type=float, default=defaults.scale_out_cooldown_seconds,
                        help="least time between two scale-outs of a workload (default: %(default)s)")
    parser.add_argument("--scale-in-cooldown-seconds", type=float, default=defaults.scale_in_cooldown_seconds,
                        help="least time after any scaling before a scale-in (default: %(default)s)")
    parser.add_argument("--resize-cooldown-seconds", type=float, default=defaults.resize_cooldown_seconds,
                        help="least time between two resizes of a workload (default: %(default)s)")
    parser.add_argument("--history-window-samples", type=int, default=60,
                        help="usage samples kept per container, one per interval (default: %(default)s)")
    parser.add_argument("--last-decisions", type=int, default=10,
                        help="entries kept in status.lastDecisions, 1 to 20 (default: %(default)s)")
    parser.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    run_placement.add_arguments(parser)
    parser.set_defaults(func=run, parser=parser)


def _config(args: argparse.Namespace, parser: argparse.ArgumentParser) -> OperatorConfig:
    """The validated :class:`OperatorConfig`; an invalid flag exits with a message naming it."""
    from thrifty.handlers import OperatorConfig

    def positive(flag: str, value: float) -> float:
        if not (math.isfinite(value) and value > 0):
            parser.error(f"{flag}: must be a number > 0, got {value}")
        return value

    def non_negative(flag: str, value: float) -> float:
        if not (math.isfinite(value) and value >= 0):
            parser.error(f"{flag}: must be a number >= 0, got {value}")
        return value

    if not 1 <= args.metrics_port <= 65535:
        parser.error(f"--metrics-port: must be a TCP port from 1 to 65535, got {args.metrics_port}")
    if args.liveness is not None:
        url = urlparse(args.liveness)
        if url.scheme != "http" or not url.hostname or not url.port:
            parser.error(f"--liveness: must be an http://HOST:PORT/PATH URL, got {args.liveness!r}")
    if args.prometheus_url is not None:
        url = urlparse(args.prometheus_url)
        if url.scheme not in ("http", "https") or not url.netloc:
            parser.error(f"--prometheus-url: must be an http:// or https:// URL, got {args.prometheus_url!r}")
    if args.max_replica_step < 1:
        parser.error(f"--max-replica-step: must be >= 1, got {args.max_replica_step}")
    if args.history_window_samples < 1:
        parser.error(f"--history-window-samples: must be >= 1, got {args.history_window_samples}")
    if not 1 <= args.last_decisions <= 20:
        parser.error(f"--last-decisions: must be from 1 to 20, got {args.last_decisions}")
    if args.standalone and args.priority is not None:
        parser.error("--priority: has no effect with --standalone")
    safety = SafetyConfig(
        max_replica_step=args.max_replica_step,
        scale_out_cooldown_seconds=non_negative("--scale-out-cooldown-seconds", args.scale_out_cooldown_seconds),
        scale_in_cooldown_seconds=non_negative("--scale-in-cooldown-seconds", args.scale_in_cooldown_seconds),
        resize_cooldown_seconds=non_negative("--resize-cooldown-seconds", args.resize_cooldown_seconds),
    )
    return OperatorConfig(
        kubeconfig_path=args.kubeconfig,
        namespace=args.namespace,
        reconcile_interval_seconds=positive("--interval-seconds", args.interval_seconds),
        metrics_port=args.metrics_port,
        metrics_address=args.metrics_address,
        liveness_endpoint=args.liveness,
        prometheus_url=args.prometheus_url,
        prometheus_timeout_seconds=positive("--prometheus-timeout-seconds", args.prometheus_timeout_seconds),
        policy_spec=args.policy,
        policy_backend=args.policy_backend,
        peering_name=args.peering,
        standalone=args.standalone,
        priority=args.priority,
        history_window_samples=args.history_window_samples,
        last_decisions_limit=args.last_decisions,
        safety=safety,
    )


async def _operate(config: OperatorConfig, placement: run_placement.PlacementSetup) -> int:
    import kopf

    from thrifty.adapter import Kube, KubeError, Prometheus
    from thrifty.handlers import Reconciler, register as register_handlers
    from thrifty.metrics import Metrics
    from thrifty.policy.base import PolicyError
    from thrifty.policy.heuristic import HeuristicPolicy
    from thrifty.policy.loader import load_policy

    metrics = Metrics()
    try:
        policy, policy_error = load_policy(config.policy_spec, config.policy_backend), None
    except PolicyError as error:
        # Never crash on a bad policy: the heuristic decides, and every workload says why.
        policy, policy_error = HeuristicPolicy(), str(error)
        logger.error("policy %s could not be loaded, the heuristic decides instead: %s", config.policy_spec, error)
        metrics.count_fallback("load")
    logger.info("serving policy %s %s (%s backend)", policy.info.name, policy.info.version, policy.info.backend)
    metrics.set_policy(policy.info)  # before /metrics answers: its first scrape already says which
    try:
        metrics.serve(config.metrics_port, config.metrics_address)
    except OSError as error:
        logger.error("--metrics-port %d: cannot listen on %s: %s", config.metrics_port, config.metrics_address, error)
        return 2
    kube = await Kube.connect(config.kubeconfig_path, config.namespace)
    prometheus = Prometheus(config.prometheus_url, config.prometheus_timeout_seconds) if config.prometheus_url else None
    try:
        if not config.standalone:
            try:
                await kube.ensure_peering(config.peering_name)
            except KubeError as error:
                logger.error("--peering %s: %s", config.peering_name, error)
                return 2
        reconciler = Reconciler(config=config, kube=kube, prometheus=prometheus, metrics=metrics,
                                policy=policy, policy_error=policy_error)
        registry = kopf.OperatorRegistry()
        register_handlers(registry, reconciler)
        settings = kopf.OperatorSettings()
        # Thrifty posts its own Events; kopf's would add one per handler run ("Timer succeeded").
        settings.posting.enabled = False
        settings.persistence.finalizer = "thrifty.dev/operator"
        # On shutdown, give a step in flight the time to finish rather than orphaning it.
        settings.background.instant_exit_timeout = 5.0
        settings.peering.name = config.peering_name
        settings.peering.standalone = config.standalone
        settings.peering.mandatory = not config.standalone
        settings.peering.clusterwide = config.namespace is None
        settings.peering.priority = config.priority if config.priority is not None else int(time.time() * 1000)
        async with run_placement.placement(placement, kube, reconciler, config.namespace):
            await kopf.operator(registry=registry, settings=settings, clusterwide=config.namespace is None,
                                namespaces=[config.namespace] if config.namespace else (),
                                standalone=config.standalone, liveness_endpoint=config.liveness_endpoint)
    finally:
        if prometheus is not None:
            await prometheus.close()
        await kube.close()
    return 0


def run(args: argparse.Namespace) -> int:
    config = _config(args, args.parser)
    placement = run_placement.setup(args, args.parser)
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # kopf logs every handler run at INFO; Thrifty's own log says what matters.
    logging.getLogger("kopf.objects").setLevel(max(logging.WARNING, logging.getLevelName(args.log_level)))
    return asyncio.run(_operate(config, placement))
