"""ChronoTrack socket protocol CTP01 (commonly TCP 61611).

Lines end with CRLF, fields are separated by ``~``.  In the field the scoring software
listens (on 61611) and the controller connects to it, so a ``ctp01`` reader listens unless
configured otherwise; the session is the same whichever side opened the connection:

1. The peer (the ChronoTrack controller or the client program that relays it)
   greets first with a line whose fields contain ``CTP01``, for example
   ``SimpleClient~0.5.0~CTP01``.
2. We answer ``<name>~<version>~<n>`` followed by ``n`` ``key=value`` settings:
   ``stream-mode=push``, ``time-format=iso`` and ``pushmode-ack=true``, then start the
   stream.  With nothing stored yet that is a plain ``start`` (or ``start~<location>`` per
   configured location): the controller sends every line it holds, from its first.  When
   lines are stored it resumes instead: ``start~<location>~<n>`` plays a location's lines
   from sequence number ``n``, inclusive, so we ask for the line after the last one stored,
   for the configured locations or else for those ``getlocations`` names
   (``ack~getlocations~<location>~...``).
3. Tag observations arrive as
   ``CT01_33~<seq>~<location>~<tag>~<time>~<lap>~<reader id>~<gator/antenna>``
   (``CT01_13`` has the same field order, and is also seen comma-separated:
   ``CT01_13,24,START,50101,15:54:48.90,1,117F37,8``).  The tag ``guntime`` marks a gun
   time (a :class:`DecodedRead` with ``kind="gun"`` and an empty chip); the tag
   ``newlocation`` announces a location, which we start as well when we started
   locations by name.
4. ``ping`` is answered with ``ack~ping``; ``ack~...`` lines are accepted
   silently; ``err~...`` lines are reported as decode errors.

The time field may be ISO (``2024-05-01T09:15:21.31``), a time of day
(``09:15:21.31``; needs the caller's ``date``), Unix seconds with a fraction
(``1714554921.31``, already UTC) or milliseconds since midnight.  ISO times and times of
day are on the parser's ``tz``: the event's time zone by default, or UTC for a controller
whose clock is on UTC (the reader's ``times`` setting).  A line numbered at or below the
resume point is a replay and is flagged :data:`~livetrack.ingest.decoders.base.BACKLOG`.

Sequence gaps are recorded in ``gaps`` and fetched again: lines of one location may arrive
out of order, so a gap gets ``gap_grace_s`` (counted from the first :meth:`tick` after it was
seen) to fill by itself; then the stream is stopped and started again from the first missing
number (``stop``, then ``start~<location>~<first missing>`` for the gap's location, and
``start~<location>~<n + 1>`` for any other location started by name).  Everything after that
number is played again; the log's keys store none of it twice.  A gap still missing
``retry_after_s`` after a request is asked for again, at most :data:`MAX_REQUESTS` times.
Gaps are only fetched on a connection that carries one location's lines (a reader is one
location); with several, their numbers are not one sequence and the gaps are given up.
``gaps_filled`` counts the gaps whose every line arrived, whether late or replayed.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar
from zoneinfo import ZoneInfo

from .base import BACKLOG, CLOCK_UNSET, DecodedRead, DecoderProtocol, parse_hms

__all__ = ["Ctp01Protocol", "format_tag_line"]

_ISO_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[T ](\d{1,2}:\d{2}:\d{2}(?:\.\d+)?)$")
_UNIX_RE = re.compile(r"^\d{9,11}\.\d+$")
_MSECS_RE = re.compile(r"^\d{1,8}$")

TAG_FORMATS = ("CT01_33", "CT01_13")
GUN_TAG = "guntime"
#: A gap is asked for at most this many times on one connection, then given up on.
MAX_REQUESTS = 3


@dataclass
class _Gap:
    """Numbers missing on this connection, seen in one location's stream."""

    first: int
    last: int
    location: str | None
    missing: set[int] = field(default_factory=set)
    seen_at: float | None = None
    asked_at: float | None = None
    requests: int = 0


