"""``thrifty run``: the operator.

Loads the policy (falling back to the heuristic, loudly, if it cannot), serves ``/metrics``,
makes sure the peering object exists, and runs kopf with the handlers of :mod:`thrifty.handlers`
until SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from thrifty.commands import flags, run_placement
from thrifty.safety import SafetyConfig

if TYPE_CHECKING:
    from thrifty.handlers import OperatorConfig

logger = logging.getLogger("thrifty")


ENVIRONMENT_PREFIX = "THRIFTY_"
"""``thrifty run --some-flag`` can also be set by ``THRIFTY_SOME_FLAG`` (see :mod:`thrifty.commands.flags`)."""
LOG_FORMATS = ("text", "json")
TEXT_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def register(subparsers: argparse._SubParsersAction) -> None:
    defaults = SafetyConfig()
    parser = subparsers.add_parser(
        "run", help="run the operator",
        description="Run the Thrifty operator: place, size and scale RLWorkloads with the policy.",
        epilog=f"Every flag can also be set by an environment variable: {ENVIRONMENT_PREFIX} and the flag's "
               f"name in upper case with - as _ (--metrics-port: {ENVIRONMENT_PREFIX}METRICS_PORT), shown "
               "after each flag. A flag on the command line wins over its variable; a variable's value is "
               "checked as the flag's; a flag without a value (--standalone) takes true/1/yes/on or "
               "false/0/no/off.",
    )
    parser.add_argument("--kubeconfig", metavar="PATH",
                        help="kubeconfig file (default: in-cluster credentials, else $KUBECONFIG or ~/.kube/config)")
    parser.add_argument("--namespace", metavar="NS", help="watch only this namespace (default: all namespaces)")
    parser.add_argument("--interval-seconds", type=flags.number("--interval-seconds", float, lambda v: v > 0,
                                                                "a number > 0"), default=15.0,
                        help="seconds between two sizing steps of a workload (default: %(default)s)")
    parser.add_argument("--metrics-port", type=flags.port("--metrics-port"), default=8000,
                        help="port of the Prometheus /metrics endpoint (default: %(default)s)")
    parser.add_argument("--metrics-address", default="0.0.0.0",
                        help="address the /metrics endpoint listens on (default: %(default)s)")
    parser.add_argument("--liveness", metavar="URL",
                        type=flags.url("--liveness", lambda u: u.scheme == "http" and bool(u.hostname and u.port),
                                       "an http://HOST:PORT/PATH URL"),
                        help="serve kopf's health endpoint, e.g. http://0.0.0.0:8080/healthz (default: none)")
    parser.add_argument("--prometheus-url", metavar="URL",
                        type=flags.url("--prometheus-url", lambda u: u.scheme in ("http", "https") and bool(u.netloc),
                                       "an http:// or https:// URL"),
                        help="Prometheus that answers spec.slo.latencyQuery (http:// or https://)")
    parser.add_argument("--prometheus-timeout-seconds", default=5.0,
                        type=flags.number("--prometheus-timeout-seconds", float, lambda v: v > 0, "a number > 0"),
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
    parser.add_argument("--max-replica-step", type=flags.positive_int("--max-replica-step"),
                        default=defaults.max_replica_step,
                        help="most replicas added or removed in one step (default: %(default)s)")
    for flag, default, what in (
            ("--scale-out-cooldown-seconds", defaults.scale_out_cooldown_seconds,
             "least time between two scale-outs of a workload"),
            ("--scale-in-cooldown-seconds", defaults.scale_in_cooldown_seconds,
             "least time after any scaling before a scale-in"),
            ("--resize-cooldown-seconds", defaults.resize_cooldown_seconds,
             "least time between two resizes of a workload")):
        parser.add_argument(flag, type=flags.number(flag, float, lambda v: v >= 0, "a number >= 0"), default=default,
                            help=f"{what} (default: %(default)s)")
    parser.add_argument("--history-window-samples", type=flags.positive_int("--history-window-samples"), default=60,
                        help="usage samples kept per container, one per interval (default: %(default)s)")
    parser.add_argument("--last-decisions", type=flags.number("--last-decisions", int, lambda v: 1 <= v <= 20,
                                                              "from 1 to 20"), default=10,
                        help="entries kept in status.lastDecisions, 1 to 20 (default: %(default)s)")
    parser.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"),
                        help="least severity logged (default: %(default)s)")
    parser.add_argument("--log-format", default="text", choices=LOG_FORMATS,
                        help="text lines, or one JSON object a line (kopf's JSON format: message, timestamp, "
                             "severity, and the object a handler logs about) (default: %(default)s)")
    run_placement.add_arguments(parser)
    flags.from_environment(parser, ENVIRONMENT_PREFIX)
    parser.set_defaults(func=run, parser=parser)


def _config(args: argparse.Namespace, parser: argparse.ArgumentParser) -> OperatorConfig:
    """The :class:`OperatorConfig`; each flag's type checked its value, only the combinations
    are checked here (an invalid one exits with a message naming the flag)."""
    from thrifty.handlers import OperatorConfig

    if args.standalone and args.priority is not None:
        parser.error("--priority: has no effect with --standalone")
    safety = SafetyConfig(
        max_replica_step=args.max_replica_step,
        scale_out_cooldown_seconds=args.scale_out_cooldown_seconds,
        scale_in_cooldown_seconds=args.scale_in_cooldown_seconds,
        resize_cooldown_seconds=args.resize_cooldown_seconds,
    )
    return OperatorConfig(
        kubeconfig_path=args.kubeconfig,
        namespace=args.namespace,
        reconcile_interval_seconds=args.interval_seconds,
        metrics_port=args.metrics_port,
        metrics_address=args.metrics_address,
        liveness_endpoint=args.liveness,
        prometheus_url=args.prometheus_url,
        prometheus_timeout_seconds=args.prometheus_timeout_seconds,
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
    from thrifty.handlers import Reconciler
    from thrifty.handlers import register as register_handlers
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
    kube = await Kube.connect(config.kubeconfig_path, config.namespace, metrics)
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


def configure_logging(log_format: str, log_level: str) -> None:
    """Text lines or JSON objects, both through kopf's own log configuration, so that kopf's
    messages and Thrifty's come out in one format, on stderr."""
    import kopf

    # kopf takes a format string as well as a LogFormat (kopf.configure's make_formatter matches
    # both), though its annotation names only the enum.
    text_format: Any = TEXT_LOG_FORMAT
    kopf.configure(log_format=kopf.LogFormat.JSON if log_format == "json" else text_format)
    logging.getLogger().setLevel(log_level)
    # kopf logs every handler run at INFO; Thrifty's own log says what matters.
    logging.getLogger("kopf.objects").setLevel(max(logging.WARNING, logging.getLevelName(log_level)))


def run(args: argparse.Namespace) -> int:
    config = _config(args, args.parser)
    placement = run_placement.setup(args, args.parser)
    configure_logging(args.log_format, args.log_level)
    return asyncio.run(_operate(config, placement))
