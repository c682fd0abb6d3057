"""The trace-driven cluster simulator.

* :class:`Scenario` and its parts (:mod:`thrifty.sim.spec`): what runs, as data;
* :func:`build_scenario` (:mod:`thrifty.sim.scenario`): a scenario from real traces;
* :class:`Simulator` (:mod:`thrifty.sim.simulator`): the dynamics, driven by a harness through
  ``bind``, ``resize``, ``scale`` and ``step``, observed through ``snapshot``;
* :class:`StepResult`: what one step reports.
"""

from thrifty.sim.result import StepResult
from thrifty.sim.scenario import build_scenario
from thrifty.sim.simulator import Simulator
from thrifty.sim.spec import BackgroundPods, Dependencies, Scenario, ScenarioNodes, WorkloadSpec, no_dependencies

__all__ = [
    "BackgroundPods",
    "Dependencies",
    "Scenario",
    "ScenarioNodes",
    "Simulator",
    "StepResult",
    "WorkloadSpec",
    "build_scenario",
    "no_dependencies",
]
