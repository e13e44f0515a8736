"""Scale-out at the public end: two ``livetrack serve`` processes on one Redis stream, the site's
link feeding one of them. A read entered at the site reaches a spectator's live board on both."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import httpx
import websockets
from conftest import PATIENCE_S
from linkrig import Proc, RaceDay
from server import recv_until

TOPIC = 'id="t-board-mile-finish-all"'


async def board_shows(base_url: str, name: str, ready: asyncio.Event) -> str:
    """Subscribe to the mile's finish board on ``base_url`` and wait for ``name`` on it."""
    url = base_url.replace("http://", "ws://") + "/live?topics=board:mile:finish:all"
    async with websockets.connect(url, open_timeout=PATIENCE_S) as ws:
        first = await recv_until(ws, TOPIC)  # the snapshot on connect
        assert name not in first
        ready.set()
        while True:
            msg = await recv_until(ws, TOPIC)
            if name in msg:
                return msg


def test_a_read_at_the_site_reaches_spectators_on_both_public_processes(
    tmp_path: Path, redis_url: str
) -> None:
    stream = f"livetrack:link:{uuid.uuid4().hex}"
    sep = "&" if "?" in redis_url else "?"
    day = RaceDay(tmp_path, public_log=f"{redis_url}{sep}stream={stream}")
    second = Proc("public2", list(day.public.args), tmp_path, {})
    try:
        second.start()
        runner = next(p for p in day.people if p.race == "mile")
        name = f"{runner.first_name} {runner.last_name}"
        now = int(time.time() * 1000)
        timer = {"authorization": f"Bearer {day.tokens['timer']}"}
        gun = httpx.post(
            f"{day.site.url}/api/v1/races/mile/gun", json={"time": now - 400_000}, headers=timer
        )
        assert gun.is_success, gun.text
        day.wait_equal()  # the gun is at the public end

        async def scenario() -> list[str]:
            ready = [asyncio.Event(), asyncio.Event()]
            watchers = [
                asyncio.create_task(board_shows(base, name, ev))
                for base, ev in zip((day.public.url, second.url), ready, strict=True)
            ]
            await asyncio.wait_for(asyncio.gather(*(ev.wait() for ev in ready)), PATIENCE_S)
            read = {"reader": "fin", "point": "finish", "chip": runner.chips[0], "time": now}
            posted = await asyncio.to_thread(day.post_reads, [read])
            assert posted.json()["accepted"] == 1, posted.text
            return list(await asyncio.wait_for(asyncio.gather(*watchers), 2 * PATIENCE_S))

        boards = asyncio.run(scenario())
        assert len(boards) == 2 and all(name in board for board in boards)
        # one process holds the site's link; a timer on the other sees it up too (shared)
        deadline = time.monotonic() + PATIENCE_S
        while True:
            links = [
                httpx.get(f"{base}/api/v1/link", headers=timer, timeout=10).json()
                for base in (day.public.url, second.url)
            ]
            if all(link["connected"] for link in links) or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert [link["connected"] for link in links] == [True, True]
    finally:
        second.stop()
        day.close()
