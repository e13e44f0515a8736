"""Catching up with the log at start: an unreadable newest entry does not hold up readiness,
and a long replay is not followed at once by a snapshot."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from conftest import PATIENCE_S
from factory import GUN, event, gun, person, read

from livetrack.domain.state import RaceState
from livetrack.live.hub import Hub
from livetrack.service.runtime import Runtime
from livetrack.store.sqlite import SqliteEventLog


async def test_an_unreadable_newest_entry_is_skipped_and_the_service_gets_ready(
    tmp_path: Path,
) -> None:
    path = tmp_path / "log.db"
    log = SqliteEventLog(path)
    await log.append([person("1"), gun(), read("C1", "finish", 420)])
    await log.close()
    with sqlite3.connect(path) as conn:  # a damaged last row, as a bad disk or a bad tool makes
        conn.execute(
            "INSERT INTO records (key, type, body, appended_ms) VALUES ('bad', 'read', '{', 0)"
        )
    log = SqliteEventLog(path)
    state = RaceState(event())
    hub = Hub(lambda topic: "")
    rt = Runtime(event(), log, state, hub, snapshot_on_stop=False, snapshot_every_records=0)
    await rt.start()
    try:
        await rt.wait_ready(PATIENCE_S)  # it used to wait for an entry that never comes
        assert state.applied == 3 and rt.caught_up
        assert state.runners["1"].passings["finish"].time_ms == GUN + 420_000
    finally:
        await rt.stop()


async def test_a_process_that_replayed_the_log_snapshots_only_once_new_records_come(
    tmp_path: Path,
) -> None:
    """Records replayed at start do not count towards the next periodic snapshot: saving
    one then would pause the process just as it starts serving."""
    log = SqliteEventLog(tmp_path / "log.db")
    await log.append([person(str(i)) for i in range(1, 8)] + [gun()])
    state = RaceState(event())
    hub = Hub(lambda topic: "")
    rt = Runtime(
        event(), log, state, hub, snapshot_on_stop=False, snapshot_every_records=5,
        snapshot_every_s=0,
    )  # fmt: skip
    await rt.start()
    try:
        await rt.wait_ready(PATIENCE_S)
        await asyncio.sleep(1.5)  # the snapshot task looks once a second
        assert rt.snapshot.saves == 0
        stored = await log.append([read(f"C{i}", "finish", 400 + i) for i in range(1, 6)])
        newest = stored[-1].offset
        assert newest is not None
        await rt.wait_applied(newest, PATIENCE_S)
        for _ in range(int(PATIENCE_S * 10)):
            if rt.snapshot.saves:
                break
            await asyncio.sleep(0.1)
        assert rt.snapshot.saves == 1 and rt.snapshot.applied == 13
    finally:
        await rt.stop()
