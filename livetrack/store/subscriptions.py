"""Web Push subscriptions, kept beside the event's log and shared by every process using it.

A subscription holds the least a push needs: the push service's endpoint, the browser's two
keys, and what to alert on (runners, where the supporter stands, lead time, kinds). Its id is a
hash of the endpoint: no account, no name. Subscriptions are removed when the supporter stops
following everyone, when the push service says the endpoint is gone, and after the event.

SQLite keeps them in a table of the log's file; Redis in a hash beside the log's stream. Both
keep a version number that moves on every change, so a process re-reads them only when they
changed, and the server's VAPID key pair (made once, by whichever process comes first).
"""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from livetrack.store.base import EventLog

#: How many runners one subscription may follow (the page's own limit is the same).
MAX_RUNNERS = 30


@dataclass(frozen=True, slots=True)
class Follow:
    """One runner a subscription alerts on, and where the supporter stands for them."""

    bib: str
    checkpoint: str = ""
    distance_m: float | None = None
    lead_s: int = 180


@dataclass(frozen=True, slots=True)
class Subscription:
    endpoint: str
    p256dh: str
    auth: str
    follows: tuple[Follow, ...] = ()
    kinds: tuple[str, ...] = ()
    created_ms: int = 0
    id: str = field(default="")

    def __post_init__(self) -> None:
        if not self.id:
            object.__setattr__(self, "id", subscription_id(self.endpoint))

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "endpoint": self.endpoint,
                "p256dh": self.p256dh,
                "auth": self.auth,
                "follows": [_follow(f) for f in self.follows],
                "kinds": list(self.kinds),
                "created_ms": self.created_ms,
            }
        )

    @classmethod
    def from_json(cls, body: bytes | str) -> Subscription:
        data = orjson.loads(body)
        return cls(
            data["endpoint"],
            data["p256dh"],
            data["auth"],
            tuple(Follow(**f) for f in data.get("follows", ())),
            tuple(data.get("kinds", ())),
            int(data.get("created_ms", 0)),
        )


def _follow(f: Follow) -> dict[str, Any]:
    return {
        "bib": f.bib,
        "checkpoint": f.checkpoint,
        "distance_m": f.distance_m,
        "lead_s": f.lead_s,
    }


def subscription_id(endpoint: str) -> str:
    """The supporter's id in alert keys: a hash of the endpoint (which stays a secret)."""
    return hashlib.sha256(endpoint.encode()).hexdigest()[:22]


class SubscriptionStore(Protocol):
    async def put(self, sub: Subscription) -> None:
        """Store ``sub``, replacing any subscription with the same endpoint."""
        ...

    async def remove(self, sub_id: str) -> bool:
        """Remove a subscription; True when there was one."""
        ...

    async def all(self) -> list[Subscription]: ...

    async def version(self) -> int:
        """A number that changes whenever a subscription is stored or removed."""
        ...

    async def clear(self) -> int:
        """Remove every subscription (after the event); how many there were."""
        ...

    async def vapid_key(self, make: Callable[[], bytes]) -> bytes:
        """The server's VAPID private key: the stored one, else ``make()``'s, stored for
        every process to share."""
        ...

    async def close(self) -> None: ...


class MemorySubscriptions:
    """For a single process with no durable store (and for benchmarks)."""

    def __init__(self) -> None:
        self._subs: dict[str, Subscription] = {}
        self._version = 0
        self._key: bytes | None = None

    async def put(self, sub: Subscription) -> None:
        self._subs[sub.id] = sub
        self._version += 1

    async def remove(self, sub_id: str) -> bool:
        self._version += 1
        return self._subs.pop(sub_id, None) is not None

    async def all(self) -> list[Subscription]:
        return list(self._subs.values())

    async def version(self) -> int:
        return self._version

    async def clear(self) -> int:
        n = len(self._subs)
        self._subs.clear()
        self._version += 1
        return n

    async def vapid_key(self, make: Callable[[], bytes]) -> bytes:
        if self._key is None:
            self._key = make()
        return self._key

    async def close(self) -> None:
        return None


_SCHEMA = """
CREATE TABLE IF NOT EXISTS push_subscriptions (id TEXT PRIMARY KEY, body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS push_meta (name TEXT PRIMARY KEY, value BLOB NOT NULL);
"""


