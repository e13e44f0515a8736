"""Generic line / CSV reads: ``chip;time;loop`` streams and ``chip,time`` files.

One read per line.  The separator is ``;`` if the line has one, else a tab,
else ``,``.  Fields: chip, time, optional loop.  Time formats accepted:

* ISO 8601 date and time, with or without offset (``2024-05-01T09:15:21.310``,
  ``2024-05-01 09:15:21+02:00``, ``...Z``); without an offset the time is local
  to ``tz``;
* a time of day ``HH:MM:SS(.fff)``, placed on the caller's ``date``;
* epoch milliseconds (an integer); integers below 10^11 are taken as epoch
  seconds, as no race happened in 1973;
* epoch seconds with a decimal fraction.

Blank lines, ``#`` comments and header lines (a first field such as ``chip``
or ``tag``, or a time field such as ``time``) are skipped silently.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import ClassVar

from .base import CLOCK_UNSET, DecodedRead, DecoderProtocol, parse_hms

__all__ = ["GenericProtocol"]

_HEADER_FIRST = {"chip", "tag", "transponder", "bib", "chip_id", "tag_id", "epc"}
_HEADER_TIME = {"time", "timestamp", "tod", "time_ms", "datetime", "date_time", "when"}
_INT_RE = re.compile(r"^-?\d+$")
_FLOAT_RE = re.compile(r"^\d+\.\d+$")


class GenericProtocol(DecoderProtocol):
    """Sans-I/O parser for simple delimited read lines (no commands, no seq)."""

    name: ClassVar[str] = "generic"
    default_port: ClassVar[int] = 0
    supports_refetch: ClassVar[bool] = False

    def _handle_message(self, text: str) -> None:
        line = text.strip().lstrip("\ufeff")
        if not line or line.startswith("#"):
            return
        sep = ";" if ";" in line else ("\t" if "\t" in line else ",")
        fields = [f.strip().strip('"') for f in line.split(sep)]
        if len(fields) < 2:
            self._error("expected at least chip and time", text)
            return
        chip, clock = fields[0], fields[1]
        if chip.lower() in _HEADER_FIRST or clock.lower() in _HEADER_TIME:
            return
        if not chip:
            self._error("empty chip", text)
            return
        try:
            time_ms = self._parse_time(clock)
        except (ValueError, OverflowError) as exc:
            self._error(f"bad time: {exc}", text)
            return
        year = dt.datetime.fromtimestamp(time_ms // 1000, dt.UTC).year
        flags = () if self._year_ok(year) else (CLOCK_UNSET,)
        loop = fields[2] if len(fields) > 2 and fields[2] else None
        self._emit(
            DecodedRead(
                chip=chip,
                time_ms=time_ms,
                seq=None,
                source=self.source_id,
                loop=loop,
                kind="read",
                flags=flags,
                raw=line,
            )
        )

    def _parse_time(self, text: str) -> int:
        if _INT_RE.match(text):
            value = int(text)
            return value * 1000 if abs(value) < 10**11 else value
        if _FLOAT_RE.match(text):
            seconds, _, frac = text.partition(".")
            return int(seconds) * 1000 + int((frac + "000")[:3])
        if "-" in text[:10] and len(text) >= 10:
            stamp = dt.datetime.fromisoformat(text)
            if stamp.tzinfo is None:
                stamp = stamp.replace(tzinfo=self.tz)
            return int(stamp.timestamp()) * 1000 + stamp.microsecond // 1000
        hms = parse_hms(text)
        if self.date is None:
            raise ValueError("time of day without a date (give the race date)")
        return self._epoch_ms(self.date, hms)
