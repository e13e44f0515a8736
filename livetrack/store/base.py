"""The EventLog contract: a durable, ordered, idempotent log of records."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from livetrack.domain.records import Record

#: An opaque position in a log. Offsets of one log compare in log order as strings of equal
#: shape within one backend (SQLite: zero-padded row ids; Redis: stream ids), but callers treat
#: them as opaque and only hand them back to ``tail``.
Offset = str


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

    def tail(self, after: Offset | None = None) -> AsyncIterator[tuple[Offset, Record]]:
        """Every record after ``after`` (from the start when None), then new ones as they are
        appended, by any process, forever."""
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


def open_log(url: str) -> EventLog:
    """A log for ``url``: ``sqlite:///path/to/file.db`` or a path, or ``redis://host:port/db``
    (``?stream=NAME`` names the event's stream). The Redis driver is imported only here."""
    if url.startswith(("redis://", "rediss://", "unix://")):
        from livetrack.store.redis import RedisEventLog

        return RedisEventLog.from_url(url)
    from livetrack.store.sqlite import SqliteEventLog

    path = url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else url
    return SqliteEventLog(path)
