"""``thrifty run``'s child kube-scheduler: started with the generated configuration, stopped
with the operator (SIGTERM, then SIGKILL).

A child, not a thread: kube-scheduler is Go, the same release the project builds. If the
operator is killed outright (SIGKILL), the child keeps running and keeps its Lease, and the
framework keeps placing pods without the extender (it is ``ignorable``) until a new operator
listens on the same extender address again.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from thrifty.schedulerconfig import KUBE_SCHEDULER_VERSION

logger = logging.getLogger("thrifty")

STOP_TIMEOUT_SECONDS = 10.0
"""Wait after SIGTERM before SIGKILL."""


def find_binary(explicit: str | None) -> str:
    """``explicit``, else the release hack/build.sh cached, else ``kube-scheduler`` on PATH.

    Raises FileNotFoundError naming what was tried.
    """
    if explicit:
        if not os.access(explicit, os.X_OK):
            raise FileNotFoundError(f"--kube-scheduler-binary {explicit}: not an executable file")
        return explicit
    cache = Path(os.environ.get("THRIFTY_CACHE") or Path.home() / ".cache" / "thrifty") / "bin"
    built = sorted(cache.glob(f"k8s-{KUBE_SCHEDULER_VERSION}_*/kube-scheduler"))
    if built:
        return str(built[-1])
    found = shutil.which("kube-scheduler")
    if found:
        return found
    raise FileNotFoundError(f"no kube-scheduler: not in {cache}/k8s-{KUBE_SCHEDULER_VERSION}_*/ (hack/build.sh) "
                            "nor on PATH; pass --kube-scheduler-binary, or --no-kube-scheduler if the "
                            "cluster runs Thrifty's profile itself")


class KubeSchedulerProcess:
    """One child kube-scheduler; its output goes to ``log_path`` (the operator's stderr if None)."""

    def __init__(self, binary: str, config_yaml: str, log_path: str | None = None) -> None:
        self.binary = binary
        self.config_yaml = config_yaml
        self.log_path = log_path
        self.process: subprocess.Popen | None = None
        self._config_file: str | None = None

    def start(self) -> None:
        handle, self._config_file = tempfile.mkstemp(prefix="thrifty-scheduler-", suffix=".yaml")
        with os.fdopen(handle, "w") as file:
            file.write(self.config_yaml)
        # --secure-port=0: no HTTPS endpoint, so no port to collide with and no delegated-auth
        # permissions; leader election and the extender need none.
        args = [self.binary, f"--config={self._config_file}", "--secure-port=0"]
        log = open(self.log_path, "ab") if self.log_path else None  # noqa: SIM115 (the child keeps it)
        try:
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT if log else None)
        finally:
            if log is not None:
                log.close()
        logger.info("started kube-scheduler (pid %d): %s, config %s%s", self.process.pid, self.binary,
                    self._config_file, f", log {self.log_path}" if self.log_path else "")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                logger.warning("kube-scheduler (pid %d) ignored SIGTERM for %.0f s; killing it",
                               self.process.pid, STOP_TIMEOUT_SECONDS)
                self.process.kill()
                self.process.wait()
            logger.info("stopped kube-scheduler (pid %d, exit %s)", self.process.pid, self.process.returncode)
        if self._config_file:
            Path(self._config_file).unlink(missing_ok=True)
            self._config_file = None
