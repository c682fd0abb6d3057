"""``thrifty run``: the operator.

Loads the policy (falling back to the heuristic, loudly, if it cannot), serves ``/metrics``, the
liveness endpoint and the extender, keeps the watch-fed view, and competes for the leader Lease
(:mod:`thrifty.leadership`). Every replica keeps its watches running (a warm standby); only the
leader runs kopf with the handlers of :mod:`thrifty.handlers`, binds and writes. On SIGINT or
SIGTERM the leader releases the Lease so that a standby takes over at once. A leader that loses
the Lease (it could not renew it in time, or another took it) cancels its work in flight and
exits with status 1, as kube-scheduler does, to come back as a standby.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import socket
import time
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from thrifty.commands import flags, run_placement
from thrifty.safety import SafetyConfig

if TYPE_CHECKING:
    from thrifty.handlers import OperatorConfig
    from thrifty.leadership import LeaderElector, Leadership

logger = logging.getLogger("thrifty")


ENVIRONMENT_PREFIX = "THRIFTY_"
"""``thrifty run --some-flag`` can also be set by ``THRIFTY_SOME_FLAG`` (see :mod:`thrifty.commands.flags`)."""
LOG_FORMATS = ("text", "json")
TEXT_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
"""The pod's own namespace, in a cluster: where the leader Lease lives by default."""
LOST_LEADERSHIP_EXIT = 1
"""Exit status of a replica that lost leadership (its container restarts as a standby)."""
KOPF_STOP_SECONDS = 10.0
"""Longest wait for kopf to stop after leadership is lost (its handlers are cancelled already)."""


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
                        help="serve the liveness endpoint (every replica, standby too), e.g. "
                             "http://0.0.0.0:8080/healthz "
                             "(default: none)")
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
    parser.add_argument("--standalone", action="store_true",
                        help="run without leader election: this replica always leads (a single replica)")
    election = parser.add_argument_group("leader election (a coordination.k8s.io Lease)")
    election.add_argument("--leader-election-lease", default="thrifty", metavar="NAME",
                          help="Lease the replicas compete for; only its holder writes (default: %(default)s)")
    election.add_argument("--leader-election-namespace", metavar="NS",
                          help="namespace of that Lease (default: the pod's own in a cluster, else --namespace, "
                               "else default)")
    election.add_argument("--leader-election-identity", metavar="ID",
                          help="this replica's holder identity, unique per process (default: host name and a "
                               "random suffix)")
    election.add_argument("--lease-duration-seconds", default=10,
                          type=flags.number("--lease-duration-seconds", int, lambda v: v >= 1, "a whole number >= 1"),
                          help="how long a standby waits after the Lease last changed before taking it over "
                               "(default: %(default)s)")
    election.add_argument("--renew-deadline-seconds", type=flags.positive_float("--renew-deadline-seconds"),
                          default=7.0,
                          help="how long the leader keeps acting without a successful renew, then steps down; "
                               "shorter than --lease-duration-seconds (default: %(default)s)")
    election.add_argument("--retry-period-seconds", type=flags.positive_float("--retry-period-seconds"),
                          default=2.0,
                          help="seconds between two renews, and between two tries of a standby "
                               "(default: %(default)s)")
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
    parser.add_argument("--status-refresh-seconds", type=flags.number(
                            "--status-refresh-seconds", float, lambda v: v > 0, "a number > 0"), default=60.0,
                        help="longest an RLWorkload's measured status figures (energy, reward, latency) go "
                             "unwritten while nothing else in its status changes (default: %(default)s)")
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
    from thrifty.leadership import LeaderElectionConfig

    election = None
    if not args.standalone:
        # client-go's rules: the leader steps down before a standby may take over, and has time
        # for at least one retry (with jitter) before its deadline.
        jitter = LeaderElectionConfig.jitter_factor
        if not args.renew_deadline_seconds < args.lease_duration_seconds:
            parser.error(f"--renew-deadline-seconds: must be shorter than --lease-duration-seconds "
                         f"({args.lease_duration_seconds}), got {args.renew_deadline_seconds:g}")
        if not jitter * args.retry_period_seconds < args.renew_deadline_seconds:
            parser.error(f"--retry-period-seconds: must be shorter than --renew-deadline-seconds / {jitter:g} "
                         f"({args.renew_deadline_seconds / jitter:g}), got {args.retry_period_seconds:g}")
        election = LeaderElectionConfig(
            lease_name=args.leader_election_lease,
            lease_namespace=args.leader_election_namespace or _own_namespace() or args.namespace or "default",
            identity=args.leader_election_identity or f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}",
            lease_duration_seconds=args.lease_duration_seconds,
            renew_deadline_seconds=args.renew_deadline_seconds,
            retry_period_seconds=args.retry_period_seconds)
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
        leader_election=election,
        history_window_samples=args.history_window_samples,
        last_decisions_limit=args.last_decisions,
        status_refresh_seconds=args.status_refresh_seconds,
        safety=safety,
    )


def _own_namespace() -> str | None:
    """The pod's namespace, when running in a cluster."""
    try:
        with open(SERVICE_ACCOUNT_NAMESPACE) as file:
            return file.read().strip() or None
    except OSError:
        return None


