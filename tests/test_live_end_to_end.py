"""End to end: a read posted over HTTP reaches a websocket subscriber as a board fragment."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
import websockets
from conftest import PATIENCE_S
from factory import GUN, event, person
from server import recv_until, serve


async def test_posted_read_arrives_as_the_leaderboard_fragment(tmp_path: Path) -> None:
    people = [person("1", first_name="Ada", last_name="Lovelace"), person("2")]
    with serve(event(), tmp_path / "log.db", people) as srv:
        async with httpx.AsyncClient(base_url=srv.url, timeout=PATIENCE_S) as http:
            timer = {"authorization": f"Bearer {srv.tokens['timer']}"}
            reader = {"authorization": f"Bearer {srv.tokens['reader']}"}
            assert (
                await http.post("/api/v1/races/mile/gun", json={"time": GUN}, headers=timer)
            ).is_success
            await srv.asettle()  # the gun is folded: the snapshot shows the race started
            url = srv.ws_url + "/live?topics=board:mile:finish:all,feed:mile"
            async with websockets.connect(url, open_timeout=PATIENCE_S) as ws:
                first = await recv_until(ws, 'id="t-board-mile-finish-all"')
                assert "Nobody has reached" in first  # the snapshot on connect
                read = {"reader": "r1", "point": "finish", "chip": "C1", "time": GUN + 431_000}
                r = await http.post("/api/v1/reads", json=[read], headers=reader)
                assert r.json()["accepted"] == 1

                async def board_with_the_finisher() -> str:
                    # the board region may go out again before the read is folded in
                    while True:
                        msg = await recv_until(ws, 'id="t-board-mile-finish-all"')
                        if "Ada Lovelace" in msg:
                            return msg

                frag = await asyncio.wait_for(board_with_the_finisher(), PATIENCE_S)
                assert 'hx-swap-oob="true"' in frag
                assert "Ada Lovelace" in frag and "7:11" in frag
                assert "Nobody has reached" not in frag


async def test_unknown_topic_is_closed_with_a_reason(tmp_path: Path) -> None:
    with serve(event(), tmp_path / "log.db", [person("1")]) as srv:
        url = srv.ws_url + "/live?topics=board:nope:finish:all"
        async with websockets.connect(url, open_timeout=PATIENCE_S) as ws:
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), PATIENCE_S)
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 1008
            assert "unknown topic" in closed.value.rcvd.reason


async def test_topics_may_come_in_a_first_message(tmp_path: Path) -> None:
    with serve(event(), tmp_path / "log.db", [person("1")]) as srv:
        async with websockets.connect(srv.ws_url + "/live", open_timeout=PATIENCE_S) as ws:
            await ws.send('{"topics": ["race:mile", "runner:1"]}')
            got = await recv_until(ws, 'id="t-runner-1"')
            assert "First1 Last1" in got


async def test_page_is_server_rendered_with_the_same_region_ids(tmp_path: Path) -> None:
    people = [person("1", first_name="<script>alert(1)</script>")]
    with serve(event(), tmp_path / "log.db", people) as srv:
        async with httpx.AsyncClient(base_url=srv.url, timeout=PATIENCE_S) as http:
            page = (await http.get("/races/mile")).text
            assert 'id="t-board-mile-finish-all"' in page and 'id="t-feed-mile"' in page
            assert 'ws-connect="/live?topics=' in page
            runner = (await http.get("/runners/1")).text
            assert "<script>alert(1)</script>" not in runner
            assert "&lt;script&gt;alert(1)&lt;/script&gt;" in runner
