"""RACE RESULT decoder TCP protocol (decoder listens on TCP 3601).

Text commands and answers, one per CRLF-terminated line, fields separated by
``;``.  What this parser does:

* On :meth:`connection_made` it queues ``SETPROTOCOL;2.0`` (record layout with
  box name and file number), ``SETPUSHPASSINGS;1;0`` (push new passings as they
  happen, do not push the stored ones) and ``PASSINGS`` (ask the passing count).
* Pushed passings arrive as ``#P;<passing record>``; passings requested by range
  (``<first>:<count>``) or by number arrive as the bare record.
* When the count answer ``PASSINGS;<n>[;<file>]`` shows passings beyond the last
  stored number, the missing range is requested (in chunks).  A pushed passing
  whose number jumps past the highest one seen also triggers a range request.

Passing record fields used (0-based): 0 passing number, 1 transponder/bib,
2 date ``yyyy-MM-dd``, 3 time ``hh:mm:ss.kkk``, 9 channel, 10 loop id,
16 box name, 17 file number, 19 box id.

* **Files.** A decoder keeps its passings in numbered files and numbers each file's passings
  from 1, so a passing is identified by its file and number: the ``seq`` a read carries is
  ``(file - 1) * FILE_SPAN + number`` (:func:`file_seq`; the first file's passings keep their
  own numbers). A new file started mid-event (by the timer, or a decoder reused from an
  earlier race) is then never taken for passings already stored. The file comes from the
  record (field 17) or else from the last ``PASSINGS`` answer; a resume point in another file
  than the decoder's current one fetches the current file from its first passing.

A date ``0000-00-0N`` means the decoder never got a real date (no GPS / time never set): the
read is flagged ``clock_unset`` and placed on the fallback date plus N days.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from typing import ClassVar
from zoneinfo import ZoneInfo

from .base import BACKLOG, CLOCK_UNSET, DecodedRead, DecoderProtocol, parse_hms

__all__ = ["FILE_SPAN", "RaceResultProtocol", "file_seq", "format_passing", "split_seq"]

#: Passing numbers per file in a read's ``seq`` (see the module doc): far more than any
#: decoder file holds.
FILE_SPAN = 10_000_000


def file_seq(file: int, number: int) -> int:
    """The ``seq`` of passing ``number`` of decoder file ``file`` (files count from 1)."""
    return (max(file, 1) - 1) * FILE_SPAN + number


def split_seq(seq: int) -> tuple[int, int]:
    """``(file, number)`` of a ``seq`` made by :func:`file_seq`."""
    block, number = divmod(seq, FILE_SPAN)
    if number == 0:  # the last number of a block belongs to it, not to the next file
        block, number = block - 1, FILE_SPAN
    return block + 1, number


_DATE_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_RESPONSE_RE = re.compile(r"^[A-Z][A-Z0-9_]*(;.*)?$")


class RaceResultProtocol(DecoderProtocol):
    """Sans-I/O client side of the RACE RESULT decoder protocol."""

    name: ClassVar[str] = "raceresult"
    default_port: ClassVar[int] = 3601
    supports_refetch: ClassVar[bool] = True
    protocol_version: ClassVar[str] = "2.0"
    #: Reads' ``seq`` carries the decoder file (see :func:`file_seq`).
    file_span: ClassVar[int] = FILE_SPAN

    def __init__(
        self,
        *,
        source_id: str,
        tz: ZoneInfo,
        date: dt.date | None = None,
        min_year: int = 2010,
        max_year: int = 2099,
        fetch_chunk: int = 500,
        fetch_all_on_connect: bool = True,
        marker_prefix: str | None = "99999",
    ) -> None:
        super().__init__(
            source_id=source_id, tz=tz, date=date, min_year=min_year, max_year=max_year
        )
        self.fetch_chunk = fetch_chunk
        self.fetch_all_on_connect = fetch_all_on_connect
        self.marker_prefix = marker_prefix
        self._connected = False
        #: Highest passing number known to be received or stored (0: fetch all), in file
        #: ``_highest_file`` (None: whichever file the decoder is on).
        self._highest: int | None = 0 if fetch_all_on_connect else None
        self._highest_file: int | None = None
        #: Passing count and file number from the last ``PASSINGS`` answer.
        self.decoder_count: int | None = None
        self.file_number: str | None = None
        #: The decoder's current file, as far as known (from answers and records).
        self._file: int | None = None
        #: Passings below the resume point never handled: (file, first, last), fetched
        #: once the decoder's count is known.
        self._missing: list[tuple[int, int, int]] = []

    # -- commands -------------------------------------------------------------

    def connection_made(self) -> None:
        """Queue protocol selection, push enabling and the passing-count query."""
        self._connected = True
        self._send(f"SETPROTOCOL;{self.protocol_version}")
        self._send("SETPUSHPASSINGS;1;0")
        self._send("PASSINGS")

    def resume_from(self, seq: int | None, missing: Sequence[tuple[int, int]] = ()) -> None:
        """Resume after passing ``seq`` (the decoder's own numbering, see :func:`file_seq`)
        and fetch the ``missing`` ranges below it; both once the count is known.

        Called after ``connection_made`` it queues a fresh ``PASSINGS`` query so
        the missing range is requested when the answer arrives.
        """
        super().resume_from(seq)
        if seq is not None:
            file, number = split_seq(seq)
            mine = (self._highest_file or 1, self._highest or 0)
            if self._highest is None or (file, number) > mine:
                self._highest_file, self._highest = file, number
        for first, last in missing:
            (file, lo), (_, hi) = split_seq(first), split_seq(last)
            self._missing.append((file, lo, hi))
        if self._connected:
            self._send("PASSINGS")

    def keepalive(self) -> None:
        """Queue ``PING`` (answered by the decoder; keeps NAT/firewalls open)."""
        self._send("PING")

    def fetch_range(self, first: int, last: int) -> None:
        """Queue requests for passings ``first..last`` (inclusive), chunked."""
        if last < first:
            return
        self.refetch_requests += 1
        start = first
        while start <= last:
            count = min(self.fetch_chunk, last - start + 1)
            self._send(f"{start}:{count}")
            start += count

    # -- input ----------------------------------------------------------------

    def _handle_message(self, text: str) -> None:
        line = text.strip()
        if line.startswith("#P;"):
            self._passing(line[3:], line, pushed=True)
        elif line[:1].isdigit():
            self._passing(line, line, pushed=False)
        elif line.startswith("PASSINGS;"):
            self._passings_count(line)
        elif line.startswith("#") or line.startswith("ONLY") or _RESPONSE_RE.match(line):
            # Other pushed messages (pre-warnings, status) and command answers.
            return
        else:
            self._error("unrecognised line", text)

    def _passings_count(self, line: str) -> None:
        parts = line.split(";")
        try:
            count = int(parts[1])
        except (IndexError, ValueError):
            self._error("bad PASSINGS answer", line)
            return
        self.decoder_count = count
        if len(parts) > 2 and parts[2].strip():
            self.file_number = parts[2].strip()
            if self.file_number.isdigit():
                self._file = int(self.file_number)
        file = self._file or 1
        if self._highest is None:
            # Not asked to fetch history: start from the decoder's current count.
            self._highest_file, self._highest = file, count
            return
        self._enter_file(file)
        missing, self._missing = self._missing, []
        for in_file, lo, hi in missing:
            if in_file == file and self._highest_file == file:
                self.fetch_range(lo, min(hi, count))
        first = self._highest + 1
        if count >= first:
            self.fetch_range(first, count)
            self._highest = count

    def _enter_file(self, file: int) -> None:
        """The decoder is on ``file``: what is known stored of another file says nothing
        about this one, so its passings are wanted from the first."""
        if self._highest is not None and self._highest_file not in (None, file):
            self._highest = 0
        if self._highest is not None:
            self._highest_file = file

    def _passing(self, record: str, raw: str, *, pushed: bool) -> None:
        fields = record.split(";")
        if len(fields) < 4:
            self._error("passing record too short", raw)
            return
        try:
            seq = int(fields[0])
        except ValueError:
            self._error("bad passing number", raw)
            return
        chip = fields[1].strip()
        if not chip:
            self._error("empty transponder code", raw)
            return
        flags: list[str] = []
        m = _DATE_RE.match(fields[2].strip())
        if m is None:
            self._error("bad date", raw)
            return
        year, month, day = int(m.group(1)), int(m.group(2)), int(m.group(3))
        try:
            hms = parse_hms(fields[3])
            if year == 0:
                # No real date: the decoder counts days since its clock started.
                flags.append(CLOCK_UNSET)
                date = self._fallback_date() + dt.timedelta(days=day)
            else:
                date = dt.date(year, month, day)
                if not self._year_ok(year):
                    flags.append(CLOCK_UNSET)
            time_ms = self._epoch_ms(date, hms)
        except (ValueError, OverflowError) as exc:
            self._error(f"bad date/time: {exc}", raw)
            return
        loop: str | None = None
        if len(fields) > 10:
            loop = fields[10].strip() or fields[9].strip() or None
        source = self.source_id
        if len(fields) > 16 and fields[16].strip():
            source = fields[16].strip()
        elif len(fields) > 19 and fields[19].strip():
            source = fields[19].strip()
        if not pushed:
            flags.append(BACKLOG)  # an answer to a fetch: a passing of the past
        kind = "read"
        if self.marker_prefix and chip.startswith(self.marker_prefix):
            kind, chip = "gun", ""
            flags.append("marker")
        file = self._file or 1
        if len(fields) > 17 and fields[17].strip().isdigit():
            file = int(fields[17])
            if pushed:
                self._file = file  # a new file started on the decoder: numbers restart
        if pushed:
            self._enter_file(file)
        if pushed and self._highest is not None and seq > self._highest + 1:
            self.gaps.append((file_seq(file, self._highest + 1), file_seq(file, seq - 1)))
            self.fetch_range(self._highest + 1, seq - 1)
        if self._highest is not None and self._highest_file in (None, file) and seq > self._highest:
            self._highest_file, self._highest = file, seq
        seq = file_seq(file, seq)
        self._note_seq(seq)
        self._emit(
            DecodedRead(
                chip=chip,
                time_ms=time_ms,
                seq=seq,
                source=source,
                loop=loop,
                kind=kind,
                flags=tuple(flags),
                raw=raw,
            )
        )


def format_passing(
    seq: int,
    chip: str,
    local: dt.datetime,
    *,
    box_name: str = "",
    loop: str | None = None,
    file_number: int = 1,
    clock_unset: bool = False,
) -> str:
    """Format a passing record (protocol 2.0 layout, 20 fields) without prefix.

    Used by the simulator and by tests.  ``local`` is the decoder's wall time;
    with ``clock_unset`` the date is written as ``0000-00-00``.
    """
    date = "0000-00-00" if clock_unset else local.strftime("%Y-%m-%d")
    time = local.strftime("%H:%M:%S.") + f"{local.microsecond // 1000:03d}"
    fields = [
        str(seq),
        chip,
        date,
        time,
        "",  # event id
        "1F",  # hits (hex)
        "5A",  # max RSSI (hex)
        "",  # internal data
        "0",  # is active
        "1",  # channel
        loop or "",
        "0",  # loop only
        "",  # wake-up counter
        "",  # battery
        "",  # temperature
        "",  # internal active data
        box_name,
        str(file_number),
        "",  # max RSSI antenna
        box_name,
    ]
    return ";".join(fields)
