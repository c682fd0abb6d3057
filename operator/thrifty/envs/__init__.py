"""Gymnasium environments on the trace-driven simulator.

* :class:`SizingEnv`: vertical and horizontal sizing of every workload in one action.
* :class:`PlacementEnv`: the node for one Pending pod per step.

Both observe through :mod:`thrifty.features` and act through the same safety pipeline as the
operator (:mod:`thrifty.core`), so a policy trained here meets the same bounds in production.
"""

from thrifty.envs.placement import PlacementEnv
from thrifty.envs.sizing import SizingEnv

__all__ = ["PlacementEnv", "SizingEnv"]
