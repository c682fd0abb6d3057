"""The generated KubeSchedulerConfiguration, the committed ConfigMap, and the child process."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
import yaml

from thrifty.cli import main
from thrifty.kubescheduler import KubeSchedulerProcess, find_binary
from thrifty.schedulerconfig import SchedulerConfig, render_configmap, scheduler_configuration

REPO = Path(__file__).resolve().parents[2]


def test_the_only_profile_is_thriftys_with_every_scorer_off_and_the_extender_ignorable() -> None:
    config = scheduler_configuration(SchedulerConfig(extender_url="http://127.0.0.1:9999"))
    assert config["apiVersion"] == "kubescheduler.config.k8s.io/v1"
    [profile] = config["profiles"]
    assert profile["schedulerName"] == "thrifty"
    assert profile["plugins"] == {"score": {"disabled": [{"name": "*"}]}}  # filters untouched
    [extender] = config["extenders"]
    assert extender["urlPrefix"] == "http://127.0.0.1:9999"
    assert extender["prioritizeVerb"] == "prioritize" and "bindVerb" not in extender  # kube-scheduler binds
    assert extender["nodeCacheCapable"] is True and extender["ignorable"] is True
    assert extender["httpTimeout"] == "2s" and "filterVerb" not in extender
    assert config["percentageOfNodesToScore"] == 100
    assert config["leaderElection"]["resourceName"] == "thrifty-scheduler"


def test_the_committed_configmap_is_the_generated_one(capsys: pytest.CaptureFixture) -> None:
    assert main(["scheduler-config", "--configmap", "--lease-namespace", "thrifty-system"]) == 0
    printed = capsys.readouterr().out
    assert printed == (REPO / "manifests/scheduler-config.yaml").read_text(), (
        "regenerate: thrifty scheduler-config --configmap --lease-namespace thrifty-system "
        "> manifests/scheduler-config.yaml")
    assert printed == render_configmap(SchedulerConfig(lease_namespace="thrifty-system"))
    embedded = yaml.safe_load(yaml.safe_load(printed)["data"]["config.yaml"])
    assert embedded == scheduler_configuration(SchedulerConfig(lease_namespace="thrifty-system"))


def test_the_deployment_mounts_that_configmap() -> None:
    deployment = yaml.safe_load((REPO / "manifests/deployment.yaml").read_text())
    spec = deployment["spec"]["template"]["spec"]
    scheduler = next(c for c in spec["containers"] if c["name"] == "kube-scheduler")
    operator = next(c for c in spec["containers"] if c["name"] == "operator")
    assert scheduler["image"] == "registry.k8s.io/kube-scheduler:v1.37.2"
    assert "--no-kube-scheduler" in operator["args"]
    assert not any(a.startswith("--extender-address") for a in operator["args"])  # loopback default
    [volume] = [v for v in spec["volumes"] if v.get("configMap")]
    assert volume["configMap"]["name"] == yaml.safe_load((REPO / "manifests/scheduler-config.yaml").read_text())[
        "metadata"]["name"]


def test_invalid_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="percentage_of_nodes_to_score"):
        SchedulerConfig(percentage_of_nodes_to_score=101)
    with pytest.raises(ValueError, match="extender_url"):
        SchedulerConfig(extender_url="127.0.0.1:8888")


def test_find_binary_names_what_it_tried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THRIFTY_CACHE", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="--kube-scheduler-binary"):
        find_binary(None)
    with pytest.raises(FileNotFoundError, match="not an executable"):
        find_binary(str(tmp_path / "nope"))


def test_the_child_is_stopped_with_sigterm_then_sigkill(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A stand-in child that ignores SIGTERM is killed after the grace period."""
    monkeypatch.setattr("thrifty.kubescheduler.STOP_TIMEOUT_SECONDS", 0.5)
    script = tmp_path / "stubborn"
    script.write_text(f"#!{sys.executable}\nimport signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                      "print('up', flush=True)\ntime.sleep(60)\n")
    script.chmod(0o755)
    child = KubeSchedulerProcess(str(script), "kind: KubeSchedulerConfiguration\n", str(tmp_path / "log"))
    child.start()
    config_file = Path(child._config_file or "")
    assert config_file.read_text() == "kind: KubeSchedulerConfiguration\n"
    time.sleep(0.5)  # let it install its SIGTERM handler
    child.stop()
    assert child.process is not None and child.process.returncode == -9
    assert not config_file.exists()
