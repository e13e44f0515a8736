"""IPICO reader tag stream (reader streams on TCP 10000, one read per line).

A read line is 36 characters (``aa`` + 34), optionally followed by ``FS`` or
``LS`` (first-seen / last-seen mode):

===========  =====  =======================================================
characters   width  meaning
===========  =====  =======================================================
0-1          2      ``aa`` (read marker)
2-3          2      reader id (hex)
4-15         12     tag id (hex)
16-17        2      I channel
18-19        2      Q channel
20-31        12     ``yyMMddHHmmss`` of the reader's local clock
32-33        2      hundredths of a second, in hex (``00``-``63``)
34-35        2      checksum: sum of the character codes of 2-33, mod 256, hex
36-37        2      optional ``FS`` / ``LS``
===========  =====  =======================================================

Lines starting ``ab`` are the reader's own records (its internal time, a trigger
input) rather than tag reads: they are counted in ``other_records`` and skipped, not
reported as errors.  Bad checksums, bad lengths and other garbage give a
:class:`DecodeError` and the stream continues.  The protocol has neither sequence
numbers nor commands to fetch missed reads; ``seq`` is ``None``, ``source`` is the configured id and
``loop`` is the reader id.  A year 2000 date (``00``) or an all-zero date is
treated as an unset reader clock (flag ``clock_unset``).
"""

from __future__ import annotations

import datetime as dt
import string
from typing import ClassVar

from .base import CLOCK_UNSET, FIRST_SEEN, LAST_SEEN, DecodedRead, DecoderProtocol

__all__ = ["IpicoProtocol", "format_read", "ipico_checksum"]

_HEX = set(string.hexdigits)
_SUFFIX_FLAGS = {"FS": (FIRST_SEEN,), "LS": (LAST_SEEN,)}


def ipico_checksum(body: str) -> int:
    """Checksum of a read: sum of the character codes of ``body`` modulo 256.

    ``body`` is the 32 characters after ``aa`` (reader id through hundredths).
    """
    return sum(body.encode("ascii")) & 0xFF


class IpicoProtocol(DecoderProtocol):
    """Sans-I/O receiver of the IPICO tag-read stream."""

    name: ClassVar[str] = "ipico"
    default_port: ClassVar[int] = 10000
    supports_refetch: ClassVar[bool] = False

    #: ``ab`` lines seen (the reader's internal time and trigger records), not tag reads.
    other_records = 0

    def _handle_message(self, text: str) -> None:
        line = text.strip()
        if line.startswith("ab"):
            # The reader's own records (its internal time, a trigger input): no tag was read.
            self.other_records += 1
            return
        if not line.startswith("aa"):
            self._error("not a tag read (no 'aa' prefix)", text)
            return
        if len(line) not in (36, 38):
            self._error(f"bad read length {len(line)}", text)
            return
        flags: tuple[str, ...] = ()
        if len(line) == 38:
            suffix = line[36:]
            if suffix not in _SUFFIX_FLAGS:
                self._error(f"bad suffix {suffix!r}", text)
                return
            flags = _SUFFIX_FLAGS[suffix]
        body = line[2:34]
        if not set(line[2:36]) <= _HEX:
            self._error("non-hex characters in read", text)
            return
        if int(line[34:36], 16) != ipico_checksum(body):
            self._error("checksum mismatch", text)
            return
        reader = line[2:4]
        tag = line[4:16]
        stamp = line[20:32]
        if not stamp.isdigit():
            self._error("bad timestamp", text)
            return
        hundredths = int(line[32:34], 16)
        if hundredths > 99:
            self._error("hundredths out of range", text)
            return
        yy, mo, dd = int(stamp[0:2]), int(stamp[2:4]), int(stamp[4:6])
        hh, mi, ss = int(stamp[6:8]), int(stamp[8:10]), int(stamp[10:12])
        try:
            if mo == 0 or dd == 0:
                date = self._fallback_date()
                flags = (*flags, CLOCK_UNSET)
            else:
                date = dt.date(2000 + yy, mo, dd)
                if yy == 0 or not self._year_ok(2000 + yy):
                    flags = (*flags, CLOCK_UNSET)
            if hh > 23 or mi > 59 or ss > 59:
                raise ValueError("time of day out of range")
            time_ms = self._epoch_ms(date, (hh, mi, ss, hundredths * 10))
        except ValueError as exc:
            self._error(f"bad date/time: {exc}", text)
            return
        self._emit(
            DecodedRead(
                chip=tag,
                time_ms=time_ms,
                seq=None,
                source=self.source_id,
                loop=reader,
                kind="read",
                flags=flags,
                raw=line,
            )
        )


def format_read(
    tag: str,
    local: dt.datetime,
    *,
    reader: str = "00",
    i_q: str = "0000",
    suffix: str = "",
    clock_unset: bool = False,
) -> str:
    """Format one read line (without terminator); used by the simulator and tests."""
    if len(tag) != 12 or not set(tag) <= _HEX:
        raise ValueError("IPICO tag ids are 12 hex characters")
    stamp = "000000" + local.strftime("%H%M%S") if clock_unset else local.strftime("%y%m%d%H%M%S")
    body = f"{reader}{tag}{i_q}{stamp}{local.microsecond // 10_000:02x}"
    return f"aa{body}{ipico_checksum(body):02x}{suffix}"
