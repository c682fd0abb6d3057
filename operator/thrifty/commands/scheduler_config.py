"""``thrifty scheduler-config``: print the KubeSchedulerConfiguration of Thrifty's profile (or
its ConfigMap, as committed in manifests/scheduler-config.yaml)."""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    from thrifty.schedulerconfig import SchedulerConfig

    defaults = SchedulerConfig()
    parser = subparsers.add_parser(
        "scheduler-config", help="print the kube-scheduler configuration of Thrifty's profile",
        description="Print a KubeSchedulerConfiguration whose only profile, schedulerName: thrifty, filters with "
                    "every upstream plugin and scores and binds through Thrifty's extender.",
    )
    parser.add_argument("--extender-url", default=defaults.extender_url,
                        help="base URL of the extender (default: %(default)s)")
    parser.add_argument("--kubeconfig", metavar="PATH", help="kube-scheduler's kubeconfig (default: in-cluster)")
    parser.add_argument("--lease", default=defaults.lease_name, help="leader-election Lease (default: %(default)s)")
    parser.add_argument("--lease-namespace", default=defaults.lease_namespace,
                        help="namespace of the Lease (default: %(default)s)")
    parser.add_argument("--percentage-of-nodes-to-score", type=int, default=defaults.percentage_of_nodes_to_score,
                        help="feasible nodes to find before scoring, in %% of all nodes (default: %(default)s)")
    parser.add_argument("--http-timeout-seconds", type=float, default=defaults.http_timeout_seconds,
                        help="longest wait for one extender call (default: %(default)s)")
    parser.add_argument("--configmap", action="store_true",
                        help="print it as the ConfigMap the Deployment mounts (manifests/scheduler-config.yaml)")
    parser.add_argument("--configmap-namespace", default="thrifty-system",
                        help="namespace of that ConfigMap (default: %(default)s)")
    parser.set_defaults(func=run, parser=parser)


def run(args: argparse.Namespace) -> int:
    from thrifty.schedulerconfig import SchedulerConfig, render, render_configmap

    try:
        config = SchedulerConfig(extender_url=args.extender_url, kubeconfig_path=args.kubeconfig,
                                 lease_name=args.lease, lease_namespace=args.lease_namespace,
                                 percentage_of_nodes_to_score=args.percentage_of_nodes_to_score,
                                 http_timeout_seconds=args.http_timeout_seconds)
    except ValueError as error:
        args.parser.error(str(error))
    sys.stdout.write(render_configmap(config, namespace=args.configmap_namespace) if args.configmap
                     else render(config))
    return 0
