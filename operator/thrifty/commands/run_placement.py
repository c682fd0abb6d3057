"""``thrifty run``'s placement half: the extender, the watch-fed view behind it, and the child
kube-scheduler that runs Thrifty's profile (see :mod:`thrifty.extender`, docs/placement.md)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from thrifty.commands import flags

if TYPE_CHECKING:
    from thrifty.adapter import Kube
    from thrifty.extender.server import ExtenderConfig
    from thrifty.handlers import Reconciler
    from thrifty.leadership import Leadership
    from thrifty.schedulerconfig import SchedulerConfig

logger = logging.getLogger("thrifty")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("placement (kube-scheduler extender)")
    group.add_argument("--extender-address", default="127.0.0.1",
                       help="address the extender listens on; loopback, kube-scheduler runs beside it "
                            "(default: %(default)s)")
    group.add_argument("--extender-port", type=flags.port("--extender-port"), default=8888,
                       help="port of the extender (default: %(default)s)")
    group.add_argument("--policy-budget-seconds", type=flags.positive_float("--policy-budget-seconds"), default=0.1,
                       help="longest the policy may score one pod before the heuristic answers (default: %(default)s)")
    group.add_argument("--kube-scheduler-binary", metavar="PATH",
                       help="kube-scheduler to start (default: hack/build.sh's cached release, else PATH)")
    group.add_argument("--no-kube-scheduler", action="store_true",
                       help="start no kube-scheduler: the cluster runs Thrifty's profile itself "
                            "(thrifty scheduler-config)")
    group.add_argument("--scheduler-lease", default="thrifty-scheduler", metavar="NAME",
                       help="leader-election Lease of the child kube-scheduler, in kube-system (default: %(default)s)")
    group.add_argument("--percentage-of-nodes-to-score", default=100,
                       type=flags.number("--percentage-of-nodes-to-score", int, lambda v: 0 <= v <= 100,
                                         "from 0 to 100"),
                       help="feasible nodes the child kube-scheduler finds before scoring, in %% of all nodes; "
                            "0: upstream's adaptive default (default: %(default)s, the policy sees every node)")
    group.add_argument("--kube-scheduler-qps", type=flags.positive_float("--kube-scheduler-qps"), default=50.0,
                       help="the child kube-scheduler's API requests per second (default: %(default)s)")
    group.add_argument("--kube-scheduler-burst", type=flags.positive_int("--kube-scheduler-burst"), default=100,
                       help="the child kube-scheduler's API request burst (default: %(default)s)")


@dataclass(frozen=True)
class PlacementSetup:
    extender: ExtenderConfig
    scheduler: SchedulerConfig | None
    """None: no child kube-scheduler."""
    scheduler_binary: str | None


def setup(args: argparse.Namespace, parser: argparse.ArgumentParser) -> PlacementSetup:
    """The validated configuration; an invalid flag exits with a message naming it."""
    from thrifty.extender.server import ExtenderConfig
    from thrifty.kubescheduler import find_binary
    from thrifty.schedulerconfig import SchedulerConfig

    extender = ExtenderConfig(address=args.extender_address, port=args.extender_port,
                              policy_budget_seconds=args.policy_budget_seconds,
                              last_decisions_limit=args.last_decisions)
    if args.no_kube_scheduler:
        return PlacementSetup(extender, None, None)
    try:
        binary = find_binary(args.kube_scheduler_binary)
    except FileNotFoundError as error:
        parser.error(str(error))
    kubeconfig = args.kubeconfig or (None if "KUBERNETES_SERVICE_HOST" in os.environ else (
        os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")))
    host = "127.0.0.1" if args.extender_address in ("0.0.0.0", "") else args.extender_address
    scheduler = SchedulerConfig(
        extender_url=f"http://{host}:{args.extender_port}", lease_name=args.scheduler_lease,
        kubeconfig_path=os.path.abspath(kubeconfig) if kubeconfig else None,
        client_qps=args.kube_scheduler_qps, client_burst=args.kube_scheduler_burst,
        percentage_of_nodes_to_score=args.percentage_of_nodes_to_score)
    return PlacementSetup(extender, scheduler, binary)


@contextlib.asynccontextmanager
async def placement(setup: PlacementSetup, kube: Kube, reconciler: Reconciler, namespace: str | None,
                    leadership: Leadership) -> AsyncIterator[None]:
    """The extender and its view while the operator runs, and the child kube-scheduler. Every
    replica runs them: a standby's view stays warm, and its extender scores but does not bind
    (docs/placement.md)."""
    import time

    from thrifty.extender.server import Extender
    from thrifty.informer import Informer
    from thrifty.kubescheduler import KubeSchedulerProcess
    from thrifty.schedulerconfig import render
    from thrifty.view import ClusterView

    view = ClusterView(clock=time.monotonic)
    informer = Informer(kube, view, namespace=namespace, pending=reconciler.metrics.pending_pods,
                        count_event=lambda kind: reconciler.metrics.watch_events.labels(kind).inc())
    extender = Extender(config=setup.extender, kube=kube, view=view, history=reconciler.history,
                        policy=reconciler.policy, fallback=reconciler.fallback, metrics=reconciler.metrics,
                        status_lock=reconciler.lock, synced=informer.synced, leadership=leadership)
    informer.on_bound = extender.bound
    await extender.start()
    watching = asyncio.create_task(informer.run())
    child = None
    if setup.scheduler is not None and setup.scheduler_binary is not None:
        child = KubeSchedulerProcess(setup.scheduler_binary, render(setup.scheduler))
        child.start()
    else:
        logger.info("no kube-scheduler started (--no-kube-scheduler): the cluster's own runs Thrifty's profile")
    try:
        yield
    finally:
        if child is not None:
            child.stop()
        watching.cancel()
        await extender.stop()
