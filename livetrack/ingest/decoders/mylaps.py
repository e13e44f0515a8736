"""MYLAPS TCP/IP protocol (Timing & Scoring software exporting passings).

Each message ends with ``$``; inside, fields are separated by ``@`` and a
message normally ends with ``@$``.  Field 0 is the sender's name (the location,
for example ``10KM``), field 1 is the function.  The sending software usually
connects to us (listening mode), but the exchange is the same either way.

Handled functions:

* ``Ping`` / ``Pong`` -- answered with ``AckPing`` / ``AckPong``.  ``AckPong`` names the
  passing fields wanted (``AckPong@Version2.1@c|t|d|l|dv|re|an``), so that the exporter
  sends the date with every passing.
* ``Passing`` -- ``<loc>@Passing@<record>@<record>...@<message number>@$``;
  each record is ``|``-separated ``key=value`` pairs (``c`` chip, ``t`` time
  ``HH:MM:SS.fff``, ``d`` date ``yyMMdd``, ``l`` lap, ``dv`` device, ``re``
  reader, ``an`` antennas, ...).  Answered with ``<us>@AckPassing@<number>@$``.
  The sender keeps a message until it is acknowledged and sends it again after
  a reconnect, so the acknowledgement must only go out after the reads are
  stored: the connector writes ``data_to_send`` after its ``on_reads`` returned.
* ``Marker`` -- records with ``mt`` (type), ``t`` and ``n``; a gunshot marker
  becomes a ``kind="gun"`` read.  Answered with ``AckMarker``.
* ``Store`` -- stored passings in the older fixed-width record
  ``<chip:7><HH:MM:SS.fff><device, reader, lap...><counter:4 hex><yyMMdd><check:2>``;
  the 4-hex passing counter is the read's ``seq``.  Answered with ``AckStore``.

``Passing`` records carry no per-passing number: their ``seq`` is ``None`` and the log
keys them by (reader, chip, time).  ``source`` is the sender's location name, ``loop`` the
device (``dv``).  ``an`` is a bit mask of the antennas that saw the chip (``00001101``:
antennas 1, 3 and 4), decoded into ``antennas``; older exporters send a plain number.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import ClassVar
from zoneinfo import ZoneInfo

from .base import BACKLOG, CLOCK_UNSET, DecodedRead, DecoderProtocol, parse_hms

__all__ = [
    "PASSING_FIELDS",
    "MylapsProtocol",
    "antenna_list",
    "format_marker_record",
    "format_passing_record",
    "format_store_record",
]

_STORE_RE = re.compile(
    r"^(.{7})(\d{2}:\d{2}:\d{2}\.\d{3})(.*?)([0-9A-Fa-f]{4})(\d{6})([0-9A-Fa-f]{2})$"
)
#: The passing fields asked for in ``AckPong`` (chip, time, date, lap, device, reader,
#: antennas): without a field list the exporter may leave the date out.
PASSING_FIELDS = ("c", "t", "d", "l", "dv", "re", "an")
_BITMASK_RE = re.compile(r"^[01]{2,}$")
_INFO_FUNCTIONS = {
    "AckPing",
    "AckPong",
    "AckGetInfo",
    "GetInfo",
    "GetLocations",
    "AckGetLocations",
    "AckStore",
    "AckPassing",
    "AckMarker",
}


class MylapsProtocol(DecoderProtocol):
    """Sans-I/O receiving side of the MYLAPS TCP/IP exporter protocol."""

    name: ClassVar[str] = "mylaps"
    #: No fixed port: the exporting software is configured with ours.
    default_port: ClassVar[int] = 0
    supports_refetch: ClassVar[bool] = False
    terminator: ClassVar[bytes] = b"$"

    def __init__(
        self,
        *,
        source_id: str,
        tz: ZoneInfo,
        date: dt.date | None = None,
        min_year: int = 2010,
        max_year: int = 2099,
        server_name: str = "livetrack",
    ) -> None:
        super().__init__(
            source_id=source_id, tz=tz, date=date, min_year=min_year, max_year=max_year
        )
        self.server_name = server_name
        #: Message numbers acknowledged on this connection, in order.
        self.acked: list[int] = []
        #: Highest stored-passing counter per location (with its wrap-arounds).
        self._store_seq: dict[str, int] = {}

    def keepalive(self) -> None:
        """Queue ``<us>@Ping@$``."""
        self._reply("Ping")

    def _reply(self, *fields: str) -> None:
        self._send("@".join((self.server_name, *fields)) + "@", eol="$")

    def _eof_remainder(self, text: str) -> None:
        self._error("truncated message at end of stream (no '$')", text)

    def _handle_message(self, text: str) -> None:
        message = text.strip("\r\n\x00 \t")
        if not message:
            return
        parts = message.split("@")
        if parts and parts[-1] == "":
            parts.pop()
        if len(parts) < 2:
            self._error("message without function", message)
            return
        sender, function = parts[0].strip(), parts[1].strip()
        body = parts[2:]
        if function == "Ping":
            self._reply("AckPing")
        elif function == "Pong":
            self._reply("AckPong", "Version2.1", "|".join(PASSING_FIELDS))
        elif function in ("Passing", "Marker", "Store"):
            self._records(sender, function, body, message)
        elif function in _INFO_FUNCTIONS:
            return
        else:
            self._error(f"unknown function {function!r}", message)

    def _records(self, sender: str, function: str, body: list[str], raw: str) -> None:
        if not body:
            self._error(f"{function} message without records", raw)
            return
        try:
            number = int(body[-1])
        except ValueError:
            # Without its number the message cannot be acknowledged; the sender
            # will send it again.
            self._error(f"{function} message without message number", raw)
            return
        source = sender or self.source_id
        for record in body[:-1]:
            if function == "Passing":
                self._passing(source, record)
            elif function == "Marker":
                self._marker(source, record)
            else:
                self._store(source, record)
        self.acked.append(number)
        self._reply(f"Ack{function}", str(number))

    @staticmethod
    def _pairs(record: str) -> dict[str, str]:
        pairs: dict[str, str] = {}
        for item in record.split("|"):
            key, sep, value = item.partition("=")
            if sep:
                pairs[key.strip()] = value.strip()
        return pairs

    def _time(self, clock: str, yymmdd: str | None) -> tuple[int, tuple[str, ...]]:
        hms = parse_hms(clock)
        if yymmdd is None or yymmdd == "":
            if self.date is None:
                raise ValueError("passing without a date (configure the race date)")
            return self._epoch_ms(self.date, hms), ()
        if len(yymmdd) != 6 or not yymmdd.isdigit():
            raise ValueError(f"bad date {yymmdd!r}")
        yy, mo, dd = int(yymmdd[:2]), int(yymmdd[2:4]), int(yymmdd[4:])
        if mo == 0 or dd == 0:
            return self._epoch_ms(self._fallback_date(), hms), (CLOCK_UNSET,)
        year = 2000 + yy
        flags = () if yy != 0 and self._year_ok(year) else (CLOCK_UNSET,)
        return self._epoch_ms(dt.date(year, mo, dd), hms), flags

    def _passing(self, source: str, record: str) -> None:
        pairs = self._pairs(record)
        chip = pairs.get("c", "").strip()
        clock = pairs.get("t")
        if not chip or not clock:
            self._error("passing record without chip or time", record)
            return
        try:
            time_ms, flags = self._time(clock, pairs.get("d"))
        except ValueError as exc:
            self._error(str(exc), record)
            return
        antennas = antenna_list(pairs.get("an", ""))
        self._emit(
            DecodedRead(
                chip=chip,
                time_ms=time_ms,
                seq=None,
                source=source,
                loop=pairs.get("dv") or None,
                kind="read",
                flags=flags,
                raw=record,
                antennas=antennas,
            )
        )

    def _marker(self, source: str, record: str) -> None:
        pairs = self._pairs(record)
        if "gun" not in pairs.get("mt", "").lower():
            return  # other marker types carry no timing for us
        clock = pairs.get("t")
        if not clock:
            self._error("marker without time", record)
            return
        try:
            time_ms, flags = self._time(clock, pairs.get("d"))
        except ValueError as exc:
            self._error(str(exc), record)
            return
        self._emit(
            DecodedRead(
                chip="",
                time_ms=time_ms,
                seq=None,
                source=source,
                loop=None,
                kind="gun",
                flags=flags,
                raw=record,
            )
        )

    def _store(self, source: str, record: str) -> None:
        m = _STORE_RE.match(record.strip())
        if m is None:
            self._error("bad stored passing record", record)
            return
        try:
            time_ms, flags = self._time(m.group(2), m.group(5))
        except ValueError as exc:
            self._error(str(exc), record)
            return
        counter = int(m.group(4), 16)
        # the counter has four hex digits: past 0xFFFF it starts again from 0
        last = self._store_seq.get(source)
        seq = counter if last is None else last - last % 0x10000 + counter
        if last is not None and seq < last - 0x8000:
            seq += 0x10000
        self._store_seq[source] = max(seq, last or 0)
        self._note_seq(seq)
        self._emit(
            DecodedRead(
                chip=m.group(1).strip(),
                time_ms=time_ms,
                seq=seq,
                source=source,
                kind="read",
                flags=(*flags, BACKLOG),
                raw=record,
            )
        )


def antenna_list(text: str) -> tuple[int, ...]:
    """The antennas named by a passing's ``an`` field: a bit mask such as ``00001101``
    (rightmost bit antenna 1; antennas 1, 3 and 4 here), or a plain antenna number."""
    text = text.strip()
    if _BITMASK_RE.match(text):
        return tuple(i + 1 for i, bit in enumerate(reversed(text)) if bit == "1")
    if text.isdigit() and int(text) > 0:
        return (int(text),)
    return ()


def format_passing_record(
    chip: str,
    local: dt.datetime,
    *,
    lap: int = 0,
    device: int = 1,
    antenna: str | None = None,
    extra: Mapping[str, str] | None = None,
) -> str:
    """Format one ``key=value|...`` passing record; used by the simulator and tests."""
    fields = {
        "t": local.strftime("%H:%M:%S.") + f"{local.microsecond // 1000:03d}",
        "c": chip,
        "ct": "UH",
        "d": local.strftime("%y%m%d"),
        "l": str(lap),
        "dv": str(device),
        "re": "0",
    }
    if antenna is not None:
        fields["an"] = antenna
    if extra:
        fields.update(extra)
    return "|".join(f"{k}={v}" for k, v in fields.items())


def format_marker_record(local: dt.datetime, name: str = "Gunshot 1") -> str:
    """Format a gunshot marker record; used by the simulator and tests."""
    clock = local.strftime("%H:%M:%S.") + f"{local.microsecond // 1000:03d}"
    return f"mt=Gunshot|t={clock}|d={local.strftime('%y%m%d')}|n={name}"


def format_store_record(chip: str, local: dt.datetime, counter: int, *, lap: int = 1) -> str:
    """Format one stored-passing record of a ``Store`` message (chip, time, device, reader,
    lap, 4-hex passing counter, ``yyMMdd`` date, check); used by the simulator and tests."""
    clock = local.strftime("%H:%M:%S.") + f"{local.microsecond // 1000:03d}"
    body = f"{chip[:7]:<7}{clock} 3 0F  {lap}{counter % 0x10000:04X}{local:%y%m%d}"
    return body + f"{sum(body.encode()) % 256:02X}"
