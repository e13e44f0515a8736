"""One process runs the native readers: processes sharing a log hold a lease for it, and a
standby takes over when the holder stops, from the log, with nothing lost or stored twice."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from conftest import PATIENCE_S
from test_readers import T10, Rt, event, rr_event, stored_reads, until

from livetrack.ingest.decoders.simulate import DecoderSimulator, make_demo_reads
from livetrack.ingest.readers import LEASE, ReaderManager
from livetrack.store.base import EventLog, Leases
from livetrack.store.redis import RedisEventLog
from livetrack.store.sqlite import SqliteEventLog

Opener = Callable[[], EventLog]
FAST = {"backoff_initial": 0.05}


@pytest.fixture(params=["sqlite", "redis"])
async def open_log(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Opener]:
    """Opens logs on one storage, as separate processes would; all closed afterwards."""
    opened: list[EventLog] = []
    if request.param == "sqlite":

        def make() -> EventLog:
            return SqliteEventLog(tmp_path / "log.db")

    else:
        base: str = request.getfixturevalue("redis_url")
        url = f"{base}{'&' if '?' in base else '?'}stream=livetrack:lease:{uuid.uuid4().hex}"

        def make() -> EventLog:
            return RedisEventLog.from_url(url)

    def open_one() -> EventLog:
        log = make()
        opened.append(log)
        return log

    try:
        yield open_one
    finally:
        for log in opened:
            await log.close()


async def test_only_the_lease_holder_reads_and_a_standby_takes_over_when_it_stops(
    open_log: Opener,
) -> None:
    reads = make_demo_reads("raceresult", 40, start_ms=T10, gun=False)
    sim = DecoderSimulator("raceresult", reads, tz=event().tz, interval_s=0.05)
    port = await sim.start()
    ev = rr_event(port)
    first = ReaderManager(Rt(ev, open_log()), connector_options=FAST, lease_ttl_s=1.0)
    second = ReaderManager(Rt(ev, open_log()), connector_options=FAST, lease_ttl_s=1.0)
    try:
        await first.start()
        await second.start()
        assert first.leading and not second.leading
        assert second.health()[0]["state"] == "standby"
        await until(lambda: first.health()[0]["stored"] >= 10)
        assert sim.connections == 1  # the standby never connected

        await first.stop()  # a clean stop gives the lease up
        await until(lambda: second.leading)
        await until(lambda: second.health()[0]["state"] == "connected")
        assert first.health()[0]["state"] == "stopped"
        await until(lambda: sim.finished.is_set())
        log = second.rt.log
        deadline = asyncio.get_running_loop().time() + PATIENCE_S
        while len(stored := await stored_reads(log)) < len(reads):
            assert asyncio.get_running_loop().time() < deadline, f"{len(stored)} stored"
            await asyncio.sleep(0.05)
        assert sorted(r.seq or 0 for r in stored) == list(range(1, len(reads) + 1))
    finally:
        await first.stop()
        await second.stop()
        await sim.close()


async def test_a_holder_that_stops_renewing_loses_the_readers_to_a_standby(
    open_log: Opener,
) -> None:
    reads = make_demo_reads("raceresult", 20, start_ms=T10, gun=False)
    sim = DecoderSimulator("raceresult", reads, tz=event().tz, interval_s=0.01)
    port = await sim.start()
    crashed = open_log()
    assert isinstance(crashed, Leases)
    # a process that took the lease and then died: nobody renews it, nobody gives it up
    assert await crashed.lease(LEASE, "crashed-process", 0.6)
    standby = ReaderManager(Rt(rr_event(port), open_log()), connector_options=FAST, lease_ttl_s=0.6)
    try:
        await standby.start()
        assert not standby.leading and sim.connections == 0
        await until(lambda: standby.leading)  # within about a time to live
        await until(lambda: standby.health()[0]["stored"] == len(reads))
        stored = await stored_reads(standby.rt.log)
        assert sorted(r.seq or 0 for r in stored) == list(range(1, len(reads) + 1))
    finally:
        await standby.stop()
        await sim.close()
