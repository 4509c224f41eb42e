"""What every ``recperf`` subcommand uses to check its command line before any work starts:
``type=`` validators for argparse, and a parser whose errors are one line.

A bad value is then ``recperf <command>: error: argument --lr: must be a finite number
> 0, got 'nan'`` on stderr and exit status 2, whichever subcommand and flag it is.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from pathlib import Path


class Parser(argparse.ArgumentParser):
    """An ArgumentParser (and, through ``add_subparsers``, its subparsers) whose error is
    one line, ``<prog>: error: <message>``, and exit status 2: no usage block."""

    def error(self, message: str):
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def _bad(what: str, text: str) -> argparse.ArgumentTypeError:
    return argparse.ArgumentTypeError(f"must be {what}, got {text!r}")


def _float(text: str, what: str, ok: Callable[[float], bool]) -> float:
    try:
        value = float(text)
    except ValueError:
        raise _bad(what, text) from None
    if not math.isfinite(value) or not ok(value):
        raise _bad(what, text)
    return value


def _int(text: str, what: str, ok: Callable[[int], bool]) -> int:
    try:
        value = int(text)
    except ValueError:
        raise _bad(what, text) from None
    if not ok(value):
        raise _bad(what, text)
    return value


def finite_float(text: str) -> float:
    return _float(text, "a finite number", lambda v: True)


def positive_float(text: str) -> float:
    return _float(text, "a finite number > 0", lambda v: v > 0)


def nonnegative_float(text: str) -> float:
    return _float(text, "a finite number >= 0", lambda v: v >= 0)


def open_fraction(text: str) -> float:
    return _float(text, "a number in (0, 1)", lambda v: 0 < v < 1)


def positive_int(text: str) -> int:
    return _int(text, "an int >= 1", lambda v: v >= 1)


def nonnegative_int(text: str) -> int:
    return _int(text, "an int >= 0", lambda v: v >= 0)


def int_at_least(minimum: int) -> Callable[[str], int]:
    """An int >= ``minimum`` (e.g. the buckets of a hashed feature, id 0 reserved: >= 2)."""

    def check(text: str) -> int:
        return _int(text, f"an int >= {minimum}", lambda v: v >= minimum)

    check.__name__ = f"int_at_least_{minimum}"
    return check


def output_file(text: str) -> str:
    """A file to write at the end of a run: refused now if it names a directory."""
    if not text or Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"must be a file path, got {text!r} (a directory)")
    return text


def existing_dir(text: str) -> str:
    if not Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"must be an existing directory, got {text!r}")
    return text


def exit_code(run: Callable[[], int]) -> int:
    """``run()``'s status, or the status argparse exits with (2 on a bad value, 0 after
    --help), so that ``main([...])`` returns it instead of raising SystemExit."""
    try:
        return run()
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        print(exc.code, file=sys.stderr)
        return 1
