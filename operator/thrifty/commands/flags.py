"""argparse types that check a number flag and name the flag in the error.

``type=positive_int("--steps")`` rejects ``--steps 0`` with "--steps: must be >= 1, got '0'",
the form ``thrifty run`` and the config classes use.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import TypeVar

_Number = TypeVar("_Number", int, float)


def _number(flag: str, kind: type[_Number], accept: Callable[[_Number], bool], rule: str) -> Callable[[str], _Number]:
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
    return _number(flag, int, lambda v: v >= 1, ">= 1")


def non_negative_int(flag: str) -> Callable[[str], int]:
    """An integer >= 0."""
    return _number(flag, int, lambda v: v >= 0, ">= 0")


def positive_float(flag: str) -> Callable[[str], float]:
    """A finite number > 0."""
    return _number(flag, float, lambda v: v > 0, "a positive number")
