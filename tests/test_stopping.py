"""A process asked to stop stops: every step of a shutdown has a bound, and a task that
swallows its cancellation is left behind with its name logged instead of holding the worker
until it is killed (and its final snapshot with it)."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest
from conftest import PATIENCE_S
from factory import event, gun, person, read

from livetrack.domain.snapshot import snapshot_name
from livetrack.domain.state import RaceState
from livetrack.live.hub import Hub
from livetrack.service import stopping
from livetrack.service.runtime import Runtime
from livetrack.service.snapshots import code_version
from livetrack.store.sqlite import SqliteEventLog


async def _deaf(release: asyncio.Event) -> None:
    """Ignores every cancellation until ``release`` is set."""
    while not release.is_set():
        try:
            await release.wait()
        except asyncio.CancelledError:
            continue


async def test_a_step_that_ignores_its_cancellation_is_left_behind_after_its_bound(
    caplog: pytest.LogCaptureFixture,
) -> None:
    release = asyncio.Event()
    started = time.monotonic()
    with caplog.at_level(logging.ERROR, "livetrack.stopping"):
        ended = await stopping.within("the stuck part", _deaf(release), seconds=0.2)
    assert ended is False
    assert time.monotonic() - started < 2.0
    assert "the stuck part did not finish within 0.2 s" in caplog.text
    release.set()


async def test_a_failing_step_is_logged_and_the_shutdown_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken() -> None:
        raise RuntimeError("socket already gone")

    with caplog.at_level(logging.ERROR, "livetrack.stopping"):
        assert await stopping.within("the readers", broken()) is True
    assert "the readers failed: socket already gone" in caplog.text


async def test_end_tasks_names_only_the_task_that_would_not_end(
    caplog: pytest.LogCaptureFixture,
) -> None:
    release = asyncio.Event()
    quiet = asyncio.create_task(asyncio.sleep(3600), name="quiet")
    deaf = asyncio.create_task(_deaf(release), name="deaf")
    failed = asyncio.create_task(asyncio.sleep(0), name="failed")
    await asyncio.sleep(0.01)
    with caplog.at_level(logging.ERROR, "livetrack.stopping"):
        stuck = await stopping.end_tasks([quiet, deaf, failed], seconds=0.2)
    assert stuck == ["deaf"]
    assert quiet.cancelled()
    assert "task deaf still running" in caplog.text and "quiet" not in caplog.text
    release.set()
    await deaf


async def test_runtime_stops_and_saves_its_snapshot_past_a_task_that_will_not_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stopping, "TASKS_S", 0.3)
    log = SqliteEventLog(tmp_path / "log.db")
    await log.append([person("1"), gun(), read("C1", "finish", 420)])
    state = RaceState(event())
    rt = Runtime(event(), log, state, Hub(lambda topic: ""), snapshot_every_records=0)
    await rt.start()
    await rt.wait_ready(PATIENCE_S)
    release = asyncio.Event()
    rt._tasks.append(asyncio.create_task(_deaf(release), name="livetrack-deaf"))
    await asyncio.sleep(0.05)  # running: a task cancelled before it starts never sees it
    started = time.monotonic()
    await rt.stop()
    assert time.monotonic() - started < 3.0
    assert rt.snapshot.saves == 1  # the final snapshot was not lost to the stuck task
    release.set()
    reopened = SqliteEventLog(tmp_path / "log.db")
    try:
        name = snapshot_name(state.event, code_version())
        assert await reopened.load_snapshot(name) is not None
    finally:
        await reopened.close()
