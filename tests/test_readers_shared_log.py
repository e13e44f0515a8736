"""Native readers on a log shared by several processes: one process runs them (it holds a
lease), a standby takes over when the holder stops, from the log, with nothing lost or stored
twice; and resume points are read from the stored keys, without decoding the log. Each test
runs on every backend of the EventLog contract suite (the ``open_log`` fixture)."""

from __future__ import annotations

import asyncio
import uuid

from conftest import PATIENCE_S, Opener
from test_readers import T10, Rt, event, rr_event, stored_reads, until

from livetrack.domain.records import ChipRead, GunStart
from livetrack.ingest.decoders.simulate import DecoderSimulator, make_demo_reads
from livetrack.ingest.readers import SeqIndex
from livetrack.service.readers import LEASE, ReaderManager, _from_keys, _scan
from livetrack.store.base import KeyLookup, Leases

FAST = {"backoff_initial": 0.05}


async def test_only_the_lease_holder_reads_and_a_standby_takes_over_when_it_stops(
    open_log: Opener,
) -> None:
    reads = make_demo_reads("raceresult", 40, start_ms=T10, gun=False)
    sim = DecoderSimulator("raceresult", reads, tz=event().tz, interval_s=0.05)
    port = await sim.start()
    ev = rr_event(port)
    first = ReaderManager(Rt(ev, open_log()), connector_options=FAST, lease_ttl_s=3.0)
    second = ReaderManager(Rt(ev, open_log()), connector_options=FAST, lease_ttl_s=3.0)
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
    assert await crashed.lease(LEASE, "crashed-process", 2.0)
    standby = ReaderManager(Rt(rr_event(port), open_log()), connector_options=FAST, lease_ttl_s=3.0)
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


async def test_resume_points_from_the_stored_keys_equal_those_from_reading_the_log(
    open_log: Opener,
) -> None:
    log = open_log()
    await log.append(
        [
            *(ChipRead("rr", "finish", f"C{n}", T10 + n, n) for n in (1, 2, 3, 5, 8)),
            ChipRead("rr", "finish", "C9", T10 + 9, None),  # listen mode: no number
            ChipRead("rr2", "finish", "C4", T10 + 4, 4),  # another reader
            ChipRead("r[*]", "finish", "C1", T10 + 1, 7),  # glob characters in an id
            GunStart("mile", T10, "", "rr#4", "reader:rr"),  # a reader's gun marker
            GunStart("fun", T10, "B", "rr#6", "reader:rr"),
            GunStart("mile", T10, "", str(uuid.uuid4()), "timer"),
        ]
    )
    readers = ["rr", "r[*]", "quiet"]
    from_keys, from_log = SeqIndex(readers), SeqIndex(readers)
    assert isinstance(log, KeyLookup)
    await _from_keys(log, from_keys)
    await _scan(log, from_log)
    assert (
        from_keys.seqs
        == from_log.seqs
        == {"rr": {1, 2, 3, 4, 5, 6, 8}, "r[*]": {7}, "quiet": set()}
    )
