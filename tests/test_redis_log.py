"""What only the Redis log does: outages, restarts, scripts, and its own URL options.

Every test talks to a real ``redis-server`` (a private one when it kills or restarts it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from conftest import PATIENCE_S, RedisServer, refused_port
from redis.asyncio import Redis
from redis.exceptions import RedisError

from livetrack.domain.records import ChipRead, Record, encode
from livetrack.store.base import AppendResult, LogUnavailable, Offset
from livetrack.store.redis import RedisEventLog, redact

WAIT_S = PATIENCE_S


def reads(n: int, start: int = 0, reader: str = "R1") -> list[Record]:
    return [
        ChipRead(reader, "finish", f"chip{i}", 1_700_000_000_000 + i, seq=i)
        for i in range(start, start + n)
    ]


def new_stream() -> str:
    return f"livetrack:test:{uuid.uuid4().hex}"


def with_query(url: str, **params: str) -> str:
    return url + ("&" if "?" in url else "?") + urlencode(params)


@pytest.fixture
async def make_log() -> AsyncIterator[Callable[..., RedisEventLog]]:
    """Opens ``RedisEventLog``s with quick backoff (closed after the test)."""
    opened: list[RedisEventLog] = []

    def make(url: str, stream: str = "", **kwargs: Any) -> RedisEventLog:
        kwargs.setdefault("backoff_max_s", 0.2)
        kwargs.setdefault("connect_timeout_s", 0.5)
        log = RedisEventLog(url, stream or new_stream(), **kwargs)
        opened.append(log)
        return log

    try:
        yield make
    finally:
        for log in opened:
            await log.close()
            await drop(log.url, log.stream)


async def drop(url: str, stream: str) -> None:
    """Delete a test stream's keys, if its Redis is still there (shared servers stay clean)."""
    client = Redis.from_url(url, socket_connect_timeout=0.5)
    try:
        keys = [k async for k in client.scan_iter(match=f"{stream}*")]
        if keys:
            await client.delete(*keys)
    except (OSError, RedisError):
        pass
    finally:
        await client.aclose()


async def entries(url: str, stream: str) -> list[tuple[str, str]]:
    """``(id, key)`` of every entry in ``stream``, read directly."""
    client = Redis.from_url(url)
    try:
        rows: Any = await client.xrange(stream)
    finally:
        await client.aclose()
    return [(sid.decode(), fields[b"k"].decode()) for sid, fields in rows]


class Follower:
    """A task collecting ``log.tail(after)`` until it has ``n`` items or is stopped."""

    def __init__(self, log: RedisEventLog, n: int, after: Offset | None = None) -> None:
        self.seen: list[tuple[Offset, Record]] = []
        self.log, self.n, self.after = log, n, after
        self.progress = asyncio.Event()
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async with contextlib.aclosing(self.log.tail(self.after)) as it:
            async for item in it:
                self.seen.append(item)
                self.progress.set()
                if len(self.seen) == self.n:
                    return

    async def wait_for_count(self, count: int, timeout: float = WAIT_S) -> None:
        async def reached() -> None:
            while len(self.seen) < count and not self.task.done():
                self.progress.clear()
                await self.progress.wait()

        await asyncio.wait_for(reached(), timeout)

    async def stop(self) -> list[tuple[Offset, Record]]:
        if not self.task.done():
            self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        return self.seen


def assert_in_order_once(seen: list[tuple[Offset, Record]]) -> None:
    ids = [tuple(map(int, o.split("-"))) for o, _ in seen]
    assert ids == sorted(ids) and len(set(ids)) == len(ids), "offsets repeat or go backwards"
    keys = [r.key for _, r in seen]
    assert len(set(keys)) == len(keys), "a record was delivered twice"


# -- restarts -----------------------------------------------------------------------------------


