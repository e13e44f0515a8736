"""A ChronoTrack controller whose lines go missing inside a connection: the reader asks again
from the first missing number, and every read ends in the log exactly once (both logs)."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import httpx
from conftest import PATIENCE_S, Opener
from server import serve
from test_readers import T10, Rt, event, stored_reads, until

from livetrack.ingest.decoders.simulate import DecoderSimulator, make_demo_reads
from livetrack.service.readers import ReaderManager

OPTIONS = {
    "backoff_initial": 0.05,
    "parser_options": {"gap_grace_s": 0.2, "retry_after_s": 2.0},
}


def ct_event(port: int) -> object:
    return event(
        f'\n[[reader]]\nid = "ct"\nprotocol = "ctp01"\npoint = "finish"\nlisten = false\n'
        f'host = "127.0.0.1"\nport = {port}\n'
    )


async def test_lines_lost_inside_a_connection_are_fetched_again_and_stored_once(
    open_log: Opener,
) -> None:
    reads = make_demo_reads("ctp01", 30, start_ms=T10, gun=False)
    # lines 5, 6 and 24 are lost on the wire (the controller keeps them); line 12 comes late
    sim = DecoderSimulator(
        "ctp01", reads, tz=event().tz, interval_s=0.01, lose=(5, 6, 24), swap=(12,)
    )
    port = await sim.start()
    manager = ReaderManager(Rt(ct_event(port), open_log()), connector_options=OPTIONS)  # type: ignore[arg-type]
    try:
        await manager.start()
        await until(lambda: sim.finished.is_set())
        await until(lambda: manager.health()[0]["stored"] == len(reads))
        await until(lambda: manager.health()[0]["gaps_filled"] == 3)
        health = manager.health()[0]
        stored = await stored_reads(manager.rt.log)
    finally:
        await manager.stop()
        await sim.close()
    assert sorted(r.seq or 0 for r in stored) == list(range(1, len(reads) + 1))
    assert sorted((r.chip, r.time_ms) for r in stored) == sorted((r.chip, r.time_ms) for r in reads)
    assert health["gaps_seen"] == 3 and health["gaps_filled"] == 3
    assert health["gaps_given_up"] == 0 and health["gap_requests"] >= 1
    # asked again on the same connection, from the first missing number
    assert sim.connections == 1
    assert sim.start_requests[0] == "start"
    assert "start~finish~5" in sim.start_requests[1:]
    # the replay sent lines the log held already: counted as duplicates, not stored again
    assert health["duplicates"] > 0
    assert health["stored"] + health["duplicates"] == health["reads"]


def test_the_readers_api_counts_the_gaps_a_served_event_fetched_again(tmp_path: Path) -> None:
    """The same through a running server with its default grace: ``/api/v1/readers``."""
    reads = make_demo_reads("ctp01", 12, start_ms=T10, gun=False)
    loop = asyncio.new_event_loop()
    sim = DecoderSimulator("ctp01", reads, tz=event().tz, interval_s=0.01, lose=(4,))
    port = loop.run_until_complete(sim.start())
    runner = threading.Thread(target=loop.run_forever, daemon=True)  # the controller's own
    runner.start()
    try:
        with serve(ct_event(port), tmp_path / "log.db") as srv:  # type: ignore[arg-type]
            timer = {"authorization": f"Bearer {srv.tokens['timer']}"}
            deadline = time.monotonic() + PATIENCE_S
            while True:
                [health] = httpx.get(f"{srv.url}/api/v1/readers", headers=timer).json()["readers"]
                # the gap is counted filled as the read comes back, stored a moment later
                settled = health["gaps_filled"] == 1 and health["stored"] == len(reads)
                if settled or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
        assert health["gaps_seen"] == 1 and health["gaps_filled"] == 1, health
        assert health["gap_requests"] == 1 and health["gaps_given_up"] == 0
        assert health["stored"] == len(reads) and health["last_seq"] == len(reads)
    finally:
        asyncio.run_coroutine_threadsafe(sim.close(), loop).result(PATIENCE_S)
        loop.call_soon_threadsafe(loop.stop)
        runner.join(PATIENCE_S)
        loop.close()
