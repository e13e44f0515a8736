"""One native reader's reads turned into log records: :class:`ReaderChannel`.

A channel converts a decoder's batches of :class:`~livetrack.ingest.decoders.DecodedRead` into
``ChipRead`` and ``GunStart`` records, estimates the decoder's clock and keeps the reader's
health. :class:`~livetrack.service.readers.ReaderManager` runs one connector per channel.

Decisions, in one place:

* **Identity.** A read becomes ``ChipRead(reader=<configured reader id>, point=<its point>,
  ...)``. In connect mode one configured reader is one decoder, so the protocol's own passing
  number is the ``seq`` and the key is ``read:<reader>:<seq>``: a re-fetch or a resend after a
  drop stores nothing twice. In listen mode any number of decoders may connect to one
  listener and their numbers would collide, so ``seq`` is dropped and the key is
  ``read:<reader>:<chip>:<time>`` (equally stable across resends). The decoder's own box or
  location ids seen on a reader are listed in :meth:`ReaderChannel.health` (``sources``), and a
  change of box in connect mode is logged, because a new box numbers its passings from 1 again.
* **Gun markers** (``kind == "gun"``) become a :class:`GunStart` for every race whose course
  starts at a checkpoint the reader's timing point feeds (:func:`gun_races`). When several
  races start there, only those whose scheduled start is nearest the marker (within
  :data:`GUN_MATCH_MS`) are started; races sharing that scheduled start all get the gun. When
  that still leaves no race, or the marker came from an untrusted clock, the marker is not
  written (a guessed race would start the wrong clock): it is logged and kept as a problem in
  :meth:`ReaderChannel.health` for the timer to fire the gun by hand at that time. The
  configured ``clock_offset_ms`` is added to a gun's time (the fold corrects reads, not guns).
* **Clock.** Every batch of reads delivered live gives one sample: the server's receipt time
  minus the newest decoder time in the batch (the least delayed read). Reads flagged
  :data:`~livetrack.ingest.decoders.BACKLOG` (fetched again, resent, replayed from the
  decoder's memory, or already waiting in the socket) say nothing about the clock and give
  none. The estimate is the :data:`OFFSET_RANK`-th fastest of the last :data:`OFFSET_WINDOW`
  samples (a delay only ever makes a sample larger); when it differs from the configured
  ``clock_offset_ms`` by more than :data:`OFFSET_WARN_MS` the reader's clock state is
  ``offset`` and a warning is logged. The configured offset itself is applied by the fold,
  never here.
* **Unset clock.** Reads flagged ``clock_unset`` by the parser (year 2000, ``0000-00-00``), or
  further than :data:`MAX_DISTANCE_MS` from both the event's day and their receipt, are never
  trusted as they are, and they are not held back either (holding them would lose them, since
  the decoder has been acknowledged). They are stored on the server's clock: the first such
  batch fixes an anchor (receipt time minus the newest decoder time in that batch) and every
  untrusted read is stored at its decoder time plus that anchor. Relative times between reads
  are kept, the key of a resent read stays the same while the server runs, and the reader's
  health says ``clock: unset`` (and a warning is logged) until the decoder's clock is set.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from livetrack.domain.event import Event, Reader
from livetrack.domain.records import ChipRead, GunStart, Record
from livetrack.ingest.decoders import BACKLOG, CLOCK_UNSET, PROTOCOLS, DecodedRead
from livetrack.ingest.decoders.connect import ConnectorStats
from livetrack.ingest.reads import MAX_DISTANCE_MS
from livetrack.store.base import AppendResult

__all__ = [
    "GUN_MATCH_MS",
    "NATIVE_PROTOCOLS",
    "OFFSET_WARN_MS",
    "OFFSET_WINDOW",
    "ClockEstimate",
    "Conversion",
    "ReaderChannel",
    "SeqIndex",
    "gun_races",
    "resume_point",
]

log = logging.getLogger("livetrack.readers")

#: Protocols a reader can speak natively (``http`` readers post to the API instead).
NATIVE_PROTOCOLS = frozenset(PROTOCOLS)
#: How many per-batch samples the clock-offset estimate looks at.
OFFSET_WINDOW = 31
#: The estimate is the sample of this rank among them, counted from the fastest delivery.
OFFSET_RANK = 4
#: A reader whose estimated offset differs from its configured one by more is flagged.
OFFSET_WARN_MS = 1000
#: A gun marker picks, among several races starting at its point, those scheduled this close.
GUN_MATCH_MS = 15 * 60 * 1000
#: Window of the reads-per-minute rate.
RATE_WINDOW_MS = 60_000
#: Problems kept per reader for the health view.
MAX_PROBLEMS = 20


# -- pure helpers ------------------------------------------------------------------------------


def gun_races(event: Event, reader: Reader, time_ms: int) -> tuple[list[str], str]:
    """The races a gun marker from ``reader`` at ``time_ms`` starts, or ``([], why)``.

    Candidates are the races whose first checkpoint is fed by the reader's timing point. One
    candidate is started. Among several, those whose scheduled start is nearest ``time_ms``
    and within :data:`GUN_MATCH_MS` are started (all of them when they share that schedule);
    otherwise the marker is ambiguous and the reason says why.
    """
    point = event.points.get(event.point_for(reader.id, reader.point))
    if point is None:
        return [], f"reader {reader.id} has no timing point"
    candidates = [
        r for r in event.races.values() if r.course.checkpoints[0].id in point.checkpoints
    ]
    if not candidates:
        return [], f"no race starts at timing point {point.id}"
    if len(candidates) == 1:
        return [candidates[0].id], ""
    scheduled = [r for r in candidates if r.scheduled_ms is not None]
    names = ", ".join(r.id for r in candidates)
    if scheduled:
        best = min(abs(r.scheduled_ms - time_ms) for r in scheduled if r.scheduled_ms is not None)
        if best <= GUN_MATCH_MS:
            return [
                r.id
                for r in scheduled
                if r.scheduled_ms is not None and abs(r.scheduled_ms - time_ms) == best
            ], ""
    return [], f"races {names} all start at {point.id} and none is scheduled near this time"


def gun_id(reader: str, seq: int | None, time_ms: int) -> str:
    """The id of a gun made from a marker: the reader and the marker's number (else time)."""
    return f"{reader}#{seq}" if seq is not None else f"{reader}@{time_ms}"


