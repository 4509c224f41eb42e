"""Reading the JSON files recperf loads (LoKA plans, bench results): whatever is wrong with
the file (unreadable, not UTF-8, not JSON, nested past what the parser can follow, an integer
too long to convert) is one ValueError that names it; what the value must hold is the
caller's check."""

from __future__ import annotations

import json
import os
from pathlib import Path


def read_json(path: str | os.PathLike, label: str | None = None) -> object:
    """The JSON value in the file ``path``; errors start with ``label`` (default: the path)."""
    label = label or str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ValueError(f"{label}: cannot be read ({exc.strerror or exc})") from exc
    return parse_json(raw, label)


def parse_json(text: str | bytes, label: str = "<string>") -> object:
    """``json.loads`` with its failures as one ValueError starting with ``label``."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(
                f"{label}: not UTF-8 text "
                f"(the byte at offset {exc.start} is {text[exc.start]:#04x})"
            ) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{label}: not valid JSON ({exc})") from None
    except RecursionError:
        raise ValueError(f"{label}: not valid JSON (nested too deeply to parse)") from None
    except ValueError as exc:  # e.g. an integer past Python's digit limit
        raise ValueError(f"{label}: not valid JSON ({exc})") from None