async def test_the_script_is_reloaded_after_a_restart(
    redis_server: RedisServer, make_log: Callable[..., RedisEventLog]
) -> None:
    log = make_log(redis_server.url)
    first = await log.append(reads(3))
    redis_server.kill()  # SIGKILL: only what the AOF fsynced survives; the script cache does not
    redis_server.start()
    second = await log.append(reads(3, start=2))
    assert [r.duplicate for r in second] == [True, False, False]  # the key index survived
    assert await log.count() == 5
    assert await log.head() == second[-1].offset
    stored = await entries(redis_server.url, log.stream)
    assert [sid for sid, _ in stored] == [r.offset for r in first + second if r.offset]

    client = Redis.from_url(redis_server.url)
    try:
        await client.script_flush()  # the same without a restart
    finally:
        await client.aclose()
    third = await log.append(reads(2, start=4))
    assert [r.duplicate for r in third] == [True, False]
    assert await log.count() == 6


async def test_a_tail_resumes_after_a_restart_without_gaps_or_repeats(
    redis_server: RedisServer, make_log: Callable[..., RedisEventLog]
) -> None:
    writer = make_log(redis_server.url)
    reader = make_log(redis_server.url, writer.stream, batch=2)  # several XREADs per catch-up
    await writer.append(reads(5))
    follower = Follower(reader, 12)
    try:
        await follower.wait_for_count(5)
        redis_server.kill()
        await asyncio.sleep(0.3)  # the tail notices and backs off
        assert not follower.task.done(), "the tail must wait out an outage, not end"
        redis_server.start()
        for i in range(5, 12):  # one by one, the tail blocking in between
            await writer.append(reads(1, start=i))
        await follower.wait_for_count(12)
    finally:
        seen = await follower.stop()
    assert [r for _, r in seen] == reads(12)
    assert_in_order_once(seen)
    assert [sid for sid, _ in await entries(redis_server.url, writer.stream)] == [
        o for o, _ in seen
    ]


async def test_appends_during_an_outage_are_stored_once_or_refused(
    redis_server: RedisServer, make_log: Callable[..., RedisEventLog]
) -> None:
    patient = make_log(redis_server.url, append_retry_s=WAIT_S)
    hasty = make_log(redis_server.url, patient.stream, append_retry_s=0.3)
    tailer = make_log(redis_server.url, patient.stream)
    await patient.append(reads(2))
    assert await hasty.head() is not None  # both have met Redis before it goes away
    follower = Follower(tailer, 10_000)
    try:
        await follower.wait_for_count(2)
        redis_server.kill()
        batches = [reads(3, start=10 + 3 * i, reader=f"R{i}") for i in range(8)]
        started = time.monotonic()
        patient_calls = [asyncio.create_task(patient.append(b)) for b in batches[:6]]
        with pytest.raises(LogUnavailable, match=re.escape(redis_server.url)):
            await hasty.append(batches[6])
        assert time.monotonic() - started < 3.0, "a refused append must not hang"
        await asyncio.sleep(0.2)
        redis_server.start()
        outcomes = await asyncio.wait_for(
            asyncio.gather(*patient_calls, return_exceptions=True), 2 * WAIT_S
        )
        acknowledged: list[AppendResult] = []
        for batch, outcome in zip(batches, outcomes, strict=False):
            if isinstance(outcome, BaseException):
                assert isinstance(outcome, LogUnavailable), outcome
                continue
            assert [r.key for r in outcome] == [r.key for r in batch]
            assert not any(r.duplicate for r in outcome)
            acknowledged += outcome
        assert acknowledged, "Redis came back well within the retry budget"
        resent = await hasty.append(batches[6] + batches[7])  # resending is always safe
        assert not any(r.duplicate for r in resent)
        stored = await entries(redis_server.url, patient.stream)
        keys = [k for _, k in stored]
        assert len(keys) == len(set(keys)), "a key was stored twice"
        by_key = {k: sid for sid, k in stored}
        for res in acknowledged + resent:
            assert by_key[res.key] == res.offset, f"acknowledged {res.key} is not in the stream"
        await follower.wait_for_count(len(stored))
    finally:
        seen = await follower.stop()
    assert [o for o, _ in seen] == [sid for sid, _ in stored]
    assert_in_order_once(seen)


