"""The connection side of the Redis event log: pools, the first contact, bounded retries.

:class:`RedisClient` holds what every operation of :class:`livetrack.store.redis.RedisEventLog`
shares: its settings, one pooled client for commands, the set of tails' own clients, and the
policy for an outage (a transient error is retried with capped exponential backoff until a
budget runs out, then reported as :class:`LogUnavailable` naming the URL without its password).
The operations themselves (append, tail, snapshots, lookups, leases) are in ``redis.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import (
    ConnectionError as RedisConnectionError,
)
from redis.exceptions import (
    ReadOnlyError,
    RedisError,
    ResponseError,
    TryAgainError,
)
from redis.exceptions import (
    TimeoutError as RedisTimeoutError,
)

from livetrack.store.base import LogUnavailable
from livetrack.store.redis_wire import APPEND_LUA, as_text, redact

log = logging.getLogger("livetrack.store")

DEFAULT_STREAM: Final = "livetrack:events"

_T = TypeVar("_T")

#: Errors after which the same command may succeed once Redis is back (a restart, a failover,
#: a dataset still loading). ``BusyLoadingError`` is a ``ConnectionError``.
TRANSIENT: Final = (RedisConnectionError, RedisTimeoutError, ReadOnlyError, TryAgainError, OSError)


class RedisClient:
    """Settings, connections and the retry policy of one stream's log (see the subclass)."""

    def __init__(
        self,
        url: str,
        stream: str = DEFAULT_STREAM,
        *,
        wait_replicas: int = 0,
        wait_timeout_ms: int = 1000,
        wait_aof: bool = False,
        append_retry_s: float = 10.0,
        op_retry_s: float = 2.0,
        connect_timeout_s: float = 2.0,
        command_timeout_s: float = 5.0,
        block_ms: int = 1000,
        batch: int = 5000,
        backoff_min_s: float = 0.1,
        backoff_max_s: float = 5.0,
        max_connections: int = 32,
    ) -> None:
        """``url`` is a redis-py URL without livetrack's own query parameters (see
        :meth:`from_url`); nothing is contacted until the first operation."""
        if not stream:
            raise ValueError("the Redis stream name must not be empty")
        self.url = url
        self.stream = stream
        self.keys_hash = f"{stream}:keys"
        self.wait_replicas = wait_replicas
        self.wait_timeout_ms = wait_timeout_ms
        self.wait_aof = wait_aof
        self.append_retry_s = append_retry_s
        self.op_retry_s = op_retry_s
        self.block_ms = block_ms
        self.batch = batch
        self.backoff_min_s = backoff_min_s
        self.backoff_max_s = backoff_max_s
        self._conn_kwargs: dict[str, Any] = {
            "socket_connect_timeout": connect_timeout_s,
            "retry": Retry(NoBackoff(), 0),  # retries are ours: bounded, logged, idempotent
        }
        self._command_timeout_s = command_timeout_s
        self._client: Redis = Redis.from_pool(
            BlockingConnectionPool.from_url(
                url,
                max_connections=max_connections,
                timeout=None,
                socket_timeout=command_timeout_s,
                **self._conn_kwargs,
            )
        )
        self._sha: str | None = None
        self._connected = False
        self._connect_lock = asyncio.Lock()
        self._closed = asyncio.Event()
        self._tail_clients: set[Redis] = set()

    # -- connection ---------------------------------------------------------------------------

    def _unavailable(self, exc: BaseException) -> LogUnavailable:
        reason = str(exc) or type(exc).__name__
        return LogUnavailable(f"cannot reach Redis at {redact(self.url)}: {reason}")

    async def connect(self) -> None:
        """Check that Redis answers and load the append script; raise :class:`LogUnavailable`
        at once (no retry) when it cannot be reached. Idempotent; other operations call it."""
        if self._connected:
            return
        if self._closed.is_set():
            raise LogUnavailable("the event log is closed")
        async with self._connect_lock:
            if self._connected:
                return
            try:
                await self._client.ping()
                if self.wait_aof and not await self._client.command_list(pattern="waitaof"):
                    raise LogUnavailable(
                        f"Redis at {redact(self.url)} has no WAITAOF (needs Redis 7.2+);"
                        " drop wait_aof from the URL or upgrade Redis"
                    )
                self._sha = as_text(await self._client.script_load(APPEND_LUA))
            except LogUnavailable:
                raise
            except (RedisError, OSError) as exc:
                raise self._unavailable(exc) from exc
            self._connected = True

    async def _retrying(self, what: str, op: Callable[[], Awaitable[_T]], budget_s: float) -> _T:
        """Run ``op``; on a transient error retry with capped exponential backoff until
        ``budget_s`` seconds have passed since the first failure, then raise LogUnavailable."""
        await self.connect()
        loop = asyncio.get_running_loop()
        deadline: float | None = None
        delay = self.backoff_min_s
        while True:
            if self._closed.is_set():
                raise LogUnavailable("the event log is closed")
            try:
                return await op()
            except TRANSIENT as exc:
                now = loop.time()
                if deadline is None:
                    deadline = now + budget_s
                    log.warning("Redis %s failed (%s); retrying", what, exc)
                if now >= deadline:
                    raise self._unavailable(exc) from exc
                await self._pause(min(delay, max(0.0, deadline - now)))
                delay = min(delay * 2, self.backoff_max_s)
            except ResponseError as exc:
                raise LogUnavailable(f"Redis at {redact(self.url)} refused {what}: {exc}") from exc

    async def _pause(self, seconds: float) -> None:
        """Sleep ``seconds``, or less if the log is closed meanwhile."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closed.wait(), seconds)

    # -- lifecycle ----------------------------------------------------------------------------

    async def close(self) -> None:
        """End running tails and release every connection; safe to call more than once."""
        if self._closed.is_set():
            return
        self._closed.set()
        for _ in range(100):  # tails close their own client as they end
            if not self._tail_clients:
                break
            await asyncio.sleep(0.01)
        await asyncio.shield(self._client.aclose())
