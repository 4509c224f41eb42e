"""Reading a delimited text data file (plain, or gzip when the name ends in ``.gz``), shared
by the Criteo and Taobao loaders.

Files are UTF-8. Whatever is wrong with the bytes is a ValueError naming the file and the
line: text in another encoding (latin-1, UTF-16) or binary, a field past the csv module's
size limit, a NUL byte, a truncated or corrupted ``.gz``, or a ``.gz`` that is no gzip.
"""

from __future__ import annotations

import csv
import gzip
import io
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


def open_text(path: str | Path) -> io.TextIOBase:
    """The file as text (gzip when it ends in .gz); FileNotFoundError naming it."""
    path = Path(path)
    if not path.is_file():
        what = "a directory, not a file" if path.is_dir() else "no such file"
        raise FileNotFoundError(f"data file {str(path)!r}: {what}")
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def _first_undecodable(path: Path) -> tuple[int, int, int]:
    """(line, byte offset in it, the byte) of the first byte that is not UTF-8 in ``path``."""
    opener = gzip.open if path.suffix == ".gz" else open
    number = 0
    try:
        with opener(path, "rb") as f:
            for number, raw in enumerate(f, 1):
                try:
                    raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    return number, exc.start, raw[exc.start]
    except (gzip.BadGzipFile, EOFError, zlib.error):  # a .gz that also ends early
        pass
    return number + 1, 0, 0  # not found again: the line after the last one read


@contextmanager
def _file_errors(path: str | Path, lines_read: Callable[[], int]) -> Iterator[None]:
    """Turn what reading ``path`` can raise into a ValueError naming it and the line;
    ``lines_read()`` says how many lines were read when it failed."""
    try:
        yield
    except UnicodeDecodeError:
        line, at, byte = _first_undecodable(Path(path))
        raise ValueError(
            f"{path}, line {line}: not UTF-8 text (byte {at + 1} of the line is {byte:#04x}); "
            "data files must be UTF-8 (convert a latin-1 or UTF-16 file with iconv)"
        ) from None
    except csv.Error as exc:  # a field over csv.field_size_limit()
        raise ValueError(f"{path}, line {max(lines_read(), 1)}: {exc}") from None
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        what = {EOFError: "a truncated", zlib.error: "a corrupted"}.get(type(exc), "not a valid")
        raise ValueError(f"{path}, line {lines_read() + 1}: {what} gzip file ({exc})") from None


def _text_lines(f, path) -> Iterator[str]:
    """The lines of ``f``; a NUL byte (the csv module reads it as text) means binary data."""
    for number, line in enumerate(f, 1):
        if "\0" in line:
            raise ValueError(f"{path}, line {number}: a NUL byte: binary data, not a text file")
        yield line


def first_line(path: str | Path) -> str:
    with open_text(path) as f, _file_errors(path, lambda: 0):
        return f.readline().rstrip("\r\n")


def read_rows(
    path: str | Path, delimiter: str, header: bool, max_rows: int | None = None
) -> tuple[list[str] | None, list[list[str]], list[int]]:
    """(header names or None, rows as lists of strings, the file line of each row); at most
    ``max_rows`` rows (None: all, 0: none).

    Every row must have as many fields as the header (or as the first row): else a
    ValueError naming the line. Blank lines are skipped."""
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    rows, lines, names = [], [], None
    if max_rows == 0 and not header:
        return names, rows, lines
    with open_text(path) as f:
        reader = csv.reader(_text_lines(f, path), delimiter=delimiter, quoting=quoting)
        width = None
        with _file_errors(path, lambda: reader.line_num):
            for fields in reader:
                line = reader.line_num
                if not fields or (len(fields) == 1 and not fields[0].strip()):
                    continue
                if header and names is None:
                    names = [n.strip() for n in fields]
                    width = len(names)
                    if max_rows == 0:
                        break
                    continue
                if width is None:
                    width = len(fields)
                if len(fields) != width:
                    raise ValueError(
                        f"{path}, line {line}: {len(fields)} fields, expected {width}"
                        + (f" (the header's {width} columns)" if header else "")
                    )
                rows.append(fields)
                lines.append(line)
                if max_rows is not None and len(rows) >= max_rows:
                    break
    return names, rows, lines
