"""Writes waiting to travel down to the site: a durable queue beside a follower's log.

A public server that follows a site's log must not append what its own visitors write (the
site's log decides the order of everything); it keeps each write here, durably, until the
site has taken it into its log. An item is a list of encoded records (one request's worth);
it stays queued until :meth:`Outbox.done` names it, so a write the site took but whose
acknowledgement was lost is sent again, and the site's keys make the repeat harmless.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Sequence
from typing import Any, Protocol

import orjson

from livetrack.domain.records import Record, encode
from livetrack.store.base import EventLog, LogUnavailable

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    body BLOB NOT NULL,
    at_ms INTEGER NOT NULL
);
"""

#: One queued write: its id, when it was queued (ms), and its encoded records.
Item = tuple[str, int, list[bytes]]


class Outbox(Protocol):
    async def put(self, records: Sequence[Record]) -> str:
        """Queue ``records`` (durable when it returns); their item's id."""
        ...

    async def peek(self, limit: int = 100) -> list[Item]:
        """The oldest queued items, oldest first."""
        ...

    async def done(self, ids: Sequence[str]) -> None:
        """Forget the items ``ids`` (the site has them in its log)."""
        ...

    async def count(self) -> int: ...

    async def close(self) -> None: ...


def _pack(records: Sequence[Record]) -> bytes:
    return orjson.dumps([encode(r).decode() for r in records])


def _unpack(body: bytes | str) -> list[bytes]:
    return [str(x).encode() for x in orjson.loads(body)]


class SqliteOutbox:
    """The queue as a table in the log's own SQLite file (fsynced like the log)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = asyncio.Lock()
        try:
            self._conn = sqlite3.connect(
                path, check_same_thread=False, isolation_level=None, timeout=30
            )
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise LogUnavailable(f"cannot open the outbox in {path!r}: {exc}") from exc

    async def _run(self, sql: str, args: Sequence[object] = ()) -> list[tuple[object, ...]]:
        def go() -> list[tuple[object, ...]]:
            return self._conn.execute(sql, tuple(args)).fetchall()

        async with self._lock:
            try:
                return await asyncio.to_thread(go)
            except sqlite3.Error as exc:
                raise LogUnavailable(f"outbox: {exc}") from exc

    async def put(self, records: Sequence[Record]) -> str:
        rows = await self._run(
            "INSERT INTO outbox (body, at_ms) VALUES (?, ?) RETURNING id",
            (_pack(records), int(time.time() * 1000)),
        )
        return str(rows[0][0])

    async def peek(self, limit: int = 100) -> list[Item]:
        rows = await self._run("SELECT id, at_ms, body FROM outbox ORDER BY id LIMIT ?", (limit,))
        return [(str(i), int(str(at)), _unpack(b)) for i, at, b in rows]  # type: ignore[arg-type]

    async def done(self, ids: Sequence[str]) -> None:
        if ids:
            marks = ",".join("?" * len(ids))
            await self._run(f"DELETE FROM outbox WHERE id IN ({marks})", [int(i) for i in ids])

    async def count(self) -> int:
        rows = await self._run("SELECT COUNT(*) FROM outbox")
        return int(str(rows[0][0]))

    async def close(self) -> None:
        async with self._lock:
            self._conn.close()


class RedisOutbox:
    """The queue as a stream beside the log's stream (as durable as Redis is configured)."""

    def __init__(self, url: str, stream: str) -> None:
        from redis.asyncio import Redis

        self.key = f"{stream}:outbox"
        self._client: Redis = Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2)

    async def _do(self, what: str, coro: object) -> object:
        from redis.exceptions import RedisError

        try:
            return await coro  # type: ignore[misc]
        except (RedisError, OSError) as exc:
            raise LogUnavailable(f"outbox {what}: {exc}") from exc

    async def put(self, records: Sequence[Record]) -> str:
        sid = await self._do(
            "put",
            self._client.xadd(self.key, {"b": _pack(records), "at": int(time.time() * 1000)}),
        )
        return sid.decode() if isinstance(sid, bytes) else str(sid)

    async def peek(self, limit: int = 100) -> list[Item]:
        rows = await self._do("peek", self._client.xrange(self.key, "-", "+", count=limit))
        out: list[Item] = []
        for sid, fields in rows:  # type: ignore[attr-defined]
            out.append((sid.decode(), int(fields[b"at"]), _unpack(fields[b"b"])))
        return out

    async def done(self, ids: Sequence[str]) -> None:
        if ids:
            await self._do("done", self._client.xdel(self.key, *ids))

    async def count(self) -> int:
        n: Any = await self._do("count", self._client.xlen(self.key))
        return int(n)

    async def close(self) -> None:
        await self._client.aclose()


def open_outbox(event_log: EventLog) -> Outbox:
    """The outbox beside ``event_log`` (same SQLite file, or same Redis and stream prefix)."""
    from livetrack.store.sqlite import SqliteEventLog

    if isinstance(event_log, SqliteEventLog):
        return SqliteOutbox(event_log.path)
    from livetrack.store.redis import RedisEventLog

    if isinstance(event_log, RedisEventLog):
        return RedisOutbox(event_log.url, event_log.stream)
    raise ValueError(f"no outbox for a log of type {type(event_log).__name__}")
