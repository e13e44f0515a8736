"""The shared EventLog: one Redis Stream per event, idempotent appends through a Lua script.

Key layout for a stream named ``NAME`` (``?stream=NAME`` in the URL, default
``livetrack:events``):

* ``NAME`` — the Stream. Each entry has the fields ``k`` (record key), ``b`` (the encoded
  record, see :func:`livetrack.domain.records.encode`) and ``c`` (a random token of the
  ``append`` call that stored it, used to recognise a retried call's own entries).
* ``NAME:keys`` — the idempotency hash: record key -> stream id of the entry that holds it.
* ``NAME:snapshot:SNAP`` — a hash with ``o`` (the offset a snapshot covers) and ``b`` (its body).

All keys start with ``NAME``, so a stream name with a hash tag (``{heaton}:events``) keeps them
in one Redis Cluster slot, as the script needs.

Durability: ``append`` returns after Redis has executed the script and replied. With
``appendonly yes`` and ``appendfsync always`` Redis fsyncs the AOF before it replies, so an
acknowledged record survives a crash of Redis or of its host. With ``appendfsync everysec``
up to about one second of acknowledged records can be lost on a power cut (not on a crash of
the Redis process alone). Without AOF nothing is durable. Two options ask for more, at the cost
of latency on every append: ``?wait_replicas=N`` issues ``WAIT N timeout`` so the records
reached N replicas, and ``?wait_aof=1`` issues ``WAITAOF`` (Redis 7.2 or later) so the local
AOF (and, with ``wait_replicas``, the replicas' AOF) is fsynced even under ``everysec``. When
too few replicas confirm in time the records are nonetheless stored on the primary: ``append``
logs a warning and reports them as stored rather than failing a write that happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
import secrets
from collections.abc import AsyncGenerator, Sequence
from typing import Any, Final

from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import NoScriptError, RedisError, ResponseError

from livetrack.domain.records import Record, decode, encode
from livetrack.store.base import AppendResult, LogUnavailable, Offset, Page
from livetrack.store.redis_client import DEFAULT_STREAM, TRANSIENT, RedisClient
from livetrack.store.redis_wire import (
    APPEND_LUA,
    LEASE_LUA,
    RELEASE_LUA,
    as_text,
    parse_url,
    redact,
    stream_entries,
)

__all__ = ["CHUNK", "DEFAULT_STREAM", "RedisEventLog", "redact"]

log = logging.getLogger("livetrack.store")

#: Records per script call: each call is atomic and blocks Redis while it runs, so a huge
#: ``append`` is split into calls of this size (each record is still stored exactly once).
CHUNK: Final = 500

_STREAM_ID = re.compile(r"^\d+-\d+$")


class RedisEventLog(RedisClient):
    """``EventLog`` on a Redis Stream, shared by any number of processes.

    * ``append`` stores each record whose key is new, atomically with its key in the
      idempotency hash, so a resend (after a lost reply, by any process) never makes a second
      entry; a key seen earlier in the log or in the same call is reported as a duplicate.
      During an outage it retries with backoff for up to ``append_retry_s`` seconds, then
      raises :class:`LogUnavailable`; it never reports a record it did not store.
    * ``tail`` reads with ``XREAD COUNT BLOCK`` and never gives up: when Redis goes away it
      reconnects with capped exponential backoff and resumes after the last entry it read, so
      it neither skips nor repeats. An entry that cannot be decoded is logged and skipped.
      It ends when the log is closed.
    * The first operation other than ``tail`` (or an explicit :meth:`connect`) raises
      :class:`LogUnavailable` at once, naming the URL, when Redis cannot be reached.
    """

    @classmethod
    def from_url(cls, url: str) -> RedisEventLog:
        """A log for ``redis://host:port/db?stream=NAME`` (also ``rediss://``, ``unix://``).

        Besides redis-py's own URL options it understands ``stream`` (default
        ``livetrack:events``), ``wait_replicas`` (int), ``wait_timeout_ms`` (int) and
        ``wait_aof`` (``1``/``true``); see the module documentation."""
        o = parse_url(url)
        return cls(
            o.url,
            o.stream or DEFAULT_STREAM,
            wait_replicas=o.wait_replicas,
            wait_timeout_ms=o.wait_timeout_ms,
            wait_aof=o.wait_aof,
        )

    # -- append -------------------------------------------------------------------------------

    async def append(self, records: Sequence[Record]) -> list[AppendResult]:
        """Store ``records`` in order and say, per record, where (or that it is a duplicate).

        Durable when it returns to the extent Redis is configured (see the module
        documentation). Each chunk of up to :data:`CHUNK` records is stored atomically; a call
        interrupted by an outage is retried with the same token, so the records stored before
        the interruption are reported as stored, never twice and never as duplicates of
        themselves. Raises :class:`LogUnavailable` when Redis stays away longer than
        ``append_retry_s`` (then some of the records may be stored: resending is safe)."""
        if self._closed.is_set():
            raise LogUnavailable("the event log is closed")
        if not records:
            return []
        token = secrets.token_hex(8)
        keys = [rec.key for rec in records]
        results: list[AppendResult | None] = [None] * len(records)
        first: dict[str, int] = {}
        for i, key in enumerate(keys):
            if key in first:
                results[i] = AppendResult(key, None, True)
            else:
                first[key] = i
        todo = list(first.values())
        for start in range(0, len(todo), CHUNK):
            chunk = todo[start : start + CHUNK]
            args: list[str | bytes] = [token]
            for i in chunk:
                args += [keys[i], encode(records[i])]
            ids = await self._retrying(
                "append", functools.partial(self._run_script, args), self.append_retry_s
            )
            if len(ids) != len(chunk):
                raise LogUnavailable(f"unexpected reply from Redis append script: {ids!r}")
            for i, sid in zip(chunk, ids, strict=True):
                results[i] = AppendResult(keys[i], Offset(sid) if sid else None, not sid)
        return [r for r in results if r is not None]

    async def _run_script(self, args: list[str | bytes]) -> list[str]:
        """One script call (``args`` = token, key, body, ...) on one connection, followed on
        that same connection by ``WAIT``/``WAITAOF`` when asked for (both only count the
        writes of the connection they run on). Reloads the script once on ``NOSCRIPT``."""
        for attempt in (1, 2):
            if self._sha is None or attempt == 2:
                self._sha = as_text(await self._client.script_load(APPEND_LUA))
            pipe = self._client.pipeline(transaction=False)
            pipe.evalsha(self._sha, 2, self.stream, self.keys_hash, *args)
            if self.wait_aof:
                pipe.waitaof(1, self.wait_replicas, self.wait_timeout_ms)
            elif self.wait_replicas:
                pipe.wait(self.wait_replicas, self.wait_timeout_ms)
            replies = await pipe.execute(raise_on_error=False)
            reply = replies[0]
            if isinstance(reply, NoScriptError) and attempt == 1:
                continue  # Redis restarted (or SCRIPT FLUSH): load it again, once
            if isinstance(reply, Exception):
                raise reply
            if len(replies) > 1:
                self._check_confirmed(replies[1])
            return [as_text(x) for x in reply]
        raise AssertionError("unreachable")

    def _check_confirmed(self, reply: Any) -> None:
        """Log when ``WAIT``/``WAITAOF`` confirmed less than asked: the records are stored on
        the primary either way, so the append still succeeds."""
        if isinstance(reply, Exception):
            log.warning(
                "%s failed after an append: %s", "WAITAOF" if self.wait_aof else "WAIT", reply
            )
        elif self.wait_aof:
            local, replicas = (int(x) for x in reply)
            if local < 1 or replicas < self.wait_replicas:
                log.warning(
                    "WAITAOF: local fsync %s, %s of %s replicas within %s ms",
                    local,
                    replicas,
                    self.wait_replicas,
                    self.wait_timeout_ms,
                )
        elif int(reply) < self.wait_replicas:
            log.warning(
                "WAIT: %s of %s replicas confirmed within %s ms",
                reply,
                self.wait_replicas,
                self.wait_timeout_ms,
            )

    # -- reading ------------------------------------------------------------------------------

    async def head(self) -> Offset | None:
        """The id of the newest entry, or None when the stream is empty or missing."""

        async def op() -> Offset | None:
            rows = await self._client.xrevrange(self.stream, "+", "-", count=1)
            return Offset(as_text(rows[0][0])) if rows else None

        return await self._retrying("head", op, self.op_retry_s)

    async def appended_after(self, offset: Offset | None) -> int | None:
        """When the first record after ``offset`` was appended (epoch ms: an entry id's first
        part), or None."""
        start = "-" if offset is None else f"({offset}"

        async def op() -> int | None:
            rows = await self._client.xrange(self.stream, start, "+", count=1)
            return int(as_text(rows[0][0]).partition("-")[0]) if rows else None

        return await self._retrying("appended_after", op, self.op_retry_s)

    async def count(self) -> int:
        """How many records the stream holds."""
        n = await self._retrying("count", lambda: self._client.xlen(self.stream), self.op_retry_s)
        return int(n)

    async def tail(
        self, after: Offset | None = None
    ) -> AsyncGenerator[tuple[Offset, Record], None]:
        """Every record after ``after`` (a stream id; from the start when None), then new ones
        as any process appends them, until the log is closed. Outages are waited out."""
        async with contextlib.aclosing(self.tail_pages(after)) as pages:
            async for page in pages:
                for item in page:
                    yield item

    async def tail_pages(self, after: Offset | None = None) -> AsyncGenerator[Page, None]:
        """:meth:`tail`, a page (one stream read) at a time."""
        if after is not None and not _STREAM_ID.match(after):
            raise ValueError(f"not a Redis stream id: {after!r}")
        last = after or Offset("0-0")
        client: Redis = Redis.from_pool(
            BlockingConnectionPool.from_url(
                self.url,
                max_connections=1,
                timeout=None,
                socket_timeout=self.block_ms / 1000 + self._command_timeout_s,
                **self._conn_kwargs,
            )
        )
        self._tail_clients.add(client)
        closed = asyncio.ensure_future(self._closed.wait())
        read: asyncio.Future[Any] | None = None
        delay = self.backoff_min_s
        failing = False
        try:
            while not self._closed.is_set():
                read = asyncio.ensure_future(
                    client.xread({self.stream: last}, count=self.batch, block=self.block_ms)
                )
                await asyncio.wait((read, closed), return_when=asyncio.FIRST_COMPLETED)
                if not read.done():
                    return  # closed: the read is cancelled below
                try:
                    reply = read.result()
                except TRANSIENT as exc:
                    if not failing:
                        log.warning("tail of %s lost Redis (%s); reconnecting", self.stream, exc)
                        failing = True
                    await self._pause(delay)
                    delay = min(delay * 2, self.backoff_max_s)
                    continue
                except ResponseError as exc:
                    raise LogUnavailable(
                        f"Redis at {redact(self.url)} refused to read {self.stream}: {exc}"
                    ) from exc
                if failing:
                    log.warning("tail of %s is reading again after %s", self.stream, last)
                    failing = False
                delay = self.backoff_min_s
                page: list[tuple[Offset, Record]] = []
                read_any = False
                for sid_raw, fields in stream_entries(reply, self.stream):
                    read_any = True
                    sid = Offset(as_text(sid_raw))
                    last = sid  # resume after it even if it is skipped below
                    body = fields.get(b"b", fields.get("b"))
                    if body is None:
                        log.error("stream %s entry %s has no body; skipped", self.stream, sid)
                        continue
                    try:
                        record = decode(body)
                    except Exception as exc:  # RecordError, or anything a bad body provokes
                        log.error("stream %s entry %s skipped: %s", self.stream, sid, exc)
                        continue
                    page.append((sid, record))
                if read_any:
                    yield Page(page, last)
        finally:
            for fut in (read, closed):
                if fut is not None and not fut.done():
                    fut.cancel()
                    with contextlib.suppress(asyncio.CancelledError, RedisError, OSError):
                        await fut
            self._tail_clients.discard(client)
            # shielded: a tail cancelled while it closes still releases its connection
            await asyncio.shield(client.aclose())

    # -- snapshots ----------------------------------------------------------------------------

    def _snapshot_key(self, name: str) -> str:
        return f"{self.stream}:snapshot:{name}"

    async def save_snapshot(self, name: str, offset: Offset, body: bytes) -> None:
        """Keep ``body`` (a serialised fold) as covering the log up to ``offset``; replaces an
        earlier snapshot of the same name atomically."""
        key = self._snapshot_key(name)

        async def op() -> None:
            await self._client.hset(key, mapping={"o": offset, "b": body})

        await self._retrying("save_snapshot", op, self.append_retry_s)

    async def load_snapshot(self, name: str) -> tuple[Offset, bytes] | None:
        """The ``(offset, body)`` last saved under ``name``, or None."""
        key = self._snapshot_key(name)

        async def op() -> tuple[Offset, bytes] | None:
            offset, body = await self._client.hmget(key, ["o", "b"])
            if offset is None or body is None:
                return None
            return Offset(as_text(offset)), body if isinstance(body, bytes) else body.encode()

        return await self._retrying("load_snapshot", op, self.op_retry_s)

    async def keys_with_prefix(self, prefix: str) -> list[str]:
        """See :class:`livetrack.store.base.KeyLookup`: an ``HSCAN`` of the idempotency hash
        (Redis walks the hash; only matching keys come back)."""
        if not prefix:
            raise ValueError("a key prefix must not be empty")
        pattern = re.sub(r"([*?\[\]\\])", r"\\\1", prefix) + "*"

        async def op() -> list[str]:
            return [
                as_text(k)
                async for k, _ in self._client.hscan_iter(self.keys_hash, pattern, count=10_000)
            ]

        return await self._retrying("keys_with_prefix", op, self.op_retry_s)

    async def stored(self, keys: Sequence[str]) -> dict[str, tuple[Offset, bytes]]:
        """See :class:`livetrack.store.base.StoredLookup`: the idempotency hash names each
        key's entry; the entries are read in one pipeline."""
        wanted = list(dict.fromkeys(keys))
        if not wanted:
            return {}

        async def op() -> dict[str, tuple[Offset, bytes]]:
            ids = await self._client.hmget(self.keys_hash, wanted)
            held = [
                (k, Offset(as_text(i))) for k, i in zip(wanted, ids, strict=True) if i is not None
            ]
            if not held:
                return {}
            pipe = self._client.pipeline(transaction=False)
            for _, sid in held:
                pipe.xrange(self.stream, sid, sid)
            out: dict[str, tuple[Offset, bytes]] = {}
            for (key, sid), rows in zip(held, await pipe.execute(), strict=True):
                if rows:
                    fields = rows[0][1]
                    body = fields.get(b"b", fields.get("b"))
                    if body is not None:
                        out[key] = (sid, body if isinstance(body, bytes) else body.encode())
            return out

        return await self._retrying("stored", op, self.op_retry_s)

    # -- leases ---------------------------------------------------------------------------------

    async def lease(self, name: str, holder: str, ttl_s: float) -> bool:
        """See :class:`livetrack.store.base.Leases`: one key per lease beside the stream,
        taken or renewed atomically by a script, expiring on its own."""
        key, ms = f"{self.stream}:lease:{name}", max(1, int(ttl_s * 1000))

        async def op() -> bool:
            got = await self._client.eval(LEASE_LUA, 1, key, holder, ms)
            return bool(got)

        return await self._retrying("lease", op, self.op_retry_s)

    async def release(self, name: str, holder: str) -> None:
        key = f"{self.stream}:lease:{name}"

        async def op() -> None:
            await self._client.eval(RELEASE_LUA, 1, key, holder)

        await self._retrying("release", op, self.op_retry_s)
