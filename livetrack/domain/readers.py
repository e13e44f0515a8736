"""Reader health, derived from the chip reads in the log: pure, fed one read at a time.

For each reader: its last read, how many reads it sent in the last minute, an estimate of its
clock offset, and whether it has gone quiet. Time comes in on the reads (``received_ms`` is
the server's clock when the read arrived; ``time_ms`` is the reader's own clock), and the
queries take ``now_ms`` from the caller, so nothing here reads a clock.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from livetrack.domain.records import ChipRead

#: A reader not heard from for this long is "quiet" (and worth an alert during a race).
QUIET_MS = 120_000
#: Heard from within this long: "receiving".
LIVE_MS = 30_000
#: How far back reads are kept for the reads-per-minute rate.
RATE_WINDOW_MS = 60_000
#: How many recent (received - read) differences the clock-offset estimate looks at.
OFFSET_SAMPLES = 50


@dataclass(slots=True)
class ReaderStats:
    """What the log says about one reader so far."""

    reader: str
    point: str
    reads: int = 0
    last_read_ms: int | None = None  # the newest read, by the reader's own clock
    last_heard_ms: int | None = None  # when the server last received a read from it
    _heard: deque[int] = field(default_factory=deque)  # server times within the rate window
    _offsets: deque[int] = field(default_factory=lambda: deque(maxlen=OFFSET_SAMPLES))

    def per_minute(self, now_ms: int) -> int:
        """Reads received in the minute up to ``now_ms``."""
        cutoff = now_ms - RATE_WINDOW_MS
        return sum(1 for t in self._heard if cutoff < t <= now_ms)

    @property
    def clock_offset_ms(self) -> int | None:
        """Estimated (server clock - reader clock) in ms: the smallest received-minus-read
        difference among recent reads, i.e. the offset plus the least network delay seen.
        Positive: the reader's clock is behind. None until a read carries ``received_ms``."""
        return min(self._offsets) if self._offsets else None

    def connection(self, now_ms: int) -> str:
        """``receiving`` (heard within :data:`LIVE_MS`), ``quiet`` or ``silent`` (never)."""
        if self.last_heard_ms is None:
            return "silent"
        return "receiving" if now_ms - self.last_heard_ms <= LIVE_MS else "quiet"

    def quiet_for_ms(self, now_ms: int) -> int | None:
        return None if self.last_heard_ms is None else max(0, now_ms - self.last_heard_ms)


class ReaderHealth:
    """Per-reader statistics, updated by :meth:`observe` for every chip read the fold sees."""

    def __init__(self) -> None:
        self.readers: dict[str, ReaderStats] = {}

    def observe(self, read: ChipRead, point: str) -> None:
        """Count ``read`` (seen at timing point ``point``) for its reader."""
        stats = self.readers.get(read.reader)
        if stats is None:
            stats = self.readers[read.reader] = ReaderStats(read.reader, point)
        stats.point = point
        stats.reads += 1
        heard = read.received_ms or read.time_ms
        if stats.last_read_ms is None or read.time_ms > stats.last_read_ms:
            stats.last_read_ms = read.time_ms
        if stats.last_heard_ms is None or heard > stats.last_heard_ms:
            stats.last_heard_ms = heard
        stats._heard.append(heard)
        newest = stats.last_heard_ms
        while stats._heard and stats._heard[0] <= newest - RATE_WINDOW_MS:
            stats._heard.popleft()
        if read.received_ms:
            stats._offsets.append(read.received_ms - read.time_ms)

    def observe_many(self, reads: list[ChipRead], point: str) -> None:
        """:meth:`observe` for many reads of one reader in log order (the last at ``point``),
        with the same result."""
        first = reads[0]
        stats = self.readers.get(first.reader)
        if stats is None:
            stats = self.readers[first.reader] = ReaderStats(first.reader, point)
        stats.point = point
        stats.reads += len(reads)
        heard = [r.received_ms or r.time_ms for r in reads]
        newest_read = max(r.time_ms for r in reads)
        newest = max(heard)
        if stats.last_read_ms is None or newest_read > stats.last_read_ms:
            stats.last_read_ms = newest_read
        if stats.last_heard_ms is None or newest > stats.last_heard_ms:
            stats.last_heard_ms = newest
        window = stats._heard
        window.extend(heard)
        newest = stats.last_heard_ms
        while window and window[0] <= newest - RATE_WINDOW_MS:
            window.popleft()
        stats._offsets.extend(r.received_ms - r.time_ms for r in reads if r.received_ms)

    def get(self, reader: str) -> ReaderStats | None:
        return self.readers.get(reader)