def resume_point(
    seqs: Iterable[int], *, contiguous: bool, file_span: int = 0
) -> tuple[int | None, set[int]]:
    """Where a connector resumes from the sequence numbers already stored for its reader.

    ``contiguous`` (protocols that re-fetch, whose numbers start at 1): the end of the run
    1..n that is complete, and the stored numbers above it; otherwise the highest number.
    With ``file_span`` (numbers made of a decoder file and a passing number, see
    :func:`~livetrack.ingest.decoders.raceresult.file_seq`), the run is that of the newest
    file stored. ``None`` when nothing counts as stored.
    """
    stored = set(seqs)
    if not contiguous:
        return (max(stored) if stored else None), set()
    base = (max(stored) - 1) // file_span * file_span if file_span and stored else 0
    mark = base
    while mark + 1 in stored:
        mark += 1
    return (mark or None), {s for s in stored if s > mark}


class SeqIndex:
    """Collects, from log records, the sequence numbers stored for some readers."""

    def __init__(self, readers: Iterable[str]) -> None:
        self.seqs: dict[str, set[int]] = {r: set() for r in readers}

    def observe(self, record: Record) -> None:
        if isinstance(record, ChipRead):
            if record.seq is not None and record.reader in self.seqs:
                self.seqs[record.reader].add(record.seq)
        elif isinstance(record, GunStart) and record.by.startswith("reader:"):
            reader, sep, number = record.id.rpartition("#")
            if sep and reader in self.seqs and number.isdigit():
                self.seqs[reader].add(int(number))


@dataclass
class ClockEstimate:
    """(receipt time - decoder time) of the fastest deliveries among the last
    :data:`OFFSET_WINDOW` samples: the :data:`OFFSET_RANK`-th smallest.

    A read that waited anywhere (in the decoder's memory, a resend, the network) only ever
    makes its sample larger, so the fastest deliveries say what the clock is; taking the
    fourth fastest rather than the fastest lets three reads stamped in the future (a clock
    glitch) pass without moving the estimate."""

    samples: deque[int] = field(default_factory=lambda: deque(maxlen=OFFSET_WINDOW))

    def add(self, decoder_ms: int, received_ms: int) -> None:
        self.samples.append(received_ms - decoder_ms)

    @property
    def offset_ms(self) -> int | None:
        """Server clock minus decoder clock, in ms (positive: the decoder is behind)."""
        if not self.samples:
            return None
        ordered = sorted(self.samples)
        return ordered[min(OFFSET_RANK, len(ordered)) - 1]


@dataclass
class Conversion:
    """Records to append for one batch of decoded reads, and what could not be stored."""

    records: list[Record]
    problems: list[str]


