"""ReaderManager and its pure parts: conversion, gun markers, clock estimate, resume, health."""

from __future__ import annotations

import asyncio
import itertools
import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import PATIENCE_S
from eventfiles import MILE, course, event_file, header, points, race

from livetrack.domain.event import Event, load_event_text
from livetrack.domain.records import ChipRead, GunStart, Record
from livetrack.ingest.decoders import CLOCK_UNSET, DecodedRead
from livetrack.ingest.decoders.raceresult import file_seq
from livetrack.ingest.decoders.simulate import DecoderSimulator, make_demo_reads
from livetrack.ingest.readers import (
    OFFSET_WARN_MS,
    ReaderChannel,
    SeqIndex,
    gun_races,
    resume_point,
)
from livetrack.service.readers import ReaderManager
from livetrack.store.base import AppendResult, EventLog
from livetrack.store.sqlite import SqliteEventLog

BASE = event_file(
    header("rd", "Readers"),
    course("mile", MILE),
    course("fun", [("fstart", "Fun start", 0), ("finish", "Finish", 2000)]),
    race("mile", "Mile", "mile", start="2026-06-14T10:00:00"),
    race("team", "Team", "mile", start="2026-06-14T10:30:00"),
    race("fun", "Fun", "fun"),
    points("start", "fstart", "finish"),
)

T10 = int(datetime(2026, 6, 14, 9, 0, tzinfo=UTC).timestamp() * 1000)  # 10:00 in London


def event(readers: str = "") -> Event:
    return load_event_text(BASE + readers)


READERS = """
[[reader]]
id = "rr-start"
protocol = "raceresult"
point = "start"
host = "127.0.0.1"
port = 3601

[[reader]]
id = "fun-start"
protocol = "ctp01"
point = "fstart"
listen = true

[[reader]]
id = "fin"
protocol = "ipico"
point = "finish"
host = "127.0.0.1"
port = 10000
clock_offset_ms = 2500
"""


def dr(chip: str, t: int, seq: int | None = None, **kw: object) -> DecodedRead:
    return DecodedRead(chip=chip, time_ms=t, seq=seq, source="box", **kw)  # type: ignore[arg-type]


# -- conversion --------------------------------------------------------------------------------


def test_reads_keep_reader_point_and_protocol_seq_in_connect_mode() -> None:
    ev = event(READERS)
    ch = ReaderChannel(ev, ev.readers["rr-start"])
    conv = ch.convert([dr("A1", T10 + 5, 7), dr("A2", T10 + 9, 8)], T10 + 100)
    assert conv.problems == []
    assert conv.records == [
        ChipRead("rr-start", "start", "A1", T10 + 5, 7, T10 + 100),
        ChipRead("rr-start", "start", "A2", T10 + 9, 8, T10 + 100),
    ]
    assert conv.records[0].key == "read:rr-start:7"


def test_listen_mode_keeps_the_decoders_numbers_and_a_second_decoder_is_keyed_by_chip() -> None:
    """A listening reader is one decoder: its passing numbers key its reads as in connect
    mode. A second decoder sending to the same reader numbers its own way, so its reads are
    kept by chip and time (nothing collides) and the timer is told to give it a reader."""
    ev = event(READERS)
    ch = ReaderChannel(ev, ev.readers["fun-start"])
    [rec] = ch.convert([dr("A1", T10, 1)], T10).records
    assert isinstance(rec, ChipRead) and rec.seq == 1 and rec.key == "read:fun-start:1"
    other = DecodedRead(chip="B1", time_ms=T10 + 5, seq=1, source="box-2")
    [rec2] = ch.convert([other], T10 + 9).records
    assert isinstance(rec2, ChipRead) and rec2.seq is None
    assert rec2.key == f"read:fun-start:B1:{T10 + 5}"
    assert "second decoder (box-2, besides box)" in ch.health(T10)["problems"][-1]["detail"]


def test_gun_marker_starts_the_only_race_at_its_point() -> None:
    ev = event(READERS)
    ch = ReaderChannel(ev, ev.readers["fun-start"])
    conv = ch.convert([dr("", T10 + 123, 4, kind="gun")], T10 + 200)
    assert conv.records == [GunStart("fun", T10 + 123, "", "fun-start#4", "reader:fun-start")]


def test_gun_marker_picks_the_race_scheduled_nearest() -> None:
    ev = event(READERS)
    ch = ReaderChannel(ev, ev.readers["rr-start"])
    conv = ch.convert([dr("", T10 + 30 * 60_000 + 400, 9, kind="gun")], T10 + 30 * 60_000 + 500)
    [gun] = conv.records
    assert isinstance(gun, GunStart)
    assert (gun.race, gun.time_ms, gun.id) == ("team", T10 + 30 * 60_000 + 400, "rr-start#9")