def user_agent(identity: str) -> str:
    """``thrifty/<version> (<identity>)``: each replica's requests told apart in the audit log."""
    from thrifty import __version__

    return f"thrifty/{__version__} ({identity})"


@contextlib.asynccontextmanager
async def _liveness(url: str | None, leadership: Leadership) -> AsyncIterator[None]:
    """The liveness endpoint, served by every replica, standby included (kopf's own would run
    only on the leader): 200 while the event loop answers, with the replica's role."""
    if url is None:
        yield
        return
    from aiohttp import web

    parts = urlsplit(url)

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="leader" if leadership.is_leader() else "standby")

    app = web.Application()
    app.add_routes([web.get(parts.path or "/", healthz)])
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, parts.hostname, parts.port).start()
    try:
        yield
    finally:
        await runner.cleanup()


async def _operate(config: OperatorConfig, placement: run_placement.PlacementSetup) -> int:
    import kopf

    from thrifty.adapter import Kube, Prometheus
    from thrifty.handlers import Reconciler
    from thrifty.handlers import register as register_handlers
    from thrifty.leadership import Leadership
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
    election = config.leader_election
    identity = election.identity if election is not None else socket.gethostname()
    kube = await Kube.connect(config.kubeconfig_path, config.namespace, metrics, user_agent=user_agent(identity))
    leadership = Leadership.always() if election is None else Leadership(clock=time.monotonic)
    kube.fence = leadership.is_leader  # no write of Thrifty's leaves a replica that does not lead
    metrics.watch_leadership(leadership.is_leader)
    prometheus = Prometheus(config.prometheus_url, config.prometheus_timeout_seconds) if config.prometheus_url else None
    try:
        reconciler = Reconciler(config=config, kube=kube, prometheus=prometheus, metrics=metrics,
                                policy=policy, policy_error=policy_error, leadership=leadership)
        registry = kopf.OperatorRegistry()
        register_handlers(registry, reconciler)
        settings = kopf.OperatorSettings()
        # Thrifty posts its own Events; kopf's would add one per handler run ("Timer succeeded").
        settings.posting.enabled = False
        settings.persistence.finalizer = "thrifty.dev/operator"
        # On shutdown, give a step in flight the time to finish rather than orphaning it.
        settings.background.instant_exit_timeout = 5.0
        # kopf's peering is off: the Lease decides who acts, and kopf runs on the leader only.
        settings.peering.standalone = True
        settings.peering.mandatory = False
        stop = asyncio.Event()

        def run_kopf() -> Any:
            return kopf.operator(registry=registry, settings=settings, clusterwide=config.namespace is None,
                                 namespaces=[config.namespace] if config.namespace else (), standalone=True,
                                 stop_flag=stop)

        async with run_placement.placement(placement, kube, reconciler, config.namespace, leadership), \
                _liveness(config.liveness_endpoint, leadership):
            if election is None:
                await run_kopf()
                return 0
            from thrifty.leadership import LeaderElector

            elector = LeaderElector(election, kube, leadership, on_transition=metrics.count_leader_transition)

            @kopf.on.cleanup(registry=registry)  # type: ignore[arg-type]
            async def release_lease(**_: object) -> None:
                # kopf runs its cleanup handlers once its other tasks (watches, timers) have
                # ended, so no write of kopf's follows: hand the Lease over now, not after kopf's
                # last wait for stray tasks (5 s).
                await elector.release()

            return await _lead(elector, leadership, run_kopf, stop)
    finally:
        if prometheus is not None:
            await prometheus.close()
        await kube.close()


async def _lead(elector: LeaderElector, leadership: Leadership, run_kopf: Any, stop: asyncio.Event) -> int:
    """Stand by until this replica holds the Lease, then run kopf while it leads.

    Returns 0 after SIGINT/SIGTERM (the Lease released), :data:`LOST_LEADERSHIP_EXIT` after
    leadership was lost. kopf installs its own SIGINT/SIGTERM handlers while it runs.
    """
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    electing = asyncio.create_task(elector.run(), name="leader election")
    stopping = asyncio.create_task(stop.wait(), name="stop")
    acquired = asyncio.create_task(leadership.acquired.wait(), name="acquired")
    operating: asyncio.Task | None = None
    try:
        await asyncio.wait({electing, stopping, acquired}, return_when=asyncio.FIRST_COMPLETED)
        if electing.done() and not acquired.done():
            electing.result()  # the loop failed before leading: a bug, raised
        if stop.is_set():
            return 0
        # Leading. kopf's tasks are all created from here on; the watches, the extender and the
        # election exist already, so stopping kopf leaves them alone.
        operating = asyncio.create_task(run_kopf(), name="kopf")
        await asyncio.wait({electing, operating}, return_when=asyncio.FIRST_COMPLETED)
        if electing.done() and not elector.released:
            # Lost: writes are refused and the steps in flight cancelled already; stop kopf.
            leadership.end(lost=True)  # also when the loop failed (a bug), before its error is raised
            stop.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(operating), timeout=KOPF_STOP_SECONDS)
            electing.result()
            return LOST_LEADERSHIP_EXIT
        # kopf ended or is ending (a signal; its cleanup released the Lease): raise what it
        # raised, if anything.
        await operating
        return 0
    finally:
        for task in (electing, stopping, acquired, operating):
            if task is not None and not task.done():
                task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await electing
        await elector.release()


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