class ReaderChannel:
    """One configured reader: turns decoded reads into records and keeps its health.

    Pure apart from being stateful: times come in as arguments, nothing here awaits, reads a
    clock or touches I/O.
    """

    def __init__(self, event: Event, reader: Reader, *, keep_seq: bool = True) -> None:
        self.event = event
        self.reader = reader
        self.keep_seq = keep_seq
        #: The decoder whose passing numbers key this reader's reads (the first one heard).
        self.primary: str | None = None
        self.clock = ClockEstimate()
        self.centre_ms = int(
            dt.datetime.combine(event.date, dt.time(), event.tz).timestamp() * 1000
        )
        #: Receipt minus decoder time fixed by the first untrusted batch (see module doc).
        self.anchor_ms: int | None = None
        self.state = "stopped"
        self.state_since_ms = 0
        self.connections = 0
        self.reads = 0
        self.stored = 0
        self.duplicates = 0
        #: Reads stored under their own numbering run: the decoder numbered its reads again.
        self.renumbered = 0
        self.untrusted = 0
        self.last_error = ""
        self.last_read_ms: int | None = None
        self.last_received_ms: int | None = None
        self.sources: set[str] = set()
        self.problems: deque[dict[str, Any]] = deque(maxlen=MAX_PROBLEMS)
        self.clock_status = "unknown"
        self.stats = ConnectorStats()
        self._heard: deque[int] = deque()

    # -- conversion ------------------------------------------------------------------------

    def trusted(self, read: DecodedRead, received_ms: int | None) -> bool:
        """Whether a read's own time can be used: its clock is set and plausible."""
        if CLOCK_UNSET in read.flags:
            return False
        if abs(read.time_ms - self.centre_ms) <= MAX_DISTANCE_MS:
            return True
        return received_ms is not None and abs(read.time_ms - received_ms) <= MAX_DISTANCE_MS

    def convert(self, reads: Sequence[DecodedRead], received_ms: int | None) -> Conversion:
        """Records for ``reads`` received at ``received_ms`` (``None``: from a file, where
        untrusted times cannot be re-based and are reported instead of stored)."""
        r = self.reader
        records: list[Record] = []
        problems: list[str] = []
        verdicts = [self.trusted(x, received_ms) for x in reads]
        if received_ms is not None:
            self._observe_clock(
                [x for x, ok in zip(reads, verdicts, strict=True) if ok],
                [x for x, ok in zip(reads, verdicts, strict=True) if not ok],
                received_ms,
            )
        for read, ok in zip(reads, verdicts, strict=True):
            if read.source:
                self._see_source(read.source)
            # a second decoder on one reader numbers its passings its own way: its reads are
            # kept by chip and time, so that no number of the first one hides them
            primary = self.primary is None or read.source == self.primary
            seq = read.seq if self.keep_seq and primary else None
            if read.kind == "gun":
                problems.extend(self._gun(read, ok, seq, records))
                continue
            chip = read.chip.strip()
            if not chip or len(chip) > 64:
                problems.append(f"read without a usable chip: {read.raw[:80]!r}")
                continue
            time_ms = read.time_ms
            if not ok:
                if received_ms is None or self.anchor_ms is None:
                    problems.append(
                        f"decoder clock unset or implausible: chip {chip} not stored "
                        f"({read.raw[:80]!r})"
                    )
                    continue
                time_ms = read.time_ms + self.anchor_ms - r.clock_offset_ms
                self.untrusted += 1
            records.append(
                ChipRead(
                    reader=r.id,
                    point=r.point,
                    chip=chip,
                    time_ms=time_ms,
                    seq=seq,
                    received_ms=received_ms or 0,
                )
            )
            corrected = time_ms + r.clock_offset_ms
            if self.last_read_ms is None or corrected > self.last_read_ms:
                self.last_read_ms = corrected
        for text in problems:
            self.problem(text, received_ms)
        return Conversion(records, problems)

    def _gun(
        self, read: DecodedRead, ok: bool, seq: int | None, records: list[Record]
    ) -> list[str]:
        r = self.reader
        if not ok:
            return [f"gun marker from an unset clock ({read.raw[:80]!r}): fire the gun by hand"]
        time_ms = read.time_ms + r.clock_offset_ms
        races, why = gun_races(self.event, r, time_ms)
        if not races:
            stamp = dt.datetime.fromtimestamp(time_ms / 1000, self.event.tz).strftime(
                "%H:%M:%S.%f"
            )[:-3]
            return [f"gun marker at {stamp} not applied: {why}; fire the gun by hand"]
        ident = gun_id(r.id, seq, time_ms)
        records.extend(GunStart(race, time_ms, "", ident, f"reader:{r.id}") for race in races)
        return []

    def _observe_clock(
        self, trusted: list[DecodedRead], untrusted: list[DecodedRead], received_ms: int
    ) -> None:
        live = [x for x in trusted if BACKLOG not in x.flags]
        if live:
            self.clock.add(max(x.time_ms for x in live), received_ms)
        if untrusted and self.anchor_ms is None:
            self.anchor_ms = received_ms - max(x.time_ms for x in untrusted)
        before = self.clock_status
        if untrusted:
            self.clock_status = "unset"
        else:
            offset = self.clock.offset_ms
            if offset is None:
                self.clock_status = "unknown"
            elif abs(offset - self.reader.clock_offset_ms) > OFFSET_WARN_MS:
                self.clock_status = "offset"
            else:
                self.clock_status = "ok"
        if self.clock_status != before:
            if self.clock_status == "unset":
                log.warning(
                    "reader %s: decoder clock is unset or implausible; its reads are stored "
                    "on the server clock (anchor %+d ms) until the decoder's time is set",
                    self.reader.id,
                    self.anchor_ms or 0,
                )
            elif self.clock_status == "offset":
                log.warning(
                    "reader %s: decoder clock is off by about %+d ms (configured "
                    "clock_offset_ms = %d)",
                    self.reader.id,
                    self.clock.offset_ms or 0,
                    self.reader.clock_offset_ms,
                )

    def _see_source(self, source: str) -> None:
        if source in self.sources:
            return
        if self.primary is None:
            self.primary = source
        elif self.keep_seq:
            self.problem(
                f"a second decoder ({source}, besides {self.primary}) sends to "
                f"{self.reader.host or '*'}:{self.reader.port}: its reads are kept by chip and "
                "time; give each decoder a reader (and port) of its own",
                None,
            )
        self.sources.add(source)

    # -- bookkeeping -----------------------------------------------------------------------

    def stored_results(self, results: Sequence[AppendResult]) -> None:
        """Count what the log made of a batch (stored or duplicate)."""
        for res in results:
            if res.duplicate:
                self.duplicates += 1
            else:
                self.stored += 1

    def heard(self, count: int, received_ms: int) -> None:
        self.reads += count
        self.last_received_ms = received_ms
        self._heard.extend([received_ms] * count)
        while self._heard and self._heard[0] <= received_ms - RATE_WINDOW_MS:
            self._heard.popleft()

    def per_minute(self, now_ms: int) -> int:
        return sum(1 for t in self._heard if now_ms - RATE_WINDOW_MS < t <= now_ms)

    def set_state(self, state: str, now_ms: int) -> None:
        if state == "connected":
            self.connections += 1
        self.state = state
        self.state_since_ms = now_ms

    def problem(self, text: str, at_ms: int | None) -> None:
        log.warning("reader %s: %s", self.reader.id, text)
        self.problems.append({"at_ms": at_ms, "detail": text})

    def health(self, now_ms: int) -> dict[str, Any]:
        """This reader's health as plain JSON-able data (see :meth:`ReaderManager.health`)."""
        r = self.reader
        offset = self.clock.offset_ms
        warning = ""
        if self.clock_status == "unset":
            warning = "decoder clock unset: reads are stored on the server clock; set its time"
        elif self.clock_status == "offset" and offset is not None:
            warning = (
                f"decoder clock off by {offset - r.clock_offset_ms:+d} ms beyond the "
                f"configured clock_offset_ms ({r.clock_offset_ms})"
            )
        return {
            "reader": r.id,
            "protocol": r.protocol,
            "point": r.point,
            "mode": "listen" if r.listen else "connect",
            "host": r.host,
            "port": self.stats.listen_port if r.listen and self.stats.listen_port else r.port,
            "state": self.state,
            "connected": self.state == "connected",
            "state_since_ms": self.state_since_ms,
            "connections": self.connections,
            "reads": self.reads,
            "stored": self.stored,
            "duplicates": self.duplicates,
            "renumbered": self.renumbered,
            "untrusted_time": self.untrusted,
            "errors": self.stats.errors,
            "last_error": self.last_error,
            "last_read_ms": self.last_read_ms,
            "last_received_ms": self.last_received_ms,
            "reads_per_minute": self.per_minute(now_ms),
            "clock": self.clock_status,
            "clock_offset_ms": offset,
            "configured_offset_ms": r.clock_offset_ms,
            "clock_warning": warning,
            "last_seq": self.stats.last_stored_seq,
            "gaps_seen": len(self.stats.gaps),
            "gaps_filled": self.stats.gaps_filled,
            "gaps_given_up": len(self.stats.gaps_abandoned),
            "gap_requests": self.stats.refetches,
            "sources": sorted(self.sources),
            "problems": list(self.problems),
        }
