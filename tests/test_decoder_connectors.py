"""Connector tests over real TCP on 127.0.0.1 against the decoder simulators."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Callable
from zoneinfo import ZoneInfo

import pytest
from conftest import PATIENCE_S, refused_port

from livetrack.ingest.decoders import DecodedRead
from livetrack.ingest.decoders.connect import ConnectorStats, run_connector
from livetrack.ingest.decoders.ipico import ipico_checksum
from livetrack.ingest.decoders.simulate import DecoderSimulator, make_demo_reads, serve_decoder

TZ = ZoneInfo("Europe/Berlin")
START_MS = int(dt.datetime(2024, 5, 1, 9, 0, tzinfo=TZ).timestamp() * 1000)
N_READS = 40

Key = tuple[int | None, str, int, str]


def key(read: DecodedRead) -> Key:
    """Stand-in for the event log's dedup key: (seq or None, chip, time, kind)."""
    return (read.seq, read.chip, read.time_ms, read.kind)


def expected_keys(protocol: str, reads: list[DecodedRead]) -> set[Key]:
    has_seq = protocol in ("raceresult", "ctp01")
    return {(r.seq if has_seq else None, r.chip, r.time_ms, r.kind) for r in reads}


class Store:
    """Collects reads like the durable log would; sets ``stop`` once complete."""

    def __init__(self, expected: set[Key], stop: asyncio.Event) -> None:
        self.expected = expected
        self.stop = stop
        self.keys: set[Key] = set()
        self.batches = 0
        self.sources: set[str] = set()

    async def __call__(self, batch: list[DecodedRead]) -> None:
        await asyncio.sleep(0)  # a real append awaits I/O
        self.batches += 1
        self.keys.update(key(r) for r in batch)
        self.sources.update(r.source for r in batch)
        if self.keys >= self.expected:
            self.stop.set()


async def run_until_complete(
    protocol: str,
    *,
    drop_after: int | None,
    listen: bool = False,
    timeout: float = PATIENCE_S,
) -> tuple[Store, DecoderSimulator, ConnectorStats, list[str]]:
    reads = make_demo_reads(protocol, N_READS, start_ms=START_MS, spacing_ms=730)
    stop = asyncio.Event()
    store = Store(expected_keys(protocol, reads), stop)
    stats = ConnectorStats()
    states: list[str] = []
    sim = DecoderSimulator(protocol, reads, tz=TZ, drop_after=drop_after, interval_s=0.005)
    client_task: asyncio.Task[None] | None = None
    try:
        if listen:
            bound: asyncio.Future[int] = asyncio.get_running_loop().create_future()
            task = asyncio.create_task(
                run_connector(
                    protocol,
                    "127.0.0.1",
                    0,
                    source_id="cfg",
                    tz=TZ,
                    on_reads=store,
                    on_state=states.append,
                    stop=stop,
                    listen=True,
                    on_listening=bound.set_result,
                    stats=stats,
                )
            )
            port = await asyncio.wait_for(bound, PATIENCE_S)
            client_task = asyncio.create_task(sim.connect("127.0.0.1", port, retry_s=0.02))
        else:
            port = await sim.start()
            task = asyncio.create_task(
                run_connector(
                    protocol,
                    "127.0.0.1",
                    port,
                    source_id="cfg",
                    tz=TZ,
                    on_reads=store,
                    on_state=states.append,
                    stop=stop,
                    backoff_initial=0.05,
                    stats=stats,
                )
            )
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout)
        finally:
            stop.set()
            await task
    finally:
        await sim.close()
        if client_task is not None:
            client_task.cancel()
            await asyncio.gather(client_task, return_exceptions=True)
    return store, sim, stats, states


@pytest.mark.parametrize("protocol", ["raceresult", "ctp01", "ipico", "mylaps"])
async def test_connect_mode_survives_mid_race_drop(protocol: str) -> None:
    store, sim, stats, states = await run_until_complete(protocol, drop_after=8)
    assert store.keys == store.expected  # no loss
    assert store.keys == {key(r) for r in sim.sent}  # exactly what was sent
    assert sim.drops_done == 1
    assert sim.connections >= 2 and stats.connections >= 2
    assert states[0] == "connecting" and states[-1] == "stopped"
    assert "disconnected" in states
    if protocol == "raceresult":
        # Passings that happened during the drop were fetched by range.
        assert stats.refetches >= 1
        assert any(":" in req for req in sim.fetch_requests)
        assert store.sources == {"SIM-1"}
        assert stats.last_stored_seq == N_READS
    if protocol == "mylaps":
        # The unacknowledged message was sent again after the reconnect.
        assert stats.reads > N_READS
    if protocol == "ipico":
        assert store.sources == {"cfg"}


