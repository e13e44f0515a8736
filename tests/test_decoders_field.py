"""Timing hardware as it behaves in the field, each case played over a real socket against a
running :class:`ReaderManager`.

The peers here are small fakes written from the public descriptions of each protocol (not
livetrack's own simulator, except where the RACE RESULT simulator's timeline is needed):
a ChronoTrack controller that greets, takes settings and ``start`` and plays its lines from
the number asked for; a MYLAPS exporter that sends ``Pong`` and a ``Store`` message; an
IPICO reader that mixes its own ``ab`` records into the tag reads.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from eventfiles import MILE, course, event_file, header, points, race
from test_readers import Rt, stored_reads, until

from livetrack.domain.event import Event, load_event_text
from livetrack.domain.records import ChipRead
from livetrack.ingest.decoders.ipico import format_read
from livetrack.ingest.decoders.mylaps import format_store_record
from livetrack.ingest.decoders.simulate import DecoderSimulator
from livetrack.service.readers import ReaderManager
from livetrack.store.sqlite import SqliteEventLog

FAST = {"backoff_initial": 0.05}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ct_reader(rid: str = "ct", extra: str = "") -> str:
    """A ChronoTrack reader as a timer writes it: no ``listen``, a port of its own."""
    return (
        f'\n[[reader]]\nid = "{rid}"\nprotocol = "ctp01"\npoint = "finish"\n'
        f'host = "127.0.0.1"\nport = {free_port()}\n{extra}'
    )


def utc_ms(*fields: int) -> int:
    return int(datetime(*fields, tzinfo=UTC).timestamp() * 1000)


class Controller:
    """A ChronoTrack controller connecting to the scoring software, as CTP01 describes it:
    it greets ``<name>~<version>~CTP01``, reads the answer and its settings, answers
    ``getlocations`` and plays its lines from the first (``start``) or from line ``n``,
    inclusive (``start~<location>~<n>``)."""

    def __init__(self, location: str, lines: list[str]) -> None:
        self.location = location
        self.lines = lines  # CT01_33 lines numbered 1, 2, ...
        self.commands: list[str] = []
        self.sent: list[str] = []

    async def session(self, port: int, upto: int, *, gap_s: float = 0.0) -> None:
        """Connect, play the lines asked for up to line ``upto``, then hang up."""
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(b"Controller~3.1~CTP01\r\n")
            answer = (await reader.readline()).decode().strip()
            count = int(answer.split("~")[2])
            for _ in range(count):
                await reader.readline()
            while True:
                command = (await reader.readline()).decode().strip()
                self.commands.append(command)
                if command == "getlocations":
                    writer.write(f"ack~getlocations~{self.location}\r\n".encode())
                    await writer.drain()
                    continue
                if command.startswith("start"):
                    break
            fields = command.split("~")
            first = int(fields[2]) if len(fields) > 2 else 1
            writer.write(f"ack~start~{self.location}\r\n".encode())
            for line in self.lines[first - 1 : upto]:
                writer.write((line + "\r\n").encode())
                self.sent.append(line)
                await writer.drain()
                if gap_s:
                    await asyncio.sleep(gap_s)
            await asyncio.sleep(0.1)
        finally:
            writer.close()
            await writer.wait_closed()


def ct_event(readers: str, date: str = "2026-06-14") -> Event:
    return load_event_text(_BASE.replace("2026-06-14", date) + readers)


_BASE = event_file(
    header("fd", "Field"),
    course("mile", MILE),
    race("mile", "Mile", "mile"),
    points("start", "finish"),
)


def iso(ms: int) -> str:
    """A CTP01 ``iso`` time (hundredths) of epoch ``ms``, on the London clock."""
    from zoneinfo import ZoneInfo

    local = datetime.fromtimestamp(ms / 1000, ZoneInfo("Europe/London"))
    return local.strftime("%Y-%m-%dT%H:%M:%S.") + f"{local.microsecond // 10_000:02d}"


async def test_chronotrack_reader_listens_by_default_and_resumes_after_the_last_line_stored(
    tmp_path: Path,
) -> None:
    ev = ct_event(ct_reader())
    assert ev.readers["ct"].listen  # no `listen` in the file: a ChronoTrack reader listens
    t0 = utc_ms(2026, 6, 14, 9, 0)
    lines = [f"CT01_33~{n}~FIN~C{n:03d}~{iso(t0 + n * 1000)}~0~ED932A~1" for n in range(1, 16)]
    controller = Controller("FIN", lines)
    log = SqliteEventLog(tmp_path / "log.db")
    try:
        first = ReaderManager(Rt(ev, log), connector_options=FAST)
        await first.start()
        await until(lambda: first.health()[0]["state"] == "listening")
        port = first.health()[0]["port"]
        # nothing stored: everything the controller holds, from its first line
        await controller.session(port, upto=10)
        await until(lambda: first.health()[0]["stored"] == 10)
        assert controller.commands == ["start"]
        await first.stop()

        # a restart: the resume point comes back from the log, and the controller is asked
        # for the line after the last one stored, for each of its locations
        second = ReaderManager(Rt(ev, log), connector_options=FAST)
        await second.start()
        await until(lambda: second.health()[0]["state"] == "listening")
        port = second.health()[0]["port"]
        await controller.session(port, upto=15)
        await until(lambda: second.health()[0]["stored"] == 5)
        await second.stop()
        assert controller.commands == ["start", "getlocations", "start~FIN~11"]
        assert len(controller.sent) == 15  # no line played twice
        stored = await stored_reads(log)
        assert sorted(r.seq or 0 for r in stored) == list(range(1, 16))  # keyed by its numbers
        assert all(r.key == f"read:ct:{r.seq}" for r in stored)
    finally:
        await log.close()


async def test_chronotrack_comma_lines_and_iso_times_local_or_utc_across_the_clock_change(
    tmp_path: Path,
) -> None:
    # 25 October 2026: London's clocks go back from 02:00 BST to 01:00 GMT (01:00 UTC)
    readers = ct_reader("local") + ct_reader("utc", 'times = "utc"\n')
    ev = ct_event(readers, date="2026-10-25")
    assert (ev.readers["local"].times, ev.readers["utc"].times) == ("local", "utc")
    lines = [
        "CT01_33~1~FIN~A1~2026-10-25T00:30:00.00~0~ED932A~1",  # before the change
        "CT01_33~2~FIN~A2~2026-10-25T02:30:00.00~0~ED932A~1",  # after it
        "CT01_13,3,FIN,A3,2026-10-25T12:00:00.25,1,117F37,8",  # the comma-separated form
        "CT01_13,4,FIN,A4,15:54:48.90,1,117F37,8",  # a time of day, on the event's date
    ]
    log = SqliteEventLog(tmp_path / "log.db")
    try:
        manager = ReaderManager(Rt(ev, log), connector_options=FAST)
        await manager.start()
        await until(lambda: all(h["state"] == "listening" for h in manager.health()))
        for h in manager.health():
            await Controller("FIN", lines).session(h["port"], upto=len(lines))
        await until(lambda: all(h["stored"] == 4 for h in manager.health()))
        assert all(h["errors"] == 0 for h in manager.health())
        await manager.stop()
        got = {(r.reader, r.chip): r.time_ms for r in await stored_reads(log)}
    finally:
        await log.close()
    assert got == {
        # read as the event's local time: 00:30 BST is 23:30 UTC the day before
        ("local", "A1"): utc_ms(2026, 10, 24, 23, 30),
        ("local", "A2"): utc_ms(2026, 10, 25, 2, 30),
        ("local", "A3"): utc_ms(2026, 10, 25, 12, 0) + 250,
        ("local", "A4"): utc_ms(2026, 10, 25, 15, 54, 48) + 900,
        # read as UTC
        ("utc", "A1"): utc_ms(2026, 10, 25, 0, 30),
        ("utc", "A2"): utc_ms(2026, 10, 25, 2, 30),
        ("utc", "A3"): utc_ms(2026, 10, 25, 12, 0) + 250,
        ("utc", "A4"): utc_ms(2026, 10, 25, 15, 54, 48) + 900,
    }


async def test_a_replayed_history_gives_no_clock_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A controller that has run for a while plays its memory on `start` (lines made 40 to 10
    seconds ago, sent one by one), then its live lines: its clock is right, so no warning."""
    ev = ct_event(ct_reader())
    now = int(time.time() * 1000)
    history = [now - 40_000 + i * 1000 for i in range(30)]
    log = SqliteEventLog(tmp_path / "log.db")
    try:
        manager = ReaderManager(Rt(ev, log), connector_options=FAST)
        await manager.start()
        await until(lambda: manager.health()[0]["state"] == "listening")
        port = manager.health()[0]["port"]
        live_from = len(history) + 1
        lines = [f"CT01_33~{i + 1}~FIN~H{i}~{iso(t)}~0~ED932A~1" for i, t in enumerate(history)]
        controller = Controller("FIN", lines)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        with caplog.at_level(logging.WARNING, "livetrack.readers"):
            writer.write(b"Controller~3.1~CTP01\r\n")
            count = int((await reader.readline()).decode().split("~")[2])
            for _ in range(count + 1):  # the settings, then start
                await reader.readline()
            for line in controller.lines:  # the memory, a line at a time
                writer.write((line + "\r\n").encode())
                await writer.drain()
                await asyncio.sleep(0.01)
            for n in range(16):  # then live lines, each as it happens
                await asyncio.sleep(0.15)
                stamp = iso(int(time.time() * 1000))
                writer.write(f"CT01_33~{live_from + n}~FIN~L{n}~{stamp}~0~ED932A~1\r\n".encode())
                await writer.drain()
            await until(lambda: manager.health()[0]["stored"] == 46)
            h = manager.health()[0]
            writer.close()
            await writer.wait_closed()
            await manager.stop()
        assert h["clock"] == "ok" and h["clock_warning"] == ""
        assert h["clock_offset_ms"] is not None and abs(h["clock_offset_ms"]) < 500
        assert "clock is off" not in caplog.text
    finally:
        await log.close()


