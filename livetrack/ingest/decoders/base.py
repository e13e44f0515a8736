"""Common types and the line-buffering core shared by every decoder protocol.

Every protocol is a *sans-I/O* state machine: it never touches a socket or a
clock.  The owner feeds it the bytes it received (:meth:`DecoderProtocol.receive_data`)
and afterwards drains three queues:

* :meth:`DecoderProtocol.reads_received` -- decoded passings, in arrival order;
* :meth:`DecoderProtocol.errors_received` -- malformed input (the stream goes on);
* :meth:`DecoderProtocol.data_to_send` -- bytes (commands, acknowledgements) that
  the owner must write to the peer.

Times sent by decoders are wall-clock times of the decoder's own clock, in the
decoder's local time zone.  They are converted to UTC epoch milliseconds with
the ``tz`` given to the parser; no clock offset is applied here.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar
from zoneinfo import ZoneInfo

__all__ = [
    "BACKLOG",
    "CLOCK_UNSET",
    "DecodeError",
    "DecodedRead",
    "DecoderProtocol",
    "local_to_epoch_ms",
    "parse_hms",
]

#: Flag put on reads whose decoder clock was evidently never set.
CLOCK_UNSET = "clock_unset"
#: Flag put on reads that were not delivered live: fetched again, resent, replayed from the
#: decoder's memory, or already waiting in the socket when it was read. Their delay says
#: nothing about the decoder's clock, so the clock estimate leaves them out.
BACKLOG = "backlog"
FIRST_SEEN = "first_seen"
LAST_SEEN = "last_seen"

_UTC = dt.UTC


@dataclass(frozen=True, slots=True)
class DecodedRead:
    """One passing as reported by a decoder.

    ``time_ms`` is UTC epoch milliseconds (decoder local time converted with the
    parser's ``tz``; no clock offset applied).  ``seq`` is the source's own
    passing / sequence number where the protocol has one.  ``source`` is the
    reader/box/device id from the protocol, else the configured id.
    """

    chip: str
    time_ms: int
    seq: int | None
    source: str
    loop: str | None = None
    kind: str = "read"
    flags: tuple[str, ...] = ()
    raw: str = ""
    #: Antennas that saw the chip, where the protocol says (MYLAPS ``an``).
    antennas: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class DecodeError:
    """A line (or message) that could not be decoded; the stream continues."""

    reason: str
    raw: str


def local_to_epoch_ms(
    date: dt.date,
    hour: int,
    minute: int,
    second: int,
    millis: int,
    tz: ZoneInfo,
) -> int:
    """Convert a wall-clock time in ``tz`` to UTC epoch milliseconds.

    Ambiguous times (the repeated hour when DST ends) resolve to the first
    occurrence; non-existent times (the skipped hour) are shifted forward the
    way :mod:`zoneinfo` does.  Raises ``ValueError`` for impossible fields.
    """
    local = dt.datetime(date.year, date.month, date.day, hour, minute, second, tzinfo=tz)
    seconds = int(local.astimezone(_UTC).timestamp())
    return seconds * 1000 + millis


_HMS_RE = re.compile(r"^(\d{1,2}):(\d{2}):(\d{2})(?:[.,](\d{1,9}))?$")


def parse_hms(text: str) -> tuple[int, int, int, int]:
    """Parse ``H:MM:SS`` with an optional decimal fraction into (h, m, s, ms).

    The fraction is truncated to milliseconds (``.31`` -> 310 ms, ``.4321`` ->
    432 ms).  Raises ``ValueError`` when the text is not a valid time of day.
    """
    m = _HMS_RE.match(text.strip())
    if m is None:
        raise ValueError(f"bad time of day {text!r}")
    hour, minute, second = int(m.group(1)), int(m.group(2)), int(m.group(3))
    frac = m.group(4) or ""
    millis = int((frac + "000")[:3])
    if hour > 23 or minute > 59 or second > 59:
        raise ValueError(f"time of day out of range {text!r}")
    return hour, minute, second, millis


class DecoderProtocol:
    """Base class: byte buffering, line splitting and the three output queues.

    Subclasses implement :meth:`_handle_message` for one complete message (a line
    without its terminator, already decoded to ``str``).  The contract that all
    protocols share:

    * ``receive_data`` accepts any split of the byte stream (down to single
      bytes); CRLF and LF terminators are both accepted.
    * A message longer than ``max_message`` bytes without a terminator is
      discarded with a :class:`DecodeError` (garbage protection).
    * ``receive_eof`` reports a partial trailing message as truncated.
    * ``resume_from(seq)`` records the last *stored* sequence number; protocols
      that can fetch missed passings queue the request in ``data_to_send``.
    """

    name: ClassVar[str] = ""
    default_port: ClassVar[int] = 0
    #: Whether the protocol can ask the decoder again for passings it missed.
    supports_refetch: ClassVar[bool] = False
    #: Byte that ends one message.
    terminator: ClassVar[bytes] = b"\n"
    max_message: ClassVar[int] = 8192

    def __init__(
        self,
        *,
        source_id: str,
        tz: ZoneInfo,
        date: dt.date | None = None,
        min_year: int = 2010,
        max_year: int = 2099,
    ) -> None:
        self.source_id = source_id
        self.tz = tz
        self.date = date
        self.min_year = min_year
        self.max_year = max_year
        self._buffer = bytearray()
        self._reads: list[DecodedRead] = []
        self._errors: list[DecodeError] = []
        self._out = bytearray()
        #: Highest sequence number seen on this connection (or given to resume_from).
        self.last_seq: int | None = None
        #: Number of re-fetch requests this parser queued.
        self.refetch_requests = 0
        #: Sequence gaps seen, as inclusive (first_missing, last_missing) ranges.
        self.gaps: list[tuple[int, int]] = []
        #: Gaps whose every number arrived since the owner last collected this count.
        self.gaps_filled = 0
        #: Gaps given up on (still missing after every request), collected like ``gaps``.
        self.gaps_abandoned: list[tuple[int, int]] = []
        #: Call :meth:`tick` at least this often (seconds); ``None``: the protocol waits
        #: for nothing.
        self.wake_s: float | None = None
        #: True once any read carried the clock-unset flag.
        self.clock_unset_seen = False
        self._closed = False

    # -- public sans-I/O interface -------------------------------------------

    def connection_made(self) -> None:
        """Queue whatever the protocol sends right after the TCP connection opens."""

    def resume_from(self, seq: int | None, missing: Sequence[tuple[int, int]] = ()) -> None:
        """Record ``seq`` as the last sequence number handled (``None``: nothing yet).

        ``missing`` lists inclusive ranges below ``seq`` that were never handled; protocols
        that can fetch passings ask for them (the others cannot and ignore them)."""
        if seq is not None and (self.last_seq is None or seq > self.last_seq):
            self.last_seq = seq

    def keepalive(self) -> None:
        """Queue a protocol-level ping, where the protocol has one."""

    def tick(self, now: float) -> None:
        """Let the protocol act on time passing (``now``: a monotonic clock, seconds); the
        owner calls it every :attr:`wake_s` and after each batch, then sends
        :meth:`data_to_send`."""

    def open_gaps(self) -> list[tuple[int, int]]:
        """Inclusive ranges still missing on this connection that the protocol would ask
        for again (handed to the next connection's :meth:`resume_from` as ``missing``)."""
        return []

    def receive_data(self, data: bytes) -> None:
        """Feed received bytes; complete messages are decoded immediately."""
        if self._closed:
            return
        self._buffer += data
        term = self.terminator
        while True:
            idx = self._buffer.find(term)
            if idx < 0:
                break
            chunk = bytes(self._buffer[:idx])
            del self._buffer[: idx + len(term)]
            self._feed_chunk(chunk)
        if len(self._buffer) > self.max_message:
            raw = self._decode(bytes(self._buffer[:200]))
            self._buffer.clear()
            self._error("message too long without terminator (garbage?)", raw)

    def receive_eof(self) -> None:
        """Signal the end of the stream; a partial trailing message is an error."""
        if self._closed:
            return
        self._closed = True
        rest = bytes(self._buffer).strip(b"\r\n\x00 \t")
        self._buffer.clear()
        if rest:
            self._eof_remainder(self._decode(rest))

    def reads_received(self) -> list[DecodedRead]:
        """Return and forget the reads decoded so far."""
        reads, self._reads = self._reads, []
        return reads

    def errors_received(self) -> list[DecodeError]:
        """Return and forget the decode errors collected so far."""
        errors, self._errors = self._errors, []
        return errors

    def data_to_send(self) -> bytes:
        """Return and forget the bytes the owner must write to the peer."""
        out = bytes(self._out)
        self._out.clear()
        return out

    # -- helpers for subclasses ---------------------------------------------

    def _feed_chunk(self, chunk: bytes) -> None:
        text = self._decode(chunk).strip("\r\n\x00")
        if text.strip() == "" and not self._keep_empty():
            return
        self._handle_message(text)

    def _keep_empty(self) -> bool:
        return False

    def _eof_remainder(self, text: str) -> None:
        self._error("truncated message at end of stream", text)

    @staticmethod
    def _decode(chunk: bytes) -> str:
        try:
            return chunk.decode("utf-8")
        except UnicodeDecodeError:
            return chunk.decode("latin-1")

    def _handle_message(self, text: str) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _send(self, text: str, eol: str = "\r\n") -> None:
        self._out += (text + eol).encode("latin-1", errors="replace")

    def _error(self, reason: str, raw: str) -> None:
        self._errors.append(DecodeError(reason=reason, raw=raw))

    def _emit(self, read: DecodedRead) -> None:
        if CLOCK_UNSET in read.flags:
            self.clock_unset_seen = True
        self._reads.append(read)

    def _note_seq(self, seq: int) -> None:
        if self.last_seq is None or seq > self.last_seq:
            self.last_seq = seq

    def _year_ok(self, year: int) -> bool:
        return self.min_year <= year <= self.max_year

    def _epoch_ms(self, date: dt.date, hms: tuple[int, int, int, int]) -> int:
        h, m, s, ms = hms
        return local_to_epoch_ms(date, h, m, s, ms, self.tz)

    def _fallback_date(self) -> dt.date:
        """Date used when the decoder gives none and its clock is unset."""
        return self.date if self.date is not None else dt.date(1970, 1, 1)
