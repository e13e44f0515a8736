"""``livetrack demo`` as a newcomer runs it: dated today, one Ctrl-C stops everything at once,
and a second start on the same ``--db`` carries on the same day instead of starting it over."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import httpx
from conftest import PATIENCE_S, REPO, free_port, wait_for_port

from livetrack.cli import demo_event
from livetrack.domain.records import ChipRead, GunStart, Record
from livetrack.store import open_log


def start(db: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "livetrack.cli", "demo", "--port", str(port), "--db", str(db)],
            cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(REPO)},
        )  # fmt: skip
    wait_for_port(port, PATIENCE_S, proc)
    return proc


def wait_running(url: str, race: str) -> None:
    deadline = time.monotonic() + PATIENCE_S
    while time.monotonic() < deadline:
        races = httpx.get(url + "/api/v1/races", timeout=PATIENCE_S).json()["races"]
        if any(r["id"] == race and r["status"] != "not started" for r in races):
            return
        time.sleep(0.2)
    raise AssertionError(f"{race} never started")


def stop(proc: subprocess.Popen[bytes]) -> float:
    """Ctrl-C once; fails unless the whole demo is gone within the patience, exit status 0."""
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    try:
        code = proc.wait(PATIENCE_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError("the demo was still running after one Ctrl-C") from None
    assert code == 0, f"exit status {code}"
    return time.monotonic() - sent


async def stored(db: Path) -> list[Record]:
    log = open_log(str(db))
    try:
        head = await log.head()
        out: list[Record] = []
        if head is None:
            return out
        async for page in log.tail_pages(None):
            out += [r for _, r in page]
            if page.end == head or int(page.end) >= int(head):
                break
        return out
    finally:
        await log.close()


def test_one_ctrl_c_stops_the_demo_and_a_restart_carries_on_the_same_day(
    tmp_path: Path,
) -> None:
    db = tmp_path / "demo.db"
    out = tmp_path / "demo.out"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start(db, port, out)
    try:
        wait_running(url, "mile")
        time.sleep(1.0)  # some reads posted
    finally:
        stop(proc)  # one Ctrl-C: gone with exit status 0, or the test fails
    first = asyncio.run(stored(db))
    guns = [r for r in first if isinstance(r, GunStart)]
    reads = len([r for r in first if isinstance(r, ChipRead)])
    assert guns and reads
    time.sleep(1.0)  # a simulator left running would post into the log meanwhile
    assert len(asyncio.run(stored(db))) == len(first), "something kept writing after Ctrl-C"
    event = demo_event()
    today = datetime.now(event.tz).date()
    assert all(datetime.fromtimestamp(g.time_ms / 1000, event.tz).date() == today for g in guns)

    proc = start(db, port, out)
    try:
        wait_running(url, "mile")
        time.sleep(2.0)
        mile = httpx.get(url + "/api/v1/races/mile/standings", timeout=PATIENCE_S).json()
    finally:
        stop(proc)
    again = asyncio.run(stored(db))
    regun = [r for r in again if isinstance(r, GunStart)]
    fired = {(g.race, g.wave) for g in guns}
    assert [g for g in regun if (g.race, g.wave) in fired] == [g for g in guns], (
        "a restart fired a gun again"
    )
    assert len([r for r in again if isinstance(r, ChipRead)]) >= reads
    assert mile["count"] >= 0


def test_two_demos_with_logs_in_one_folder_have_photo_finish_folders_of_their_own(
    tmp_path: Path,
) -> None:
    from livetrack.demo.run import photo_finish_folder

    mine = photo_finish_folder(str(tmp_path / "mine.db"), fresh=True)
    theirs = photo_finish_folder(str(tmp_path / "theirs.db"), fresh=True)
    assert mine != theirs and mine.is_dir() and theirs.is_dir()
    (theirs / "001-1-01.lif").write_text("their heat")
    (mine / "001-1-01.lif").write_text("an earlier run's heat")
    # a new log starts with no files left from another draw; a restart keeps the folder's files
    assert list(photo_finish_folder(str(tmp_path / "mine.db"), fresh=False).iterdir()) != []
    assert list(photo_finish_folder(str(tmp_path / "mine.db"), fresh=True).iterdir()) == []
    assert (theirs / "001-1-01.lif").read_text() == "their heat"
