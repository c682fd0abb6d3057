"""The autoscaling stack platform teams run today, and the do-nothing reference.

:class:`KubernetesStack` is kube-scheduler's default placement with an HPA on CPU utilisation
and a VPA that controls **memory only** (``controlledResources: ["memory"]``). An HPA and a VPA
both acting on CPU fight: the VPA raises the request when usage is high, which lowers the
utilisation the HPA scales on, and the HPA scales in just when more capacity was needed.
Kubernetes' and Google Cloud's documentation therefore advise against an HPA and a VPA on the
same resource; giving the VPA memory and the HPA CPU is the configuration GKE packages as
multidimensional Pod autoscaling. Each half keeps its own state and runs its upstream rule
unchanged (see :mod:`thrifty.baselines.hpa`, :mod:`thrifty.baselines.vpa`); this class only
merges their outputs: replicas from the HPA, memory requests from the VPA, CPU requests as set.

:class:`StaticSizing` changes nothing: the sizes a team deployed stay, as with a plain
Deployment without autoscalers.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from thrifty import __version__
from thrifty.actions import SizingProposal, keep_proposal
from thrifty.baselines.hpa import HorizontalPodAutoscaler, HpaConfig
from thrifty.baselines.kube_scheduler import KubeDefaultScoring, PlacedByKubeScheduler
from thrifty.baselines.vpa import MEMORY, VpaConfig, VpaRecommender
from thrifty.policy.base import PolicyInfo
from thrifty.snapshot import ClusterSnapshot


@dataclass
class KubernetesStack(PlacedByKubeScheduler):
    """Default kube-scheduler + HPA (CPU) + VPA (memory only), as one sizing policy."""

    hpa_config: HpaConfig = field(default_factory=HpaConfig)
    vpa_config: VpaConfig = field(default_factory=lambda: VpaConfig(controlled_resources=(MEMORY,)))
    placement: KubeDefaultScoring = field(default_factory=KubeDefaultScoring)

    def __post_init__(self) -> None:
        if self.vpa_config.controlled_resources != (MEMORY,):
            raise ValueError("KubernetesStack.vpa_config.controlled_resources: must be ('memory',) so that the "
                             f"VPA and the HPA do not both act on CPU, got {self.vpa_config.controlled_resources!r}")
        self.hpa = HorizontalPodAutoscaler(self.hpa_config, self.placement)
        self.vpa = VpaRecommender(self.vpa_config, self.placement)
        self.info = PolicyInfo(name="k8s-stack", version=__version__, backend="baseline")

    def size(self, snapshot: ClusterSnapshot) -> SizingProposal:
        replicas = self.hpa.size(snapshot).replicas
        return replace(self.vpa.size(snapshot), replicas=replicas)


class StaticSizing(PlacedByKubeScheduler):
    """Keeps every size as deployed; pods are placed by the default kube-scheduler profile."""

    def __init__(self, placement: KubeDefaultScoring | None = None) -> None:
        self.placement = placement or KubeDefaultScoring()
        self.info = PolicyInfo(name="static", version=__version__, backend="baseline")

    def size(self, snapshot: ClusterSnapshot) -> SizingProposal:
        return keep_proposal(snapshot)
