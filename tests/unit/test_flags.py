"""The CLI's number flags: accepted values, and errors that name the flag."""

from __future__ import annotations

import argparse

import pytest

from thrifty.commands.flags import non_negative_int, positive_float, positive_int


@pytest.mark.parametrize(("make", "text", "value"), [
    (positive_int, "1", 1),
    (positive_int, "360", 360),
    (non_negative_int, "0", 0),
    (positive_float, "0.5", 0.5),
    (positive_float, "20", 20.0),
])
def test_accepts(make, text, value):
    assert make("--x")(text) == value


@pytest.mark.parametrize(("make", "text", "message"), [
    (positive_int, "0", "--x: must be >= 1, got '0'"),
    (positive_int, "-3", "--x: must be >= 1, got '-3'"),
    (positive_int, "1.5", "--x: must be an integer, got '1.5'"),
    (positive_int, "many", "--x: must be an integer, got 'many'"),
    (non_negative_int, "-1", "--x: must be >= 0, got '-1'"),
    (positive_float, "0", "--x: must be a positive number, got '0'"),
    (positive_float, "nan", "--x: must be a positive number, got 'nan'"),
    (positive_float, "inf", "--x: must be a positive number, got 'inf'"),
    (positive_float, "fast", "--x: must be a number, got 'fast'"),
])
def test_rejects_naming_the_flag(make, text, message):
    with pytest.raises(argparse.ArgumentTypeError) as error:
        make("--x")(text)
    assert str(error.value) == message
