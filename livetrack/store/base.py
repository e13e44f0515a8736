"""The EventLog contract: a durable, ordered, idempotent log of records."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from livetrack.domain.records import Record


class Offset(str):
    """A position in a log: the backend's own text for it (what ``tail`` takes back), ordered
    in log order. SQLite's are row ids (numbers), Redis's stream ids (``ms-seq``); the two
    never meet in one log. Compare offsets with ``<``, ``>=``, ``max``…, never as text, and
    count the records between two with :meth:`records_after`."""

    __slots__ = ()

    @property
    def key(self) -> tuple[int, int]:
        """The offset's place in log order."""
        ms, sep, seq = self.partition("-")
        try:
            return (int(ms), int(seq)) if sep else (int(ms), 0)
        except ValueError:
            raise ValueError(f"{str(self)!r} is not a log offset") from None

    @staticmethod
    def _key(other: str) -> tuple[int, int]:
        return (other if isinstance(other, Offset) else Offset(other)).key

    def __lt__(self, other: str) -> bool:
        return self.key < self._key(other)

    def __le__(self, other: str) -> bool:
        return self.key <= self._key(other)

    def __gt__(self, other: str) -> bool:
        return self.key > self._key(other)

    def __ge__(self, other: str) -> bool:
        return self.key >= self._key(other)

    def records_after(self, earlier: Offset | None) -> int | None:
        """How many records lie after ``earlier`` (None: the start) up to this one, where the
        offsets count records (SQLite row ids); None where they do not (Redis stream ids)."""
        if "-" in self or (earlier is not None and "-" in earlier):
            return None
        return max(0, self.key[0] - (earlier.key[0] if earlier is not None else 0))


@dataclass(frozen=True, slots=True)
class AppendResult:
    """What became of one appended record: stored at ``offset``, or a ``duplicate`` of a key
    already in the log (then ``offset`` is None)."""

    key: str
    offset: Offset | None
    duplicate: bool


class Page(list[tuple[Offset, Record]]):
    """Records a tail read at once, in log order, and ``end``: the offset of the last entry
    it read, which is past the last record here when unreadable entries at the end were
    skipped (a page may even hold no record, when every entry read was unreadable)."""

    def __init__(self, items: list[tuple[Offset, Record]], end: Offset) -> None:
        super().__init__(items)
        self.end = end


class LogUnavailable(RuntimeError):
    """The log's backend cannot be reached; the message says which and why."""


class EventLog(Protocol):
    async def append(self, records: Sequence[Record]) -> list[AppendResult]:
        """Store ``records`` in order; durable when it returns. A record whose key is already
        in the log (or earlier in the same call) is reported as a duplicate, not stored."""
        ...

    def tail(self, after: Offset | None = None) -> AsyncGenerator[tuple[Offset, Record], None]:
        """Every record after ``after`` (from the start when None), then new ones as they are
        appended, by any process, forever (``aclose()`` it to stop early)."""
        ...

    def tail_pages(self, after: Offset | None = None) -> AsyncIterator[Page]:
        """What :meth:`tail` yields, a page at a time: the records the backend read at once,
        so a reader catching up can fold them together. A page's ``end`` says how far the tail
        has read, unreadable (skipped) entries included, so a reader knows it reached the head
        even when the newest entry could not be read."""
        ...

    async def head(self) -> Offset | None:
        """The offset of the newest record, or None for an empty log."""
        ...

    async def close(self) -> None: ...


# -- capabilities beyond the log: each declared here, and tested with isinstance -----------------


@runtime_checkable
class SnapshotStore(Protocol):
    """Named blobs kept beside the log, each covering the log up to an offset (snapshots of
    the fold, notes about what was seeded). Both built-in backends provide it."""

    async def save_snapshot(self, name: str, offset: Offset, body: bytes) -> None:
        """Keep ``body`` under ``name`` (replacing what was there) as covering ``offset``."""
        ...

    async def load_snapshot(self, name: str) -> tuple[Offset, bytes] | None:
        """What was kept under ``name``, and the offset it covers; None if nothing is."""
        ...


@runtime_checkable
class AppendTimes(Protocol):
    """When records were appended (for example, how long the oldest record a site has not got
    to the public server yet has waited). Both built-in backends provide it."""

    async def appended_after(self, offset: Offset | None) -> int | None:
        """The wall time (epoch ms) the first record after ``offset`` (``None``: the first
        record) was appended, or None when there is no such record."""
        ...


@runtime_checkable
class Countable(Protocol):
    """Counting the records in the log cheaply (a Redis stream's ids do not count records).
    Both built-in backends provide it."""

    async def count(self) -> int:
        """How many records the log holds."""
        ...


@runtime_checkable
class Leases(Protocol):
    """Time-limited exclusive roles among the processes sharing one log (for example, which
    one runs the native readers). Both built-in backends provide it."""

    async def lease(self, name: str, holder: str, ttl_s: float) -> bool:
        """Take or renew the lease ``name`` for ``holder`` for ``ttl_s`` seconds. True when
        ``holder`` holds it now; False while another holder's lease is unexpired."""
        ...

    async def release(self, name: str, holder: str) -> None:
        """Give the lease up early if ``holder`` holds it (else do nothing)."""
        ...


@runtime_checkable
class KeyLookup(Protocol):
    """Reading stored idempotency keys back without decoding records (for example, the
    passing numbers a reader has stored, to resume it). Both built-in backends provide it."""

    async def keys_with_prefix(self, prefix: str) -> list[str]:
        """Every stored record key that starts with ``prefix``, in no particular order."""
        ...


@runtime_checkable
class StoredLookup(Protocol):
    """Reading stored records back by key, with their offsets (for example, to tell a resent
    record from a different one under the same key). Both built-in backends provide it."""

    async def stored(self, keys: Sequence[str]) -> dict[str, tuple[Offset, bytes]]:
        """For each of ``keys`` the log holds: its offset and its stored body."""
        ...
