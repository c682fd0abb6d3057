"""A real Ray cluster on this machine, started as an operator would: `ray start --head`, then
`ray start --address` for one worker, each its own raylet, and `ray stop` at the end.

The head offers no CPU, so every task or actor that asks for one (env runners, benchmark runs)
must run on the worker: work that completes there really left the driver's node.

Both nodes use the loopback address 127.0.0.2: Ray replaces 127.0.0.1 (and "localhost") by the
machine's outward address, and this machine's tests talk to loopback only. Token authentication,
on by default since Ray 2.5x, is off: nothing outside this machine can reach these ports' address.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.operator import free_port

NODE_IP = "127.0.0.2"
ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
"""Environment of every Ray process of the test cluster, drivers included."""


@dataclass(frozen=True)
class RayCluster:
    address: str
    """``host:port`` of the head's GCS, what ``ray.init(address=...)`` and ``--address`` take."""
    head_node_id: str
    worker_node_id: str
    logs: Path
    """The session's log folder, which both nodes share on one machine (each ``worker-*.out``
    names the actor or the tasks its worker process ran)."""
    env: dict[str, str] = field(default_factory=dict)
    """The environment a driver of this cluster needs."""

    def actor_logs(self, class_name_part: str) -> list[Path]:
        """Worker logs of actors whose class name contains ``class_name_part``."""
        return self._logs_naming(":actor_name:", class_name_part)

    def task_logs(self, function_name: str) -> list[Path]:
        """Worker logs of processes that ran the task ``function_name``."""
        return self._logs_naming(f":task_name:{function_name}\n", "")

    def _logs_naming(self, marker: str, part: str) -> list[Path]:
        return [p for p in self.logs.glob("worker-*.out")
                if marker in (text := p.read_text(errors="replace")) and part in text]


def _ray() -> str:
    found = shutil.which("ray", path=str(Path(sys.executable).parent))
    if found is None:
        raise RuntimeError("the ray CLI is not in the environment: `make venv` installs the train extra")
    return found


def _run(env: dict[str, str], *args: str) -> None:
    proc = subprocess.run([_ray(), *args], capture_output=True, text=True, timeout=180, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"ray {' '.join(args)} failed ({proc.returncode}):\n"
                           f"{proc.stdout[-3000:]}{proc.stderr[-3000:]}")


def _alive_nodes(env: dict[str, str], address: str) -> list[dict]:
    probe = ("import json, sys, ray; ray.init(address=sys.argv[1], log_to_driver=False); "
             "print(json.dumps([{'id': n['NodeID'], 'cpus': n['Resources'].get('CPU', 0)} "
             "for n in ray.nodes() if n['Alive']]))")
    proc = subprocess.run([sys.executable, "-c", probe, address], capture_output=True, text=True, timeout=120,
                          env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"cannot list the Ray cluster's nodes:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.splitlines()[-1])


@contextlib.contextmanager
def ray_cluster(worker_cpus: int = 2) -> Iterator[RayCluster]:
    """A head (no CPUs) and one worker with ``worker_cpus``; stopped, whatever happens."""
    env = {**os.environ, **ENV}
    port = free_port()
    address = f"{NODE_IP}:{port}"
    # Ray's Unix socket paths must stay under 107 bytes: a short temp dir, not pytest's.
    temp_dir = tempfile.mkdtemp(prefix="ray-", dir="/tmp")
    try:
        _run(env, "start", "--head", f"--port={port}", f"--node-ip-address={NODE_IP}", "--num-cpus=0",
             "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp_dir}")
        [head] = _alive_nodes(env, address)
        _run(env, "start", f"--address={address}", f"--node-ip-address={NODE_IP}", f"--num-cpus={worker_cpus}",
             "--disable-usage-stats")
        [worker] = [n for n in _alive_nodes(env, address) if n["id"] != head["id"]]
        assert worker["cpus"] == worker_cpus and head["cpus"] == 0, (head, worker)
        yield RayCluster(address=address, head_node_id=head["id"], worker_node_id=worker["id"],
                         logs=Path(temp_dir) / "session_latest" / "logs", env=env)
    finally:
        subprocess.run([_ray(), "stop", "--force"], capture_output=True, timeout=120, env=env)
        shutil.rmtree(temp_dir, ignore_errors=True)