@pytest.mark.parametrize("protocol", ["mylaps", "ipico", "ctp01"])
async def test_listen_mode_decoder_connects_to_us(protocol: str) -> None:
    store, sim, stats, states = await run_until_complete(protocol, drop_after=11, listen=True)
    assert store.keys == store.expected
    assert store.keys == {key(r) for r in sim.sent}
    assert sim.drops_done == 1
    assert stats.connections >= 2
    assert stats.listen_port is not None
    assert "listening" in states


async def test_raceresult_without_drop_fetches_nothing_needlessly() -> None:
    store, sim, stats, _ = await run_until_complete("raceresult", drop_after=None)
    assert store.keys == store.expected
    assert sim.connections == 1
    assert stats.refetches == 0
    assert not any(":" in req for req in sim.fetch_requests)


async def test_raceresult_resume_from_stored_seq_after_restart() -> None:
    """A connector restarted with resume_seq fetches only what is missing."""
    reads = make_demo_reads("raceresult", 20, start_ms=START_MS)
    sim, port = await serve_decoder("raceresult", reads, tz=TZ, interval_s=0.001)
    try:
        # Let a first connector enable the timeline and read everything.
        stop = asyncio.Event()
        first = Store(expected_keys("raceresult", reads), stop)
        await asyncio.wait_for(
            run_connector(
                "raceresult", "127.0.0.1", port, source_id="rr", tz=TZ, on_reads=first, stop=stop
            ),
            PATIENCE_S,
        )
        await asyncio.wait_for(sim.finished.wait(), PATIENCE_S)
        # A new connector that already stored 1..12 asks for 13..20 only.
        stop2 = asyncio.Event()
        rest = {k for k in first.expected if k[0] is not None and k[0] > 12}
        second = Store(rest, stop2)
        await asyncio.wait_for(
            run_connector(
                "raceresult",
                "127.0.0.1",
                port,
                source_id="rr",
                tz=TZ,
                on_reads=second,
                stop=stop2,
                resume_seq=12,
            ),
            PATIENCE_S,
        )
        assert second.keys == rest
        assert "13:8" in sim.fetch_requests
    finally:
        await sim.close()