async def test_mylaps_exporter_gets_the_field_list_and_store_counters_key_its_passings(
    tmp_path: Path,
) -> None:
    ev = ct_event(
        '\n[[reader]]\nid = "ml"\nprotocol = "mylaps"\npoint = "finish"\nhost = "127.0.0.1"\n'
        f"listen = true\nport = {free_port()}\n"
    )
    from zoneinfo import ZoneInfo

    local = datetime(2026, 6, 14, 10, 0, 0, tzinfo=ZoneInfo("Europe/London"))
    records = [format_store_record(f"KV{n:05d}", local.replace(second=n), n) for n in (9, 10, 11)]
    log = SqliteEventLog(tmp_path / "log.db")
    try:
        manager = ReaderManager(Rt(ev, log), connector_options=FAST)
        await manager.start()
        await until(lambda: manager.health()[0]["state"] == "listening")
        reader, writer = await asyncio.open_connection("127.0.0.1", manager.health()[0]["port"])
        writer.write(b"Finish@Pong@$")
        ack_pong = (await reader.readuntil(b"$")).decode()
        passing = "t=10:00:30.125|c=KV00042|d=260614|dv=3|an=00001101"
        writer.write(("Finish@Store@" + "@".join(records) + "@5@$").encode())
        writer.write(f"Finish@Passing@{passing}@6@$".encode())
        await writer.drain()
        acks = [(await reader.readuntil(b"$")).decode() for _ in range(2)]
        await until(lambda: manager.health()[0]["stored"] == 4)
        writer.close()
        await writer.wait_closed()
        await manager.stop()
        stored = await stored_reads(log)
    finally:
        await log.close()
    assert ack_pong == "livetrack@AckPong@Version2.1@c|t|d|l|dv|re|an@$"
    assert acks == ["livetrack@AckStore@5@$", "livetrack@AckPassing@6@$"]
    by_chip = {r.chip: r for r in stored}
    # the 4-hex passing counters 0009, 000A, 000B are the stored passings' numbers
    assert [by_chip[f"KV{n:05d}"].seq for n in (9, 10, 11)] == [9, 10, 11]
    assert by_chip["KV00042"].seq is None  # a Passing record has no number of its own
    assert by_chip["KV00042"].time_ms == utc_ms(2026, 6, 14, 9, 0, 30) + 125


