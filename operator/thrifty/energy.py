"""Node power from utilisation, and its attribution to pods and workloads.

The simulator and the live operator both call this module, so an energy figure in training is
computed exactly as the one exported to Prometheus.

Power model
-----------
Each node belongs to a power class (label ``thrifty.dev/power-class``). A class has an idle and a
peak wattage and a SPECpower-style load curve: the fraction of the idle-to-peak range drawn at
0 %, 10 %, ..., 100 % CPU utilisation, interpolated linearly in between::

    P(u) = P_idle + (P_peak - P_idle) * f(u)          u = CPU usage / CPU capacity in [0, 1]

A node that is empty and marked for standby draws ``standby_watts`` instead. See
``docs/models.md`` for the source of the default constants.

Attribution
-----------
As Kepler does, the dynamic part ``P(u) - P_idle`` is shared among the pods on a node by their
CPU usage. The idle part is shared by CPU request: a request holds capacity and so keeps the node
powered, whether or not it is used. On a node with no requests the idle power stays unattributed
(it is the cost of the empty node, which consolidation should remove).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from thrifty.snapshot import ClusterSnapshot, NodeTable

_UTILISATION_POINTS = np.linspace(0.0, 1.0, 11)

SPECPOWER_SHAPE = (0.0, 0.18, 0.29, 0.38, 0.46, 0.54, 0.62, 0.70, 0.79, 0.89, 1.0)
"""Default load curve: fraction of (peak - idle) at 0 %, 10 %, ..., 100 % utilisation.

The 11 points are SPECpower_ssj2008's load levels (active idle, then 10 % to 100 % of calibrated
throughput), so a published result can replace this curve point for point. The default is a
representative shape, not one server's result: concave at low load, where the first 10 % of load
costs 18 % of the dynamic range instead of 10 %, then close to linear. It stays within 0.1 of the
empirical curve ``2u - u**1.4`` of Fan, Weber and Barroso (ISCA 2007). See docs/models.md."""


@dataclass(frozen=True)
class PowerProfile:
    """The power behaviour of one node class."""

    name: str
    """Power class name, matched against the node label ``thrifty.dev/power-class``."""
    idle_watts: float
    """Power drawn when on and idle (0 % CPU)."""
    peak_watts: float
    """Power drawn at 100 % CPU."""
    standby_watts: float
    """Power drawn when the node is empty and in standby."""
    curve: tuple[float, ...] = SPECPOWER_SHAPE
    """Fraction of ``peak_watts - idle_watts`` at 0 %, 10 %, ..., 100 % utilisation (11 points,
    non-decreasing, from 0 to 1)."""

    def __post_init__(self) -> None:
        if len(self.curve) != 11:
            raise ValueError(f"PowerProfile {self.name!r}.curve: needs 11 points, got {len(self.curve)}")
        curve = np.asarray(self.curve, dtype=float)
        if not np.all(np.isfinite(curve)) or np.any(np.diff(curve) < 0):
            raise ValueError(f"PowerProfile {self.name!r}.curve: must be finite and non-decreasing")
        if curve[0] != 0.0 or curve[-1] != 1.0:
            raise ValueError(f"PowerProfile {self.name!r}.curve: must start at 0 and end at 1")
        if not 0.0 <= self.standby_watts <= self.idle_watts <= self.peak_watts:
            raise ValueError(
                f"PowerProfile {self.name!r}: need 0 <= standby_watts <= idle_watts <= peak_watts, "
                f"got {self.standby_watts}, {self.idle_watts}, {self.peak_watts}"
            )

    def watts(self, utilisation: np.ndarray) -> np.ndarray:
        """Power at the given CPU utilisation(s); utilisation is clipped to [0, 1]."""
        u = np.clip(np.asarray(utilisation, dtype=float), 0.0, 1.0)
        fraction = np.interp(u, _UTILISATION_POINTS, self.curve)
        return self.idle_watts + (self.peak_watts - self.idle_watts) * fraction


DEFAULT_PROFILES: Mapping[str, PowerProfile] = {
    profile.name: profile
    for profile in (
        # Dell PowerEdge R620, 2x Intel Xeon E5-2670 (16 cores, 32 threads): SPECpower_ssj2008
        # res2012q1/power_ssj2008-20120306-00434, active idle 54.1 W, 100 % 243 W.
        PowerProfile(name="small", idle_watts=54.1, peak_watts=243.0, standby_watts=8.0),
        # Dell PowerEdge R820, Intel Xeon 2.7 GHz (32 cores, 64 threads): res2012q2/
        # power_ssj2008-20120515-00468, active idle 110 W, 100 % 446 W.
        PowerProfile(name="medium", idle_watts=110.0, peak_watts=446.0, standby_watts=12.0),
        # HPE ProLiant DL380 Gen10 Plus, 2x Intel Xeon Platinum 8380 (80 cores, 160 threads):
        # res2021q2/power_ssj2008-20210601-01103, active idle 127 W, 100 % 619 W.
        PowerProfile(name="large", idle_watts=127.0, peak_watts=619.0, standby_watts=15.0),
    )
}
"""Default classes by node size: small up to 32 vCPUs, medium up to 64, large above.

