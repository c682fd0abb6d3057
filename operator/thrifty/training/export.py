"""Writes a trained policy as an artefact the operator serves with numpy.

Only the policy layers are exported (``placement.*``, ``sizing.*``): the value heads are a
training device. See :mod:`thrifty.policy.artefact` for the layout.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from thrifty import __version__, features
from thrifty.policy.artefact import METADATA_FILE, WEIGHTS_FILE

_EXPORTED_PREFIXES = ("placement.", "sizing.")


def write_artefact(directory: Path, *, args: dict, results: dict, command: str) -> None:
    """``results[task]`` holds ``state`` (a state_dict as numpy), ``normaliser``, ``seconds``,
    ``env_steps``, ``steps_per_second``, ``kept_iteration`` and ``validation``; ``args`` is the
    training run's :class:`~thrifty.training.args.Args`."""
    weights = {}
    for result in results.values():
        weights.update({k: v for k, v in result["state"].items() if k.startswith(_EXPORTED_PREFIXES)})
    np.savez(directory / WEIGHTS_FILE, **weights)
    metadata = {
        "name": args["name"],
        "version": args["run_name"],
        "thrifty_version": __version__,
        "feature_schema_version": features.SCHEMA_VERSION,
        "feature_fingerprint": features.schema_fingerprint(),
        "hidden_layers": args["layers"],
        "hidden_units": args["hidden"],
        "normalisation": {task: result["normaliser"].to_dict() for task, result in results.items()},
        "training": {
            "command": command,
            "args": args,
            "finished_unix_seconds": int(time.time()),
            "seconds": {task: round(result["seconds"], 1) for task, result in results.items()},
            "env_steps": {task: result["env_steps"] for task, result in results.items()},
            "ppo_env_steps_per_second": {task: round(result["steps_per_second"], 1)
                                         for task, result in results.items()},
            # The PPO iterate exported (0: the behaviour-cloned start) and its validation scores.
            "kept_iteration": {task: result["kept_iteration"] for task, result in results.items()},
            "validation": {task: result["validation"] for task, result in results.items()},
        },
    }
    (directory / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")