async def test_a_retried_call_reports_its_own_records_as_stored(
    redis_url: str, make_log: Callable[..., RedisEventLog]
) -> None:
    """When a reply is lost and the same call is sent again, its records are not reported as
    duplicates of themselves; another call with the same key still is a duplicate."""
    log = make_log(redis_url)
    await log.connect()
    rec = reads(1)[0]
    first = await log._run_script(["token-a", rec.key, encode(rec)])
    again = await log._run_script(["token-a", rec.key, encode(rec)])
    other = await log._run_script(["token-b", rec.key, encode(rec)])
    assert first == again and first[0] != ""
    assert other == [""]
    assert await log.count() == 1


# -- unreachable at start -----------------------------------------------------------------------


async def test_an_unreachable_redis_at_start_is_a_clear_error() -> None:
    with refused_port() as nothing:  # nothing listens there
        url = f"redis://127.0.0.1:{nothing.getsockname()[1]}/0"
        log = RedisEventLog.from_url(url)
        try:
            started = time.monotonic()
            with pytest.raises(LogUnavailable, match=rf"^cannot reach Redis at {re.escape(url)}: "):
                await log.head()
            with pytest.raises(LogUnavailable, match=re.escape(url)):
                await log.append(reads(1))
            assert time.monotonic() - started < 3.0
        finally:
            await log.close()


async def test_a_password_never_appears_in_errors() -> None:
    with refused_port() as nothing:
        port = nothing.getsockname()[1]
        url = f"redis://user:s3cret@127.0.0.1:{port}/0?stream=e"
        assert redact(url) == f"redis://user:***@127.0.0.1:{port}/0?stream=e"
        log = RedisEventLog.from_url(url)
        try:
            with pytest.raises(LogUnavailable) as caught:
                await log.head()
        finally:
            await log.close()
    assert "s3cret" not in str(caught.value) and "***" in str(caught.value)


async def test_a_tail_waits_for_redis_to_come_up(
    redis_server: RedisServer, make_log: Callable[..., RedisEventLog]
) -> None:
    redis_server.stop()
    log = make_log(redis_server.url)
    follower = Follower(log, 2)
    try:
        await asyncio.sleep(0.4)
        assert not follower.task.done(), "a tail keeps retrying instead of failing"
        redis_server.start()
        await log.append(reads(2))
        await follower.wait_for_count(2)
    finally:
        seen = await follower.stop()
    assert [r for _, r in seen] == reads(2)


# -- reading ------------------------------------------------------------------------------------


async def test_an_undecodable_entry_is_logged_and_skipped(
    redis_url: str, make_log: Callable[..., RedisEventLog], caplog: pytest.LogCaptureFixture
) -> None:
    log = make_log(redis_url)
    await log.append(reads(1))
    client = Redis.from_url(redis_url)
    try:
        bad: list[Any] = [
            await client.xadd(log.stream, {"k": "x1", "b": "not json"}),
            await client.xadd(log.stream, {"k": "x2", "b": '{"t":"alien","v":1}'}),
            await client.xadd(log.stream, {"k": "x3"}),
            await client.xadd(
                log.stream, {"k": "x4", "b": '{"t":"participant","v":1,"bib":"1","chips":5}'}
            ),
        ]
    finally:
        await client.aclose()
    await log.append(reads(1, start=1))
    with caplog.at_level(logging.ERROR, logger="livetrack.store"):
        follower = Follower(log, 2)
        try:
            await follower.wait_for_count(2)
        finally:
            seen = await follower.stop()
    assert [r for _, r in seen] == reads(2)
    logged = " ".join(r.getMessage() for r in caplog.records if r.name == "livetrack.store")
    for sid in bad:
        assert sid.decode() in logged


async def test_tail_from_a_malformed_offset_is_refused(
    redis_url: str, make_log: Callable[..., RedisEventLog]
) -> None:
    log = make_log(redis_url)
    with pytest.raises(ValueError, match="stream id"):
        async with contextlib.aclosing(log.tail("17")) as it:
            await anext(it)


