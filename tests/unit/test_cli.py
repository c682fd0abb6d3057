"""The command line: --version, `thrifty run`'s flags from THRIFTY_* variables, and its log
formats."""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import logging

import pytest

from thrifty.cli import build_parser, main
from thrifty.commands.run import configure_logging


def _run_parser() -> argparse.ArgumentParser:
    subparsers = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return subparsers.choices["run"]


def test_version_is_the_package_metadata(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out == f"thrifty {importlib.metadata.version('thrifty')}\n"


def test_a_variable_sets_its_flag_and_the_command_line_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THRIFTY_INTERVAL_SECONDS", "2.5")
    monkeypatch.setenv("THRIFTY_PROMETHEUS_URL", "http://prometheus:9090")
    monkeypatch.setenv("THRIFTY_LOG_FORMAT", "json")
    args = build_parser().parse_args(["run"])
    assert (args.interval_seconds, args.prometheus_url, args.log_format) == (2.5, "http://prometheus:9090", "json")
    assert args.metrics_port == 8000  # no variable: the default
    args = build_parser().parse_args(["run", "--interval-seconds", "3", "--log-format=text"])
    assert (args.interval_seconds, args.prometheus_url, args.log_format) == (3.0, "http://prometheus:9090", "text")


@pytest.mark.parametrize(("text", "value"), [("true", True), ("1", True), ("Yes", True), ("on", True),
                                             ("false", False), ("0", False), ("no", False), ("off", False)])
def test_a_flag_without_value_reads_true_or_false(monkeypatch: pytest.MonkeyPatch, text: str, value: bool) -> None:
    monkeypatch.setenv("THRIFTY_STANDALONE", text)
    assert build_parser().parse_args(["run"]).standalone is value
    assert build_parser().parse_args(["run", "--standalone"]).standalone is True


@pytest.mark.parametrize(("variable", "text", "message"), [
    ("THRIFTY_METRICS_PORT", "70000",
     "environment variable THRIFTY_METRICS_PORT: --metrics-port: must be a TCP port from 1 to 65535, got '70000'"),
    ("THRIFTY_INTERVAL_SECONDS", "soon",
     "environment variable THRIFTY_INTERVAL_SECONDS: --interval-seconds: must be a number, got 'soon'"),
    ("THRIFTY_PROMETHEUS_URL", "prometheus:9090",
     "environment variable THRIFTY_PROMETHEUS_URL: --prometheus-url: must be an http:// or https:// URL"),
    ("THRIFTY_LOG_FORMAT", "xml", "environment variable THRIFTY_LOG_FORMAT: invalid choice: 'xml'"),
    ("THRIFTY_STANDALONE", "maybe", "environment variable THRIFTY_STANDALONE: must be true or false"),
    ("THRIFTY_EXTENDER_PORT", "0",
     "environment variable THRIFTY_EXTENDER_PORT: --extender-port: must be a TCP port from 1 to 65535, got '0'"),
    ("THRIFTY_PERCENTAGE_OF_NODES_TO_SCORE", "101",
     "environment variable THRIFTY_PERCENTAGE_OF_NODES_TO_SCORE: --percentage-of-nodes-to-score: "
     "must be from 0 to 100"),
    ("THRIFTY_POLICY_BUDGET_SECONDS", "0",
     "environment variable THRIFTY_POLICY_BUDGET_SECONDS: --policy-budget-seconds: must be a positive number"),
])
def test_a_bad_variable_is_refused_naming_it(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                             variable: str, text: str, message: str) -> None:
    monkeypatch.setenv(variable, text)
    with pytest.raises(SystemExit) as exit_:
        main(["run"])
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_a_bad_variable_under_a_flag_on_the_command_line_is_no_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THRIFTY_METRICS_PORT", "70000")
    assert build_parser().parse_args(["run", "--metrics-port", "9000"]).metrics_port == 9000


def test_every_flag_of_run_has_its_variable_in_help(capsys: pytest.CaptureFixture[str]) -> None:
    parser = _run_parser()
    flags = [a for a in parser._actions if a.option_strings and not isinstance(a, argparse._HelpAction)]
    assert len(flags) == 35
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    shown = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    for action in flags:
        variable = "THRIFTY_" + action.option_strings[-1][2:].upper().replace("-", "_")
        assert parser.environment[action.dest] == variable
        assert f"[env: {variable}]" in shown, variable
    assert "A flag on the command line wins over its variable" in shown


def test_other_commands_read_only_their_command_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THRIFTY_OUT", "/nowhere/dashboard.json")
    assert build_parser().parse_args(["dashboard"]).out is None


@pytest.fixture
def root_logger():
    """The root logger's handlers and level, put back after the test."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    yield
    root.handlers[:], level = saved
    root.setLevel(level)


def test_json_logs_are_one_object_a_line(root_logger, capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("json", "INFO")
    logging.getLogger("thrifty").warning("bound %s", "ns/web-0")
    logging.getLogger("thrifty").debug("not at INFO")
    [line] = capsys.readouterr().err.splitlines()
    record = json.loads(line)
    assert record["message"] == "bound ns/web-0"
    assert record["severity"] == "warn" and record["timestamp"].startswith("20")  # kopf's fields


def test_text_logs_are_lines(root_logger, capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("text", "DEBUG")
    logging.getLogger("thrifty").debug("a step")
    [line] = capsys.readouterr().err.splitlines()
    assert line.endswith(" DEBUG thrifty: a step"), line