class SqliteSubscriptions:
    """Tables in the log's SQLite file (processes sharing the file share them)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._conn = sqlite3.connect(path, timeout=30.0, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.executescript(_SCHEMA)
        # One thread owns the connection: transactions run one after another on it, and
        # close() queues behind any still running, even one whose awaiting task was
        # cancelled (closing a connection under a running statement crashes the process).
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="subscriptions")

    async def _run(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, self._tx, fn)

    def _tx(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        with self._conn:
            return fn(self._conn)

    def _bump(self, conn: sqlite3.Connection) -> None:
        conn.execute(
            "INSERT INTO push_meta (name, value) VALUES ('version', 1) "
            "ON CONFLICT(name) DO UPDATE SET value = value + 1"
        )

    async def put(self, sub: Subscription) -> None:
        def write(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT OR REPLACE INTO push_subscriptions (id, body) VALUES (?, ?)",
                (sub.id, sub.to_json()),
            )
            self._bump(conn)

        await self._run(write)

    async def remove(self, sub_id: str) -> bool:
        def delete(conn: sqlite3.Connection) -> bool:
            n = conn.execute("DELETE FROM push_subscriptions WHERE id = ?", (sub_id,)).rowcount
            self._bump(conn)
            return bool(n)

        return bool(await self._run(delete))

    async def all(self) -> list[Subscription]:
        def read(conn: sqlite3.Connection) -> list[Subscription]:  # decoded off the event loop
            rows = conn.execute("SELECT body FROM push_subscriptions").fetchall()
            return [Subscription.from_json(body) for (body,) in rows]

        found: list[Subscription] = await self._run(read)
        return found

    async def version(self) -> int:
        row = await self._run(
            lambda conn: conn.execute(
                "SELECT value FROM push_meta WHERE name = 'version'"
            ).fetchone()
        )
        return int(row[0]) if row else 0

    async def clear(self) -> int:
        def delete(conn: sqlite3.Connection) -> int:
            n = conn.execute("DELETE FROM push_subscriptions").rowcount
            self._bump(conn)
            return int(n)

        return int(await self._run(delete))

    async def vapid_key(self, make: Callable[[], bytes]) -> bytes:
        def get(conn: sqlite3.Connection) -> bytes:
            conn.execute(
                "INSERT OR IGNORE INTO push_meta (name, value) VALUES ('vapid', ?)", (make(),)
            )
            row = conn.execute("SELECT value FROM push_meta WHERE name = 'vapid'").fetchone()
            return bytes(row[0])

        return bytes(await self._run(get))

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._thread, self._conn.close)
        self._thread.shutdown(wait=True)


class RedisSubscriptions:
    """A hash beside the log's stream (``<stream>:push``), its version and the VAPID key."""

    def __init__(self, url: str, stream: str) -> None:
        import redis.asyncio as aioredis

        self._client: Any = aioredis.from_url(url)
        self._hash = f"{stream}:push"
        self._version = f"{stream}:push:version"
        self._vapid = f"{stream}:push:vapid"

    async def put(self, sub: Subscription) -> None:
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.hset(self._hash, sub.id, sub.to_json())
            pipe.incr(self._version)
            await pipe.execute()

    async def remove(self, sub_id: str) -> bool:
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.hdel(self._hash, sub_id)
            pipe.incr(self._version)
            n, _ = await pipe.execute()
        return bool(n)

    async def all(self) -> list[Subscription]:
        values = await self._client.hvals(self._hash)
        return await asyncio.to_thread(lambda: [Subscription.from_json(v) for v in values])

    async def version(self) -> int:
        v = await self._client.get(self._version)
        return int(v or 0)

    async def clear(self) -> int:
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.hlen(self._hash)
            pipe.delete(self._hash)
            pipe.incr(self._version)
            n, _, _ = await pipe.execute()
        return int(n)

    async def vapid_key(self, make: Callable[[], bytes]) -> bytes:
        await self._client.set(self._vapid, make(), nx=True)
        return bytes(await self._client.get(self._vapid))

    async def close(self) -> None:
        await self._client.aclose()


def subscriptions_for(event_log: EventLog) -> SubscriptionStore:
    """The subscription store that lives beside ``event_log`` (in memory for other logs)."""
    from livetrack.store.redis import RedisEventLog
    from livetrack.store.sqlite import SqliteEventLog

    if isinstance(event_log, SqliteEventLog):
        return SqliteSubscriptions(event_log.path)
    if isinstance(event_log, RedisEventLog):
        return RedisSubscriptions(event_log.url, event_log.stream)
    return MemorySubscriptions()