Idle and peak are the active-idle and 100 % wall power of one published SPECpower_ssj2008 result
per class, of a server whose thread count matches the class (docs/models.md lists the rows and
where they were read), so a powered small node costs less than a big one, idle or busy. The curve
between them is ``SPECPOWER_SHAPE``. Standby (a few watts for suspend or soft-off with the BMC
powered) is an assumption. No GPUs: Thrifty does not place them. Defaults only: configure
classes from your hardware's SPECpower result."""


def power_class_for_cpu(cpu_capacity_millicores: float) -> str:
    """The default power class of a node without a ``thrifty.dev/power-class`` label."""
    if cpu_capacity_millicores <= 32_000:
        return "small"
    if cpu_capacity_millicores <= 64_000:
        return "medium"
    return "large"


@lru_cache(maxsize=16)
def _class_masks(power_class: tuple[str, ...]) -> tuple[tuple[str, np.ndarray], ...]:
    # Cached on the tuple: snapshots derived from one another share it, and a placement decision
    # asks for node power several times. The masks are read-only.
    classes = np.asarray(power_class, dtype=object)
    masks = []
    for name in sorted(set(power_class)):
        mask = classes == name
        mask.setflags(write=False)
        masks.append((name, mask))
    return tuple(masks)


@dataclass(frozen=True)
class PowerModel:
    """Maps a snapshot to node, pod and workload power."""

    profiles: Mapping[str, PowerProfile] = field(default_factory=lambda: dict(DEFAULT_PROFILES))
    """Power profiles by class name."""
    default_class: str = "medium"
    """Class used for a node whose class is not in ``profiles``."""

    def _profile(self, name: str) -> PowerProfile:
        return self.profiles.get(name) or self.profiles[self.default_class]

    def node_watts(self, nodes: NodeTable, cpu_usage_millicores: np.ndarray | None = None) -> np.ndarray:
        """(nodes,) power of each node.

        ``cpu_usage_millicores`` overrides the measured usage (the simulator passes its own).
        Unknown (NaN) usage is taken as the node's requested CPU, the best estimate left.
        Zero capacity counts as fully utilised if anything runs there, idle otherwise.
        """
        usage = nodes.cpu_usage_millicores if cpu_usage_millicores is None else cpu_usage_millicores
        usage = np.where(np.isnan(usage), nodes.cpu_requested_millicores, usage)
        capacity = nodes.cpu_capacity_millicores
        with np.errstate(divide="ignore", invalid="ignore"):
            utilisation = np.where(capacity > 0, usage / capacity, np.where(usage > 0, 1.0, 0.0))
        watts = np.empty(len(nodes))
        for name, mask in self._class_masks(nodes):
            profile = self._profile(name)
            watts[mask] = np.where(nodes.standby[mask], profile.standby_watts, profile.watts(utilisation[mask]))
        return watts

    @staticmethod
    def _class_masks(nodes: NodeTable) -> tuple[tuple[str, np.ndarray], ...]:
        """(class name, bool mask of its nodes) for each power class present: per-class vector
        operations instead of a Python loop over nodes."""
        return _class_masks(nodes.power_class)

    def idle_watts(self, nodes: NodeTable) -> np.ndarray:
        """(nodes,) idle power of each node (standby power for a node in standby)."""
        watts = np.empty(len(nodes))
        for name, mask in self._class_masks(nodes):
            profile = self._profile(name)
            watts[mask] = np.where(nodes.standby[mask], profile.standby_watts, profile.idle_watts)
        return watts

    def pod_watts(
        self,
        snapshot: ClusterSnapshot,
        node_watts: np.ndarray | None = None,
        pod_cpu_usage_millicores: np.ndarray | None = None,
    ) -> np.ndarray:
        """(pods,) power attributed to each pod (0 for a Pending pod).

        Dynamic power goes by CPU usage share on the node, idle power by CPU request share.
        """
        nodes, pods = snapshot.nodes, snapshot.pods
        n_nodes = len(nodes)
        total = self.node_watts(nodes) if node_watts is None else node_watts
        idle = self.idle_watts(nodes)
        dynamic = np.maximum(total - idle, 0.0)
        usage = pods.cpu_usage_millicores if pod_cpu_usage_millicores is None else pod_cpu_usage_millicores
        usage = np.where(np.isnan(usage), pods.cpu_request_millicores, usage)
        bound = pods.node_index >= 0
        node = np.where(bound, pods.node_index, 0)
        usage = np.where(bound, usage, 0.0)
        requests = np.where(bound, pods.cpu_request_millicores, 0.0)
        usage_sum = np.bincount(node, weights=usage, minlength=n_nodes)
        request_sum = np.bincount(node, weights=requests, minlength=n_nodes)
        with np.errstate(divide="ignore", invalid="ignore"):
            usage_share = np.where(usage_sum[node] > 0, usage / usage_sum[node], 0.0)
            request_share = np.where(request_sum[node] > 0, requests / request_sum[node], 0.0)
        return np.where(bound, dynamic[node] * usage_share + idle[node] * request_share, 0.0)

    def workload_watts(self, snapshot: ClusterSnapshot, pod_watts: np.ndarray | None = None) -> np.ndarray:
        """(workloads,) power attributed to each RLWorkload."""
        watts = self.pod_watts(snapshot) if pod_watts is None else pod_watts
        mask = snapshot.pods.workload_index >= 0
        return np.bincount(
            snapshot.pods.workload_index[mask], weights=watts[mask], minlength=len(snapshot.workloads)
        )
