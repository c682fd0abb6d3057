"""`thrifty run` imports only the runtime, even in an environment that has every extra.

The cluster install test runs the operator from an environment built as the image builds it,
where the extras cannot be imported at all. This test guards the same line in the development
environment, where they can: a stray top-level import of the training code from the CLI (as
once happened through ``thrifty.commands.train``) fails here before it breaks the image.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO

EXTRAS_ONLY = ("ray", "torch", "gymnasium", "matplotlib", "scipy", "tqdm")
"""Top-level modules of the ``sim``, ``bench`` and ``train`` extras' packages. The synchronous
``kubernetes`` client of the ``bench`` extra is left out: kopf imports it opportunistically
where it is installed (``kopf._cogs.helpers.thirdparty``); the image has none, and the cluster
install test runs the operator there."""

PROBE = """
import json, sys
from thrifty.cli import build_parser
args = build_parser().parse_args(sys.argv[1:])
# What `thrifty run` imports before it connects (thrifty.commands.run._operate), and the policy
# the Deployment serves, loaded through the numpy backend.
import kopf
import thrifty.adapter, thrifty.handlers, thrifty.metrics
from thrifty.commands.run import _config
from thrifty.policy.loader import load_policy
config = _config(args, args.parser)
load_policy(config.policy_spec, config.policy_backend)
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""


def _loaded_top_level_modules(*argv: str) -> set[str]:
    proc = subprocess.run([sys.executable, "-c", PROBE, *argv], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return set(json.loads(proc.stdout.splitlines()[-1]))


@pytest.mark.parametrize("policy", ["heuristic", str(REPO / "policies" / "default")])
def test_thrifty_run_imports_none_of_the_extras(policy: str) -> None:
    loaded = _loaded_top_level_modules("run", "--policy", policy)
    assert {"kopf", "kubernetes_asyncio", "numpy", "thrifty"} <= loaded, "the probe did not import the operator"
    assert not loaded & set(EXTRAS_ONLY), f"thrifty run imports {sorted(loaded & set(EXTRAS_ONLY))}"


def test_every_subcommands_help_imports_none_of_the_extras() -> None:
    """Building the CLI registers every subcommand; none may pull its heavy dependencies in."""
    probe = ("import json, sys; from thrifty.cli import build_parser; build_parser(); "
             "print(json.dumps(sorted({n.split('.')[0] for n in sys.modules})))")
    proc = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    loaded = set(json.loads(proc.stdout.splitlines()[-1]))
    assert not loaded & set(EXTRAS_ONLY), f"building the CLI imports {sorted(loaded & set(EXTRAS_ONLY))}"