async def test_close_ends_a_running_tail(
    redis_url: str, make_log: Callable[..., RedisEventLog]
) -> None:
    # close must not wait for the blocking read to time out: the block is long (60 s) and the
    # tail must end in a fraction of it (a loaded machine may take a few seconds, not 60)
    log = make_log(redis_url, block_ms=60_000)
    follower = Follower(log, 100)
    await log.append(reads(1))
    await follower.wait_for_count(1)
    started = time.monotonic()
    await log.close()
    await asyncio.wait_for(follower.task, 10.0)
    assert time.monotonic() - started < 10.0
    with pytest.raises(LogUnavailable, match="closed"):
        await log.head()


# -- options ------------------------------------------------------------------------------------


def test_from_url_takes_its_own_options_and_passes_the_rest_on() -> None:
    log = RedisEventLog.from_url(
        "redis://127.0.0.1:1/2?stream=%7Bheaton%7D:events&wait_replicas=1"
        "&wait_timeout_ms=250&wait_aof=true&socket_keepalive=true"
    )
    assert log.stream == "{heaton}:events"
    assert log.keys_hash == "{heaton}:events:keys"
    assert (log.wait_replicas, log.wait_timeout_ms, log.wait_aof) == (1, 250, True)
    assert log.url == "redis://127.0.0.1:1/2?socket_keepalive=true"
    assert RedisEventLog.from_url("redis://127.0.0.1:1").stream == "livetrack:events"
    with pytest.raises(ValueError, match="wait_replicas"):
        RedisEventLog.from_url("redis://127.0.0.1:1?wait_replicas=many")


async def test_wait_replicas_without_replicas_warns_but_keeps_the_records(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    log = RedisEventLog.from_url(
        with_query(redis_url, stream=new_stream(), wait_replicas="1", wait_timeout_ms="50")
    )
    try:
        with caplog.at_level(logging.WARNING, logger="livetrack.store"):
            results = await log.append(reads(2))
        assert not any(r.duplicate for r in results)
        assert await log.count() == 2
    finally:
        await log.close()
        await drop(redis_url, log.stream)
    assert any("WAIT: 0 of 1" in r.getMessage() for r in caplog.records)


async def test_wait_replicas_returns_once_a_replica_has_the_records(
    redis_server: RedisServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    primary = Redis.from_url(redis_server.url)
    try:  # start the full sync at once instead of after the default 5 s delay
        await primary.config_set("repl-diskless-sync-delay", 0)
    finally:
        await primary.aclose()
    folder = tmp_path / "replica"
    folder.mkdir()
    replica = RedisServer(
        folder, args=["--replicaof", "127.0.0.1", str(redis_server.port), "--appendonly", "no"]
    )
    replica.start()
    reader = Redis.from_url(replica.url)
    # WAIT gives up after wait_timeout_ms (and warns): generous, for a loaded machine
    log = RedisEventLog.from_url(
        with_query(
            redis_server.url, stream=new_stream(), wait_replicas="1", wait_timeout_ms="30000"
        )
    )
    try:
        deadline = time.monotonic() + WAIT_S
        while True:  # until the replica has synced with the primary
            with contextlib.suppress(OSError, RedisError):
                if (await reader.info("replication")).get("master_link_status") == "up":
                    break
            assert time.monotonic() < deadline, "the replica did not sync"
            await asyncio.sleep(0.05)
        with caplog.at_level(logging.WARNING, logger="livetrack.store"):
            for i in range(20):
                await log.append(reads(1, start=i))
                assert await reader.xlen(log.stream) == i + 1
        assert not [r for r in caplog.records if r.name == "livetrack.store"]
    finally:
        await log.close()
        await reader.aclose()
        replica.stop()


async def test_wait_aof_is_refused_at_start_where_redis_lacks_it(redis_url: str) -> None:
    client = Redis.from_url(redis_url)
    try:
        version = (await client.info("server"))["redis_version"]
    finally:
        await client.aclose()
    log = RedisEventLog.from_url(with_query(redis_url, stream=new_stream(), wait_aof="1"))
    try:
        if tuple(int(p) for p in str(version).split(".")[:2]) >= (7, 2):
            assert not (await log.append(reads(1)))[0].duplicate  # supported: it simply works
        else:
            with pytest.raises(LogUnavailable, match="WAITAOF"):
                await log.head()
    finally:
        await log.close()
        await drop(redis_url, log.stream)
