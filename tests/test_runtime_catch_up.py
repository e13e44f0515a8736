"""Catching up with the log at start: an unreadable newest entry does not hold up readiness."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from conftest import PATIENCE_S
from factory import GUN, event, gun, person, read

from livetrack.domain.state import RaceState
from livetrack.live.hub import Hub
from livetrack.store.sqlite import SqliteEventLog
from livetrack.web.runtime import Runtime


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
    hub = Hub(lambda topic: "", is_topic=lambda topic: True)
    rt = Runtime(event(), log, state, hub, snapshot_on_stop=False, snapshot_every_records=0)
    await rt.start()
    try:
        await rt.wait_ready(PATIENCE_S)  # it used to wait for an entry that never comes
        assert state.applied == 3 and rt.caught_up
        assert state.runners["1"].passings["finish"].time_ms == GUN + 420_000
    finally:
        await rt.stop()
