"""The benchmark behind ``thrifty bench``: policies against baselines in the simulator.

* :mod:`thrifty.bench.scenarios`: traces (with the fallback rule) and scenarios;
* :mod:`thrifty.bench.policies`: policies by name (``PLACEMENT+SIZING``, ``rl:DIR``);
* :mod:`thrifty.bench.runner`: one run through the harness;
* :mod:`thrifty.bench.metrics`: what a run measures;
* :mod:`thrifty.bench.lower_bound`: the energy no policy can go under;
* :mod:`thrifty.bench.calibration`: the baselines' parameter grids;
* :mod:`thrifty.bench.report`: ``results.csv``, ``results.md`` and plots.
"""
