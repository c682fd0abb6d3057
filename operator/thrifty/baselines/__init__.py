"""The baselines Thrifty is measured against, each behind the same Policy interface.

Pure numpy, no Kubernetes client: they run in the simulator through the same decision core and
safety pipeline as Thrifty's own policies (:mod:`thrifty.harness`). Each cites the upstream
file whose algorithm it reproduces.

===========================  =========  ===========================================================
class                        decides    algorithm
===========================  =========  ===========================================================
``KubeDefaultScoring``       placement  kube-scheduler default: LeastAllocated + BalancedAllocation
``MostAllocatedScoring``     placement  NodeResourcesFit MostAllocated (bin-packing) + Balanced
``TargetLoadPacking``        placement  Trimaran: pack to a target measured CPU utilisation
``NetworkAwareScoring``      placement  default + NetworkOverhead-style dependency co-location
``RandomPlacement``          placement  a uniformly random feasible node
``VpaRecommender``           sizing     VPA recommender (decaying histograms) and updater rule
``HorizontalPodAutoscaler``  sizing     HPA on CPU utilisation: ratio, tolerance, stabilisation
``KubernetesStack``          sizing     HPA on CPU + VPA on memory only (no HPA/VPA fight)
``StaticSizing``             sizing     nothing changes (a Deployment without autoscalers)
``ClusterAutoscaler``        nodes      drains under-used nodes next to a baseline scheduler
``ClusterAutoscalerNodes``   placement  wraps one: removed and draining nodes only as a last resort
===========================  =========  ===========================================================

Placement baselines propose no sizing change; sizing baselines place with the default profile.
Calibrated parameters are in :mod:`thrifty.baselines.calibrated`.
"""

from thrifty.baselines.cluster_autoscaler import ClusterAutoscaler, ClusterAutoscalerNodes
from thrifty.baselines.hpa import HorizontalPodAutoscaler, HpaConfig
from thrifty.baselines.kube_scheduler import KubeDefaultScoring, MostAllocatedScoring
from thrifty.baselines.network_aware import NetworkAwareScoring
from thrifty.baselines.random_placement import RandomPlacement
from thrifty.baselines.stack import KubernetesStack, StaticSizing
from thrifty.baselines.trimaran import TargetLoadPacking
from thrifty.baselines.vpa import VpaConfig, VpaRecommender

__all__ = [
    "ClusterAutoscaler",
    "ClusterAutoscalerNodes",
    "HorizontalPodAutoscaler",
    "HpaConfig",
    "KubeDefaultScoring",
    "KubernetesStack",
    "MostAllocatedScoring",
    "NetworkAwareScoring",
    "RandomPlacement",
    "StaticSizing",
    "TargetLoadPacking",
    "VpaConfig",
    "VpaRecommender",
]
