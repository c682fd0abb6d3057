"""Moving a pod in the simulator: an eviction through the Eviction API and its re-creation.

:meth:`thrifty.sim.Simulator.migrate` evicts one workload pod and lets its ReplicaSet re-create
it, as a drain (Thrifty's consolidation, the Cluster Autoscaler, Karpenter) or the descheduler
does in a cluster. What that costs is what it costs there:

* **The PodDisruptionBudget.** The eviction is refused, changing nothing, when the workload's
  PDB allows no disruption now: with ``maxUnavailable`` *u* and *r* desired replicas, at least
  ``r - u`` pods must stay ready (the disruption controller's ``desiredHealthy``), so an
  eviction needs more than ``r - u`` ready pods. A pod is ready when it is bound to an awake
  node and not restarting or starting (:func:`ready_mask`).
* **A restart.** The evicted pod is deleted and a replacement is created Pending at the
  workload's current size; with a target node it is bound there at once if it fits (otherwise it
  stays Pending for the scheduler). It serves only after
  :attr:`~thrifty.config.MigrationConfig.startup_seconds`: until then its replica is out of
  service, and the workload's other replicas carry its load.
* **Lost warm state.** For :attr:`~thrifty.config.MigrationConfig.warmup_seconds` after the
  start-up the replacement serves at ``warmup_service_rate_fraction`` of its rate
  (:func:`service_rate_fraction`; the simulator takes :func:`warm_up_loss` off the workload's
  serving CPU), which raises the workload's latency in the M/M/c model.
* **Churn.** A deletion and a creation: two churn counts for the workload, which the reward's
  churn penalty charges (:mod:`thrifty.reward`).

Each accepted eviction is counted in :attr:`thrifty.sim.StepResult.workload_voluntary_evictions`
of the next step. Background pods have no controller and cannot be migrated.

These functions work on the simulator's own state (they are its migration action, kept in
their own module); call them through :meth:`~thrifty.sim.Simulator.migrate`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from thrifty.config import MigrationConfig
from thrifty.snapshot import UNBOUND

if TYPE_CHECKING:
    from thrifty.sim.simulator import Simulator


def ready_mask(sim: Simulator, slots: np.ndarray) -> np.ndarray:
    """bool over ``slots``: bound to an awake node and neither restarting nor starting."""
    pods = sim._pods
    node = pods.node[slots]
    bound = node != UNBOUND
    safe_node = np.where(bound, node, 0)
    awake = ~sim._standby[safe_node] & (sim._wake_remaining[safe_node] <= 0)
    return bound & awake & (pods.restart_remaining_seconds[slots] <= 0)


def disruptions_allowed(sim: Simulator, workload: int) -> int | None:
    """Evictions of ``workload``'s pods its PDB allows now (None: no PDB, any number)."""
    budget = sim.scenario.workloads[workload].pdb_max_unavailable
    if budget is None:
        return None
    slots = sim._workload_slots(workload)
    ready = int(np.count_nonzero(ready_mask(sim, slots)))
    return max(ready - max(len(slots) - budget, 0), 0)


def migrate(sim: Simulator, pod: str, node: int | str | None) -> str | None:
    """Evict ``pod`` and re-create it (bound to ``node`` when given and it fits); see the module
    docstring. Returns the replacement's name, or None when the PDB refuses the eviction.

    Raises ValueError for a pod without a workload (a background pod: nothing re-creates it).
    """
    slot = sim._slot(pod)
    pods = sim._pods
    workload = int(pods.workload[slot])
    if workload < 0:
        raise ValueError(f"migrate({pod!r}): a pod without a controller cannot be evicted and re-created")
    target = None if node is None else sim._node(node)
    allowed = disruptions_allowed(sim, workload)
    if allowed is not None and allowed < 1:
        return None
    sim._delete(np.array([slot], dtype=np.int64))
    (replacement,) = sim._create_workload_pods(workload, 1, count_churn=True)
    config: MigrationConfig = sim.config.migration
    new_slot = pods.slot_of[replacement]
    pods.restart_remaining_seconds[new_slot] = config.startup_seconds
    pods.warmup_remaining_seconds[new_slot] = config.startup_seconds + config.warmup_seconds
    sim._voluntary_evictions[workload] += 1
    if target is not None:
        sim.bind(replacement, target)
    return replacement


def service_rate_fraction(warmup_remaining_seconds: np.ndarray, config: MigrationConfig) -> np.ndarray:
    """(pods,) fraction of its service rate each pod serves at: lower while it warms up."""
    return np.where(warmup_remaining_seconds > 0, config.warmup_service_rate_fraction, 1.0)


def warm_up_loss(serving_millicores: np.ndarray, warmup_remaining_seconds: np.ndarray, series_row: np.ndarray,
                 n_workloads: int, config: MigrationConfig) -> np.ndarray:
    """(workloads,) serving CPU the running pods lose to their warm-ups, summed per workload.

    ``serving_millicores`` and ``warmup_remaining_seconds`` are per running pod, ``series_row``
    its workload, or ``n_workloads`` for a background pod (not counted).
    """
    lost = serving_millicores * (1.0 - service_rate_fraction(warmup_remaining_seconds, config))
    return np.bincount(series_row, weights=lost, minlength=n_workloads + 1)[:n_workloads]
