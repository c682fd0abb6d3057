"""The CLI's parser, with flags that environment variables can set, and argparse types that
check a flag's value and name the flag in the error.

``type=positive_int("--steps")`` rejects ``--steps 0`` with "--steps: must be >= 1, got '0'",
the form ``thrifty run`` and the config classes use.

Environment variables (:func:`from_environment`): a subcommand that opts in reads each of its
flags from ``PREFIX`` + the flag's name in upper case with ``-`` as ``_`` (``thrifty run
--metrics-port`` from ``THRIFTY_METRICS_PORT``). A flag given on the command line wins. The
variable's text goes through the flag's own type and choices, so a bad value is refused as the
flag's would be, and the error names the variable. A flag that takes no value (``--standalone``)
reads ``true``, ``1``, ``yes``, ``on`` or ``false``, ``0``, ``no``, ``off``. Flags that take several
values or count (none in ``thrifty run``) have no variable.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import ParseResult, urlparse

TRUE, FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")
_Number = TypeVar("_Number", int, float)


class Parser(argparse.ArgumentParser):
    """An ArgumentParser that also reads the flags :func:`from_environment` gave variables to.
    Its subcommands' parsers are of this class too (argparse's default ``parser_class``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.environment: dict[str, str] = {}
        """Variable name by the ``dest`` of the flag it sets."""

    # The stubs overload parse_known_args by the namespace's type; this parser always fills an
    # argparse.Namespace, so it keeps the one signature the CLI calls.
    def parse_known_args(  # type: ignore[override]
            self, args: Sequence[str] | None = None,
            namespace: argparse.Namespace | None = None) -> tuple[argparse.Namespace, list[str]]:
        namespace = argparse.Namespace() if namespace is None else namespace
        # A variable's text waits in the namespace in place of the default; the command line
        # overwrites it if the flag is there. Only what is left is converted, so a bad variable
        # under a flag given on the command line is no error.
        for dest, variable in self.environment.items():
            if variable in os.environ:
                setattr(namespace, dest, _FromEnvironment(variable, os.environ[variable]))
        namespace, extras = super().parse_known_args(args, namespace)
        assert namespace is not None  # argparse returns the namespace it was given
        for action in self._actions:
            text = getattr(namespace, action.dest, None)
            if isinstance(text, _FromEnvironment):
                setattr(namespace, action.dest, self._environment_value(action, text))
        return namespace, extras

    def _environment_value(self, action: argparse.Action, text: _FromEnvironment) -> Any:
        if action.nargs == 0:
            word = text.value.strip().lower()
            if word not in TRUE + FALSE:
                self.error(f"environment variable {text.variable}: must be true or false "
                           f"({', '.join(TRUE)} or {', '.join(FALSE)}), got {text.value!r}")
            return action.const if word in TRUE else action.default
        try:
            return self._get_values(action, [text.value])
        except argparse.ArgumentError as error:
            self.error(f"environment variable {text.variable}: {error.message}")


class _FromEnvironment:
    """A variable's text, not yet converted: what the namespace holds until the parse ends."""

    def __init__(self, variable: str, value: str) -> None:
        self.variable, self.value = variable, value


def from_environment(parser: Parser, prefix: str) -> None:
    """Give each flag of ``parser`` that takes one value, or none, a variable ``PREFIX_FLAG_NAME``,
    shown in ``--help``. Call it after the flags are added."""
    for action in parser._actions:
        long = [o for o in action.option_strings if o.startswith("--")]
        takes_one_or_none = (type(action) is argparse._StoreAction and action.nargs is None) or isinstance(
            action, argparse._StoreTrueAction | argparse._StoreFalseAction)
        if not long or not takes_one_or_none:
            continue
        variable = prefix + long[0][2:].upper().replace("-", "_")
        parser.environment[action.dest] = variable
        action.help = f"{action.help or ''} [env: {variable}]".lstrip()


def number(flag: str, kind: type[_Number], accept: Callable[[_Number], bool], rule: str) -> Callable[[str], _Number]:
    """A finite ``kind`` (int or float) that ``accept`` takes; else "FLAG: must be RULE"."""
    noun = "an integer" if kind is int else "a number"

    def parse(text: str) -> _Number:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag}: must be {noun}, got {text!r}") from None
        if not (math.isfinite(value) and accept(value)):
            raise argparse.ArgumentTypeError(f"{flag}: must be {rule}, got {text!r}")
        return value

    return parse


def positive_int(flag: str) -> Callable[[str], int]:
    """An integer >= 1."""
    return number(flag, int, lambda v: v >= 1, ">= 1")


def non_negative_int(flag: str) -> Callable[[str], int]:
    """An integer >= 0."""
    return number(flag, int, lambda v: v >= 0, ">= 0")


def port(flag: str) -> Callable[[str], int]:
    """A TCP port, 1 to 65535."""
    return number(flag, int, lambda v: 1 <= v <= 65535, "a TCP port from 1 to 65535")


def positive_float(flag: str) -> Callable[[str], float]:
    """A finite number > 0."""
    return number(flag, float, lambda v: v > 0, "a positive number")


def url(flag: str, accept: Callable[[ParseResult], bool], rule: str) -> Callable[[str], str]:
    """A URL that ``accept`` takes once parsed; else "FLAG: must be RULE"."""
    def parse(text: str) -> str:
        try:
            parsed = urlparse(text)
            ok = accept(parsed)
        except ValueError:  # a port that is no number, or out of range
            ok = False
        if not ok:
            raise argparse.ArgumentTypeError(f"{flag}: must be {rule}, got {text!r}")
        return text

    return parse