async def test_ipico_ab_records_are_not_errors(tmp_path: Path) -> None:
    from zoneinfo import ZoneInfo

    tz = ZoneInfo("Europe/London")
    reads = [
        format_read(f"05800300000{n}", datetime(2026, 6, 14, 10, 0, n, tzinfo=tz)) for n in range(3)
    ]
    lines = [
        reads[0],
        "ab" + reads[0][2:],
        reads[1],
        "ab00000000000000000000000000000000ff",
        reads[2],
    ]

    async def reader_box(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.write("".join(line + "\r\n" for line in lines).encode())
        await w.drain()
        await r.read()  # until the connector hangs up
        w.close()
        await w.wait_closed()

    server = await asyncio.start_server(reader_box, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    ev = ct_event(
        f'\n[[reader]]\nid = "ip"\nprotocol = "ipico"\npoint = "finish"\nhost = "127.0.0.1"\n'
        f"port = {port}\n"
    )
    log = SqliteEventLog(tmp_path / "log.db")
    try:
        manager = ReaderManager(Rt(ev, log), connector_options=FAST)
        await manager.start()
        await until(lambda: manager.health()[0]["stored"] == 3)
        h = manager.health()[0]
        await manager.stop()
    finally:
        server.close()
        await server.wait_closed()
        await log.close()
    assert h["errors"] == 0 and h["last_error"] == "" and h["reads"] == 3


async def test_raceresult_resumes_after_the_highest_passing_whether_or_not_it_was_stored(
    tmp_path: Path,
) -> None:
    """Passing 1 is a gun marker that started no race (two races, neither scheduled), so it
    was never stored. A restart resumes from the decoder's own numbering: it asks for that
    one passing and for the ones after the highest stored, not for everything from 1."""
    t0 = utc_ms(2026, 6, 14, 9, 0)
    from livetrack.ingest.decoders import DecodedRead

    reads = [DecodedRead(chip="", time_ms=t0, seq=1, source="x", kind="gun")]
    reads += [
        DecodedRead(chip=f"C{n}", time_ms=t0 + n * 1000, seq=n + 1, source="x")
        for n in range(1, 20)
    ]
    sim = DecoderSimulator("raceresult", reads, tz=ct_event("").tz, interval_s=0.002)
    log = SqliteEventLog(tmp_path / "log.db")
    try:
        port = await sim.start()
        ev = load_event_text(
            _BASE + '\n[[race]]\nid = "fun"\nname = "Fun"\ncourse = "mile"\n'
            f'\n[[reader]]\nid = "rr"\nprotocol = "raceresult"\npoint = "start"\n'
            f'host = "127.0.0.1"\nport = {port}\n'
        )
        first = ReaderManager(Rt(ev, log), connector_options=FAST)
        await first.start()
        await until(lambda: first.health()[0]["stored"] == 19)
        assert "none is scheduled" in first.health()[0]["problems"][0]["detail"]
        await first.stop()
        stored = await stored_reads(log)
        assert sorted(r.seq or 0 for r in stored) == list(range(2, 21))
        before = list(sim.fetch_requests)

        second = ReaderManager(Rt(ev, log), connector_options=FAST)
        await second.start()
        await until(lambda: second.health()[0]["state"] == "connected")
        await until(lambda: len(sim.fetch_requests) > len(before))
        await asyncio.sleep(0.2)
        h = second.health()[0]
        await second.stop()
        # passing 1 alone, then nothing more (the decoder holds 20): not 1:20 again
        assert sim.fetch_requests[len(before) :] == ["1:1"]
        assert h["last_seq"] == 20
        assert len([r for r in await stored_reads(log) if isinstance(r, ChipRead)]) == 19
    finally:
        await sim.close()
        await log.close()
