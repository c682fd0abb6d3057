"""The KubeRay RayJob runs a `thrifty train` command line that this version accepts."""

from __future__ import annotations

import shlex
from pathlib import Path

import yaml

from thrifty.cli import build_parser

RAYJOB = Path(__file__).resolve().parents[2] / "manifests" / "training" / "rayjob.yaml"


def test_rayjob_entrypoint_parses_with_the_train_flags() -> None:
    job = next(d for d in yaml.safe_load_all(RAYJOB.read_text()) if d["kind"] == "RayJob")
    words = shlex.split(job["spec"]["entrypoint"])
    assert words[:2] == ["thrifty", "train"]
    args = build_parser().parse_args(words[1:])
    assert args.address == "auto" and args.num_env_runners == 4 and args.out == "/policies"
    volumes = job["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["volumeMounts"]
    assert {"name": "policies", "mountPath": "/policies"} in volumes