async def _raw_server(
    handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter], object],
) -> tuple[asyncio.Server, int]:
    async def wrapped(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await handler(reader, writer)  # type: ignore[misc]
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    server = await asyncio.start_server(wrapped, "127.0.0.1", 0)
    return server, int(server.sockets[0].getsockname()[1])


async def test_malformed_lines_logged_connection_kept(caplog: pytest.LogCaptureFixture) -> None:
    good = "aa00058003000001000024050109152100"
    good = good[:34] + f"{ipico_checksum(good[2:34]):02x}"
    bad = good[:34] + "00"
    done = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(f"{bad}\r\nnonsense\r\n{good}\r\n".encode())
        await writer.drain()
        await done.wait()

    server, port = await _raw_server(handler)
    stop = asyncio.Event()
    got: list[DecodedRead] = []

    async def on_reads(batch: list[DecodedRead]) -> None:
        got.extend(batch)
        stop.set()

    stats = ConnectorStats()
    try:
        with caplog.at_level(logging.WARNING, logger="livetrack.decoders"):
            await asyncio.wait_for(
                run_connector(
                    "ipico",
                    "127.0.0.1",
                    port,
                    source_id="reader-7",
                    tz=TZ,
                    on_reads=on_reads,
                    stop=stop,
                    stats=stats,
                ),
                PATIENCE_S,
            )
    finally:
        done.set()
        server.close()
        await server.wait_closed()
    assert [r.chip for r in got] == ["058003000001"]
    assert stats.connections == 1 and stats.errors == 2
    messages = [r.getMessage() for r in caplog.records if r.name == "livetrack.decoders"]
    assert any("reader-7" in m and "checksum mismatch" in m for m in messages)
    assert any("reader-7" in m and "nonsense" in m for m in messages)


async def test_mylaps_ack_only_after_reads_stored() -> None:
    stored = asyncio.Event()
    acked_after_store: list[bool] = []

    async def on_reads(batch: list[DecodedRead]) -> None:
        await asyncio.sleep(0.05)  # slow durable append
        stored.set()

    stop = asyncio.Event()
    bound: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(
        run_connector(
            "mylaps",
            "127.0.0.1",
            0,
            source_id="m",
            tz=TZ,
            on_reads=on_reads,
            stop=stop,
            listen=True,
            on_listening=bound.set_result,
        )
    )
    try:
        port = await asyncio.wait_for(bound, PATIENCE_S)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(b"Fin@Passing@t=10:00:00.000|c=A|d=240501@42@$")
            await writer.drain()
            ack = await asyncio.wait_for(reader.readuntil(b"$"), PATIENCE_S)
            acked_after_store.append(stored.is_set())
            assert ack.endswith(b"@AckPassing@42@$")
        finally:
            writer.close()
            await writer.wait_closed()
    finally:
        stop.set()
        await task
    assert acked_after_store == [True]


async def test_reconnects_until_decoder_comes_up() -> None:
    reads = make_demo_reads("ipico", 5, start_ms=START_MS)
    stop = asyncio.Event()
    store = Store(expected_keys("ipico", reads), stop)
    states: list[str] = []
    with refused_port() as held:  # refused until the decoder comes up on it; nobody else's
        port = held.getsockname()[1]
        task = asyncio.create_task(
            run_connector(
                "ipico",
                "127.0.0.1",
                port,
                source_id="late",
                tz=TZ,
                on_reads=store,
                on_state=states.append,
                stop=stop,
                backoff_initial=0.05,
            )
        )
        deadline = asyncio.get_running_loop().time() + PATIENCE_S
        while "waiting" not in states:  # refused at least once
            assert asyncio.get_running_loop().time() < deadline, states
            assert not task.done()
            await asyncio.sleep(0.02)
        sim, _ = await serve_decoder("ipico", reads, port=port, tz=TZ, interval_s=0.001)
    try:
        await asyncio.wait_for(task, PATIENCE_S)
    finally:
        stop.set()
        await task
        await sim.close()
    assert store.keys == store.expected


async def test_clock_unset_reported(caplog: pytest.LogCaptureFixture) -> None:
    reads = make_demo_reads("raceresult", 5, start_ms=START_MS)
    sim, port = await serve_decoder("raceresult", reads, tz=TZ, clock_unset=True, interval_s=0.001)
    stop = asyncio.Event()
    got: list[DecodedRead] = []

    async def on_reads(batch: list[DecodedRead]) -> None:
        got.extend(batch)
        if len({r.seq for r in got}) == 5:
            stop.set()

    try:
        with caplog.at_level(logging.WARNING, logger="livetrack.decoders"):
            stats = await asyncio.wait_for(
                run_connector(
                    "raceresult",
                    "127.0.0.1",
                    port,
                    source_id="rr",
                    tz=TZ,
                    on_reads=on_reads,
                    stop=stop,
                    date=dt.date(2024, 5, 1),
                ),
                PATIENCE_S,
            )
    finally:
        await sim.close()
    assert stats.clock_unset_reported
    assert all("clock_unset" in r.flags for r in got)
    assert any("clock looks unset" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("listen", [False, True])
async def test_store_failure_propagates_and_is_not_acked(listen: bool) -> None:
    reads = make_demo_reads("mylaps", 6, start_ms=START_MS)
    sim = DecoderSimulator("mylaps", reads, tz=TZ, interval_s=0.001)

    async def on_reads(batch: list[DecodedRead]) -> None:
        raise OSError("disk full")

    stop = asyncio.Event()
    client: asyncio.Task[None] | None = None
    try:
        if listen:
            bound: asyncio.Future[int] = asyncio.get_running_loop().create_future()
            task = asyncio.create_task(
                run_connector(
                    "mylaps",
                    "127.0.0.1",
                    0,
                    source_id="m",
                    tz=TZ,
                    on_reads=on_reads,
                    stop=stop,
                    listen=True,
                    on_listening=bound.set_result,
                )
            )
            client = asyncio.create_task(sim.connect("127.0.0.1", await bound))
        else:
            port = await sim.start()
            task = asyncio.create_task(
                run_connector(
                    "mylaps", "127.0.0.1", port, source_id="m", tz=TZ, on_reads=on_reads, stop=stop
                )
            )
        with pytest.raises(OSError, match="disk full"):
            await asyncio.wait_for(task, PATIENCE_S)
    finally:
        stop.set()
        await sim.close()
        if client is not None:
            client.cancel()
            await asyncio.gather(client, return_exceptions=True)
    assert not sim.finished.is_set()  # nothing was acknowledged
