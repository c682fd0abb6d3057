"""The operator's environment built exactly as the ``Dockerfile`` builds it, without an image.

No container engine runs here, so the Dockerfile's own ``RUN`` command that creates
``/opt/venv`` is run as written, with ``/opt/venv`` and ``/src`` mapped to a temporary folder and
to a copy of the build context (the files ``.dockerignore`` lets in). What the cluster tests run
from it is what the image would run: the lock's packages, then Thrifty, and nothing of the
development environment.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from tests.conftest import REPO

EXTRAS_ONLY = ("ray", "torch", "gymnasium", "matplotlib")
"""Top-level modules that only the ``sim``, ``bench`` and ``train`` extras bring."""


def _build_context(target: Path) -> Path:
    """Copy what ``.dockerignore`` (an allow-list after ``*``) lets into the build, to ``target``."""
    for line in (REPO / ".dockerignore").read_text().splitlines():
        if not line.startswith("!"):
            continue
        source = REPO / line[1:].rstrip("/")
        destination = target / source.relative_to(REPO)
        destination.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, destination, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
        else:
            shutil.copy2(source, destination)
    return target


def venv_command() -> str:
    """The Dockerfile's ``RUN`` instruction that creates ``/opt/venv``, continuation lines joined."""
    text = re.sub(r"\\\n(\s*#.*\n)*", " ", (REPO / "Dockerfile").read_text())
    runs = [line.strip()[4:] for line in text.splitlines()
            if line.strip().startswith("RUN ") and "/opt/venv" in line]
    if len(runs) != 1:
        raise AssertionError(f"want one RUN that builds /opt/venv in the Dockerfile, found {len(runs)}")
    return runs[0]


def build(workdir: Path) -> Path:
    """Build the image's environment under ``workdir``; returns its ``bin/`` directory."""
    source = _build_context(workdir / "src")
    venv = workdir / "venv"
    command = venv_command().replace("/opt/venv", str(venv)).replace("/src", str(source))
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", command], capture_output=True, text=True,
                          timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"the Dockerfile's environment did not build ({proc.returncode}):\n"
                           f"{command}\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
    return venv / "bin"


def installed(bin_dir: Path, modules: tuple[str, ...] = EXTRAS_ONLY) -> list[str]:
    """Which of ``modules`` the environment's Python could import at all."""
    probe = "import importlib.util, sys; print(' '.join(m for m in sys.argv[1:] if importlib.util.find_spec(m)))"
    proc = subprocess.run([str(bin_dir / "python"), "-c", probe, *modules], capture_output=True, text=True,
                          check=True, timeout=60)
    return proc.stdout.split()


def loaded_files(pid: int) -> set[str]:
    """Files mapped into a running process (its Python modules' native parts among them)."""
    return {line.split(maxsplit=5)[5] for line in Path(f"/proc/{pid}/maps").read_text().splitlines()
            if len(line.split(maxsplit=5)) == 6}