class Ctp01Protocol(DecoderProtocol):
    """Sans-I/O receiving side of CTP01 (push mode)."""

    name: ClassVar[str] = "ctp01"
    default_port: ClassVar[int] = 61611
    supports_refetch: ClassVar[bool] = False

    def __init__(
        self,
        *,
        source_id: str,
        tz: ZoneInfo,
        date: dt.date | None = None,
        min_year: int = 2010,
        max_year: int = 2099,
        client_name: str = "livetrack",
        client_version: str = "1.0",
        locations: Sequence[str] = (),
        time_format: str = "iso",
        gap_grace_s: float = 2.0,
        retry_after_s: float = 10.0,
    ) -> None:
        super().__init__(
            source_id=source_id, tz=tz, date=date, min_year=min_year, max_year=max_year
        )
        self.client_name = client_name
        self.client_version = client_version
        self.locations = tuple(locations)
        self.time_format = time_format
        self.greeted = False
        self.started = False
        self.peer_name: str | None = None
        #: Locations started by name on this connection.
        self.started_locations: set[str] = set()
        #: The resume point given (lines at or below it are replays).
        self._resumed_at: int | None = None
        self.gap_grace_s = gap_grace_s
        self.retry_after_s = retry_after_s
        self.wake_s = max(0.05, gap_grace_s / 4)
        self._open: list[_Gap] = []
        #: Locations whose tag lines arrived on this connection.
        self._locations_seen: set[str] = set()
        #: First number to start from at the greeting when it is below ``last_seq + 1``
        #: (numbers a previous connection missed).
        self._start_at: int | None = None

    def resume_from(self, seq: int | None, missing: Sequence[tuple[int, int]] = ()) -> None:
        """Resume after ``seq``; ``missing`` (ranges a previous connection saw missing and
        never got) are started from instead, and fetched again if this replay loses them."""
        super().resume_from(seq, missing)
        self._resumed_at = self.last_seq
        for first, last in missing:
            if first <= last:
                gap = _Gap(first, last, None, set(range(first, last + 1)), requests=1)
                self._open.append(gap)
                self._start_at = first if self._start_at is None else min(self._start_at, first)

    def open_gaps(self) -> list[tuple[int, int]]:
        out: list[tuple[int, int]] = []
        for gap in self._open:
            if gap.requests < MAX_REQUESTS:
                out.append((min(gap.missing), max(gap.missing)))
        return out

    def tick(self, now: float) -> None:
        """Ask again for the gaps that did not fill within the grace (see the module doc)."""
        due: list[_Gap] = []
        for gap in self._open:
            if gap.seen_at is None:
                gap.seen_at = now
            if gap.asked_at is None:
                if now - gap.seen_at >= self.gap_grace_s:
                    due.append(gap)
            elif now - gap.asked_at >= self.retry_after_s:
                due.append(gap)
        if not due or not self.greeted:
            return
        if len(self._locations_seen) > 1:
            # several locations' lines on one connection: their numbers are not one sequence,
            # and stopping the stream for one would stop the others
            for gap in due:
                self._open.remove(gap)
                self.gaps_abandoned.append((min(gap.missing), max(gap.missing)))
            return
        for gap in due:
            if gap.requests >= MAX_REQUESTS:
                self._open.remove(gap)
                self.gaps_abandoned.append((min(gap.missing), max(gap.missing)))
        due = [gap for gap in due if gap in self._open]
        if not due:
            return
        fallback = sorted(self.started_locations) or list(self.locations)
        starts: dict[str, int] = {}
        for gap in due:
            where = [gap.location] if gap.location else fallback
            for location in where:
                first = min(gap.missing)
                starts[location] = min(starts.get(location, first), first)
            gap.asked_at = now
            gap.requests += 1
        if not starts:
            return
        self._send("stop")
        after = None if self.last_seq is None else self.last_seq + 1
        for location in sorted(set(self.started_locations) | set(starts)):
            begin = starts.get(location, after)
            self._send(f"start~{location}" if begin is None else f"start~{location}~{begin}")
        self.started_locations.update(starts)
        self._resumed_at = self.last_seq
        self.refetch_requests += 1

    def _track_seq(self, seq: int, location: str | None) -> None:
        """Note that line ``seq`` arrived: it may fill a gap, or open one."""
        for gap in list(self._open):
            if seq in gap.missing:
                gap.missing.discard(seq)
                if gap.location is None:
                    gap.location = location
                if not gap.missing:
                    self._open.remove(gap)
                    self.gaps_filled += 1
        if self.last_seq is not None and seq > self.last_seq + 1:
            first, last = self.last_seq + 1, seq - 1
            self.gaps.append((first, last))
            self._open.append(_Gap(first, last, location, set(range(first, last + 1))))
        self._note_seq(seq)

    def keepalive(self) -> None:
        """Queue ``ping`` (the peer answers ``ack~ping``)."""
        self._send("ping")

    def _handle_message(self, text: str) -> None:
        line = text.strip()
        parts = line.split("~")
        head = parts[0]
        if head in TAG_FORMATS:
            self._tag_line(parts, line)
        elif "~" not in line and line.split(",", 1)[0].strip() in TAG_FORMATS:
            # the comma-separated form of the same line: CT01_13,24,START,50101,15:54:48.90,...
            self._tag_line([f.strip() for f in line.split(",")], line)
        elif not self.greeted and "CTP01" in parts[1:]:
            self._greeting(parts)
        elif head == "ack":
            if len(parts) > 1 and parts[1] == "start":
                self.started = True
            elif len(parts) > 1 and parts[1] == "getlocations":
                self._start_locations([p.strip() for p in parts[2:] if p.strip()])
        elif head == "ping":
            self._send("ack~ping")
        elif head == "err":
            self._error("peer reported an error", line)
        elif len(parts) == 1 and "=" in line:
            return  # a setting line from the peer's own greeting block
        elif len(parts) == 3 and parts[2].isdigit():
            return  # the peer's greeting answer: name~version~number of settings
        else:
            self._error("unrecognised line", text)

    def _greeting(self, parts: list[str]) -> None:
        self.greeted = True
        self.peer_name = parts[0]
        settings = [
            "stream-mode=push",
            f"time-format={self.time_format}",
            "pushmode-ack=true",
        ]
        self._send(f"{self.client_name}~{self.client_version}~{len(settings)}")
        for setting in settings:
            self._send(setting)
        if self.locations:
            self._start_locations(list(self.locations))
        elif self.last_seq is None and self._start_at is None:
            # nothing stored yet: everything the controller holds, from its first line
            self._send("start")
        else:
            self._send("getlocations")  # resume each location: see _start_locations

    def _start_locations(self, locations: list[str]) -> None:
        """Start ``locations`` from the line after the last one stored (``start~<location>~<n>``
        plays the controller's lines from ``n``, inclusive); without any, a plain ``start``."""
        if not locations:
            self._send("start")
            return
        # one command per location: start~<a>~<b> could be read as location a from line b
        self.started_locations.update(locations)
        first = None if self.last_seq is None else self.last_seq + 1
        if self._start_at is not None:
            first = self._start_at if first is None else min(first, self._start_at)
        after = "" if first is None else f"~{first}"
        for location in locations:
            self._send(f"start~{location}{after}")

    def _tag_line(self, parts: list[str], raw: str) -> None:
        if len(parts) < 5:
            self._error("tag line too short", raw)
            return
        try:
            seq = int(parts[1])
        except ValueError:
            self._error("bad sequence number", raw)
            return
        location = parts[2].strip() or None
        tag = parts[3].strip()
        # every numbered line counts as arrived, even one not kept (an announcement, an error)
        replay = self._resumed_at is not None and seq <= self._resumed_at
        self._track_seq(seq, location)
        if tag == "newlocation":
            # a location started by name does not cover one that joins later
            if location and self.started_locations and location not in self.started_locations:
                self.started_locations.add(location)
                self._send(f"start~{location}")
            return
        if location:
            self._locations_seen.add(location)
        if not tag:
            self._error("empty tag", raw)
            return
        try:
            time_ms, flags = self._parse_time(parts[4].strip())
        except ValueError as exc:
            self._error(str(exc), raw)
            return
        reader = parts[6].strip() if len(parts) > 6 else ""
        kind = "read"
        chip = tag
        if tag.lower() == GUN_TAG:
            kind, chip = "gun", ""
        if replay:
            flags = (*flags, BACKLOG)
        self._emit(
            DecodedRead(
                chip=chip,
                time_ms=time_ms,
                seq=seq,
                source=reader or self.source_id,
                loop=location,
                kind=kind,
                flags=flags,
                raw=raw,
            )
        )

    def _parse_time(self, text: str) -> tuple[int, tuple[str, ...]]:
        m = _ISO_RE.match(text)
        if m is not None:
            year, month, day = int(m.group(1)), int(m.group(2)), int(m.group(3))
            if year == 0 or month == 0 or day == 0:
                return (
                    self._epoch_ms(self._fallback_date(), parse_hms(m.group(4))),
                    (CLOCK_UNSET,),
                )
            date = dt.date(year, month, day)
            flags = () if self._year_ok(year) else (CLOCK_UNSET,)
            return self._epoch_ms(date, parse_hms(m.group(4))), flags
        if _UNIX_RE.match(text):
            seconds, _, frac = text.partition(".")
            ms = int(seconds) * 1000 + int((frac + "000")[:3])
            year = dt.datetime.fromtimestamp(int(seconds), dt.UTC).year
            return ms, (() if self._year_ok(year) else (CLOCK_UNSET,))
        if ":" in text:
            hms = parse_hms(text)
            if self.date is None:
                raise ValueError("time of day without a date (configure the race date)")
            return self._epoch_ms(self.date, hms), ()
        if _MSECS_RE.match(text):
            msecs = int(text)
            if self.date is None:
                raise ValueError("time of day without a date (configure the race date)")
            if msecs >= 86_400_000:
                raise ValueError("milliseconds since midnight out of range")
            hms = (msecs // 3_600_000, msecs // 60_000 % 60, msecs // 1000 % 60, msecs % 1000)
            return self._epoch_ms(self.date, hms), ()
        raise ValueError(f"bad time {text!r}")


def format_tag_line(
    seq: int,
    location: str,
    tag: str,
    local: dt.datetime,
    *,
    reader_id: str,
    lap: int = 0,
    antenna: str = "0",
    time_format: str = "iso",
) -> str:
    """Format one ``CT01_33`` line (without CRLF); used by the simulator and tests.

    The time is written with hundredths, ``iso`` or ``normal`` (time of day).
    """
    hundredths = local.microsecond // 10_000
    tod = local.strftime("%H:%M:%S") + f".{hundredths:02d}"
    time = local.strftime("%Y-%m-%dT") + tod if time_format == "iso" else tod
    return "~".join(("CT01_33", str(seq), location, tag, time, str(lap), reader_id, antenna))
