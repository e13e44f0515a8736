"""Reading decoder output saved to a file (or pasted as text) with the same parsers."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from zoneinfo import ZoneInfo

from . import make_parser
from .base import DecodedRead, DecodeError

__all__ = ["read_file", "read_file_numbered"]


def read_file(
    path_or_text: str | os.PathLike[str] | bytes,
    protocol_name: str,
    *,
    source_id: str,
    tz: ZoneInfo,
    date: dt.date | None = None,
) -> tuple[list[DecodedRead], list[DecodeError]]:
    """Decode a whole file with the named protocol's parser.

    ``path_or_text`` is a path (``PathLike``, or a ``str`` without a newline that
    names an existing file), raw ``bytes``, or the text itself.  ``date`` is the
    race date for formats that carry only a time of day.  Commands the parser
    would send are dropped.  Returns the reads in file order and the decode
    errors (including a truncated last record).
    """
    reads, errors = read_file_numbered(
        path_or_text, protocol_name, source_id=source_id, tz=tz, date=date
    )
    return [read for _, read in reads], [err for _, err in errors]


def read_file_numbered(
    path_or_text: str | os.PathLike[str] | bytes,
    protocol_name: str,
    *,
    source_id: str,
    tz: ZoneInfo,
    date: dt.date | None = None,
) -> tuple[list[tuple[int, DecodedRead]], list[tuple[int, DecodeError]]]:
    """Like :func:`read_file`, with the 1-based line number of each read and error.

    The data is fed to the parser one line at a time, so a read or an error is attributed to
    the line on which its message ended (for MYLAPS, the line holding its ``$``); a truncated last
    record counts on the last line.
    """
    data = _load(path_or_text)
    parser = make_parser(protocol_name, source_id=source_id, tz=tz, date=date)
    reads: list[tuple[int, DecodedRead]] = []
    errors: list[tuple[int, DecodeError]] = []
    lines = data.splitlines(keepends=True)
    for number, line in enumerate(lines, start=1):
        parser.receive_data(line)
        reads.extend((number, read) for read in parser.reads_received())
        errors.extend((number, err) for err in parser.errors_received())
        parser.data_to_send()
    parser.receive_eof()
    last = max(1, len(lines))
    reads.extend((last, read) for read in parser.reads_received())
    errors.extend((last, err) for err in parser.errors_received())
    parser.data_to_send()
    return reads, errors


def _load(path_or_text: str | os.PathLike[str] | bytes) -> bytes:
    data: bytes
    if isinstance(path_or_text, bytes):
        data = path_or_text
    elif isinstance(path_or_text, os.PathLike) or _names_file(path_or_text):
        data = Path(path_or_text).read_bytes()
    else:
        data = path_or_text.encode("utf-8")
    return data


def _names_file(text: str) -> bool:
    if "\n" in text or len(text) > 4096:
        return False
    try:
        return Path(text).is_file()
    except (OSError, ValueError):
        return False