def test_gun_marker_far_from_any_schedule_is_a_problem_not_a_guess(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ev = event(READERS)
    ch = ReaderChannel(ev, ev.readers["rr-start"])
    with caplog.at_level(logging.WARNING, "livetrack.readers"):
        conv = ch.convert([dr("", T10 + 3 * 3600_000, 3, kind="gun")], T10 + 3 * 3600_000)
    assert conv.records == []
    assert len(conv.problems) == 1 and "mile, team" in conv.problems[0]
    assert "rr-start" in caplog.text and "fire the gun by hand" in caplog.text
    [problem] = ch.health(T10)["problems"]
    assert "not applied" in problem["detail"]


def test_gun_races_without_schedules_is_ambiguous() -> None:
    text = BASE.replace('start = "2026-06-14T10:00:00"\n', "").replace(
        'start = "2026-06-14T10:30:00"\n', ""
    )
    ev = load_event_text(text + READERS)
    races, why = gun_races(ev, ev.readers["rr-start"], T10)
    assert races == [] and "mile, team" in why
    assert gun_races(ev, ev.readers["fin"], T10) == ([], "no race starts at timing point finish")


def test_gun_time_gets_the_configured_clock_offset() -> None:
    ev = event(READERS.replace('point = "finish"', 'point = "fstart"'))
    ch = ReaderChannel(ev, ev.readers["fin"])
    [gun] = ch.convert([dr("", T10, None, kind="gun")], T10).records
    assert isinstance(gun, GunStart) and gun.time_ms == T10 + 2500


# -- clock -------------------------------------------------------------------------------------


def test_clock_offset_estimate_is_from_the_fastest_deliveries_and_warns_beyond_a_second(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ev = event(READERS)
    ch = ReaderChannel(ev, ev.readers["rr-start"])
    # decoder 4 s behind the server; one batch delayed by a minute (a fetched backlog)
    for i in range(9):
        delay = 60_000 if i == 4 else 0
        ch.convert([dr("A", T10 + i * 1000, i + 1)], T10 + i * 1000 + 4000 + delay)
    with caplog.at_level(logging.WARNING, "livetrack.readers"):
        ch.convert([dr("A", T10 + 9000, 10)], T10 + 13_000 + 3)
    h = ch.health(T10 + 13_000)
    assert h["clock_offset_ms"] == 4000
    assert h["clock"] == "offset"
    assert "+4000 ms" in h["clock_warning"]


def test_configured_offset_that_matches_the_estimate_is_ok() -> None:
    ev = event(READERS)
    ch = ReaderChannel(ev, ev.readers["fin"])  # clock_offset_ms = 2500
    for i in range(5):
        ch.convert([dr("A", T10 + i * 1000)], T10 + i * 1000 + 2500 + OFFSET_WARN_MS // 2)
    h = ch.health(T10)
    assert h["clock"] == "ok" and h["clock_warning"] == ""
    assert h["configured_offset_ms"] == 2500


def test_unset_clock_is_reported_and_reads_are_rebased_on_the_server_clock(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ev = event(READERS)
    ch = ReaderChannel(ev, ev.readers["fin"])  # clock_offset_ms = 2500
    year2000 = int(datetime(2000, 1, 1, 0, 12, tzinfo=UTC).timestamp() * 1000)
    received = T10 + 700
    with caplog.at_level(logging.WARNING, "livetrack.readers"):
        first = ch.convert(
            [
                dr("A", year2000, flags=(CLOCK_UNSET,)),
                dr("B", year2000 + 400, flags=(CLOCK_UNSET,)),
            ],
            received,
        )
        later = ch.convert([dr("C", year2000 + 5000, flags=(CLOCK_UNSET,))], T10 + 90_000)
    assert "clock is unset" in caplog.text and "fin" in caplog.text
    times = [r.time_ms for r in first.records + later.records if isinstance(r, ChipRead)]
    # anchored on the newest read of the first batch; the fold adds the configured offset
    assert [t + 2500 for t in times] == [received - 400, received, received + 4600]
    h = ch.health(T10)
    assert h["clock"] == "unset" and "set its time" in h["clock_warning"]
    assert h["untrusted_time"] == 3


def test_unset_clock_reads_from_a_file_are_refused() -> None:
    ev = event(READERS)
    ch = ReaderChannel(ev, ev.readers["fin"])
    conv = ch.convert([dr("A", T10, flags=(CLOCK_UNSET,))], None)
    assert conv.records == [] and "clock unset" in conv.problems[0]


def test_a_plausible_date_far_from_the_event_is_untrusted_too() -> None:
    ev = event(READERS)
    ch = ReaderChannel(ev, ev.readers["rr-start"])
    assert ch.trusted(dr("A", T10 + 3600_000), None)
    assert not ch.trusted(dr("A", T10 - 400 * 86_400_000), T10)


# -- resume ------------------------------------------------------------------------------------


def test_resume_point_contiguous_and_highest() -> None:
    assert resume_point([1, 2, 3, 5, 6], contiguous=True) == (3, {5, 6})
    assert resume_point([2, 3], contiguous=True) == (None, {2, 3})
    assert resume_point([], contiguous=True) == (None, set())
    assert resume_point([4, 9, 2], contiguous=False) == (9, set())


def test_seq_index_counts_reads_and_reader_guns() -> None:
    index = SeqIndex(["rr"])
    records: list[Record] = [
        ChipRead("rr", "start", "A", T10, 1),
        GunStart("mile", T10, "", "rr#2", "reader:rr"),
        ChipRead("rr", "start", "B", T10, None),
        ChipRead("other", "start", "B", T10, 3),
        GunStart("mile", T10, "", "rr#4", "timer"),
    ]
    for r in records:
        index.observe(r)
    assert index.seqs == {"rr": {1, 2}}


# -- the manager over TCP ------------------------------------------------------------------------


class Rt:
    """The manager's view of the runtime: the event and a real SQLite log."""

    def __init__(self, ev: Event, log: EventLog) -> None:
        self._event = ev
        self._log = log

    @property
    def event(self) -> Event:
        return self._event

    @property
    def log(self) -> EventLog:
        return self._log

    async def append(self, records: list[Record]) -> list[AppendResult]:
        return await self._log.append(records)


async def stored_reads(log: EventLog) -> list[ChipRead]:
    head = await log.head()
    out: list[ChipRead] = []
    if head is None:
        return out
    tail = log.tail(None)
    async for offset, rec in tail:
        if isinstance(rec, ChipRead):
            out.append(rec)
        if offset == head:
            break
    await tail.aclose()  # type: ignore[attr-defined]
    return out


async def until(cond: object, timeout: float = PATIENCE_S) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():  # type: ignore[operator]
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


def rr_event(port: int) -> Event:
    return event(
        f'\n[[reader]]\nid = "rr"\nprotocol = "raceresult"\npoint = "finish"\n'
        f'host = "127.0.0.1"\nport = {port}\n'
    )


async def test_manager_resumes_after_restart_from_the_stored_passings(tmp_path: Path) -> None:
    reads = make_demo_reads("raceresult", 20, start_ms=T10, gun=False)
    sim = DecoderSimulator("raceresult", reads, tz=event().tz, interval_s=0.002)
    log = SqliteEventLog(tmp_path / "log.db")
    try:
        port = await sim.start()
        ev = rr_event(port)
        first = ReaderManager(Rt(ev, log), connector_options={"backoff_initial": 0.05})
        await first.start()
        await until(lambda: first.health()[0]["stored"] == 20)
        h = first.health()[0]
        await first.stop()
        assert h["state"] == "connected" and h["connected"] and h["connections"] == 1
        assert h["reads_per_minute"] == 20 and h["last_seq"] == 20
        assert h["last_read_ms"] == max(r.time_ms for r in reads)
        assert h["sources"] == ["SIM-1"]
        assert first.health()[0]["state"] == "stopped"
        fetched_before = list(sim.fetch_requests)

        second = ReaderManager(Rt(ev, log), connector_options={"backoff_initial": 0.05})
        await second.start()
        assert second.channels["rr"].stats.last_stored_seq == 20  # read back from the log
        await until(lambda: second.health()[0]["state"] == "connected")
        await asyncio.sleep(0.2)
        await second.stop()
        # nothing was fetched again and nothing stored twice
        assert sim.fetch_requests == fetched_before
        stored = await stored_reads(log)
        assert sorted(r.seq or 0 for r in stored) == list(range(1, 21))
    finally:
        await sim.close()
        await log.close()


async def test_a_new_passing_file_on_the_decoder_loses_no_read_across_a_drop_and_a_restart(
    tmp_path: Path,
) -> None:
    reads = make_demo_reads("raceresult", 40, start_ms=T10, gun=False)
    # the timer starts a new file after 20 passings (numbers restart at 1), and the
    # connection drops in the middle of the new file
    sim = DecoderSimulator(
        "raceresult", reads, tz=event().tz, interval_s=0.01, new_file_at=20, drop_after=30
    )
    log = SqliteEventLog(tmp_path / "log.db")
    try:
        ev = rr_event(await sim.start())
        first = ReaderManager(Rt(ev, log), connector_options={"backoff_initial": 0.05})
        await first.start()
        await until(lambda: first.health()[0]["stored"] >= len(reads))
        await first.stop()
        stored = await stored_reads(log)
        assert sorted((r.chip, r.time_ms) for r in stored) == sorted(
            (r.chip, r.time_ms) for r in reads
        )  # every read, none taken for a passing of the first file
        assert len({r.key for r in stored}) == len(reads)
        assert sim.drops_done == 1

        fetched = list(sim.fetch_requests)
        second = ReaderManager(Rt(ev, log), connector_options={"backoff_initial": 0.05})
        await second.start()
        # resumes after passing 20 of the second file, read back from the log
        assert second.channels["rr"].stats.last_stored_seq == file_seq(2, 20)
        await until(lambda: second.health()[0]["state"] == "connected")
        await asyncio.sleep(0.2)
        await second.stop()
        assert sim.fetch_requests == fetched  # nothing fetched again
        assert len(await stored_reads(log)) == len(reads)
    finally:
        await sim.close()
        await log.close()


async def test_malformed_line_is_logged_and_skipped_connection_stays(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    lines = [
        "058003000001;2026-06-14T10:00:01.000+01:00;1",
        "this is not a read",
        "058003000002;2026-06-14T10:00:02.500+01:00;1",
    ]
    connections = 0

    async def decoder(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        for line in lines:
            writer.write((line + "\r\n").encode())
            await writer.drain()
        await reader.read()  # stay connected until the connector leaves
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(decoder, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    log = SqliteEventLog(tmp_path / "log.db")
    ev = event(
        f'\n[[reader]]\nid = "gen"\nprotocol = "generic"\npoint = "finish"\n'
        f'host = "127.0.0.1"\nport = {port}\n'
    )
    manager = ReaderManager(Rt(ev, log))
    try:
        with caplog.at_level(logging.WARNING):
            await manager.start()
            await until(lambda: manager.health()[0]["stored"] == 2)
            h = manager.health()[0]
        assert h["errors"] == 1 and h["connected"] and connections == 1
        assert "gen: malformed input" in caplog.text and "this is not a read" in caplog.text
        assert [r.chip for r in await stored_reads(log)] == ["058003000001", "058003000002"]
    finally:
        await manager.stop()
        server.close()
        await server.wait_closed()
        await log.close()


async def test_unset_decoder_clock_over_tcp_is_reported_in_health(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    reads = make_demo_reads("ipico", 6, start_ms=T10, gun=False)
    sim = DecoderSimulator("ipico", reads, tz=event().tz, interval_s=0.002, clock_unset=True)
    log = SqliteEventLog(tmp_path / "log.db")
    try:
        port = await sim.start()
        ev = event(
            f'\n[[reader]]\nid = "ip"\nprotocol = "ipico"\npoint = "finish"\n'
            f'host = "127.0.0.1"\nport = {port}\n'
        )
        manager = ReaderManager(Rt(ev, log))
        with caplog.at_level(logging.WARNING):
            await manager.start()
            await until(lambda: manager.health()[0]["stored"] == 6)
            h = manager.health()[0]
            await manager.stop()
        assert h["clock"] == "unset" and h["untrusted_time"] == 6
        assert "clock looks unset" in caplog.text  # the connector's report
        assert "ip: decoder clock is unset" in caplog.text.replace("reader ip:", "ip:")
        stored = await stored_reads(log)
        # stored on the server clock, one second apart as the decoder saw them
        gaps = {b.time_ms - a.time_ms for a, b in itertools.pairwise(stored)}
        assert gaps == {1000}
        assert all(abs(r.time_ms - r.received_ms) < 60_000 for r in stored)
    finally:
        await sim.close()
        await log.close()


async def test_no_native_readers_means_nothing_runs(tmp_path: Path) -> None:
    log = SqliteEventLog(tmp_path / "log.db")
    try:
        manager = ReaderManager(Rt(event(), log))
        await manager.start()
        assert manager.health() == []
        await manager.stop()
    finally:
        await log.close()


async def test_a_decoder_that_numbers_its_reads_again_keeps_them_and_a_resend_is_not_doubled(
    tmp_path: Path,
) -> None:
    log = SqliteEventLog(tmp_path / "log.db")
    try:
        manager = ReaderManager(Rt(rr_event(9), log))  # never started: no socket needed here
        ch = manager.channels["rr"]
        before = [dr(f"C{n}", T10 + n * 1000, seq=n) for n in (1, 2, 3)]
        await manager.store(ch, before)
        # power cycled: its numbers start at 1 again, for other chips at later times
        after = [dr(f"D{n}", T10 + 60_000 + n * 1000, seq=n) for n in (1, 2)]
        await manager.store(ch, after)
        await manager.store(ch, after)  # and it sends them again after a reconnect
        await manager.store(ch, before[:1])  # a true resend of a read of the first run
        stored = await stored_reads(log)
        assert sorted(r.chip for r in stored) == ["C1", "C2", "C3", "D1", "D2"]
        assert len({r.key for r in stored}) == 5
        h = manager.health()[0]
        assert h["renumbered"] == 4 and h["stored"] == 5 and h["duplicates"] == 3
    finally:
        await log.close()
