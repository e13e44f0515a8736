"""Fan-out over real sockets: hundreds of websocket clients on a real server each receive a
posted update (correctness only: no timing assertions)."""

from __future__ import annotations

import asyncio
from functools import partial
from pathlib import Path

import httpx
from conftest import PATIENCE_S
from factory import GUN, event, person
from server import Running, serve
from server import recv_until as recv_one_until
from websockets.asyncio.client import ClientConnection, connect

from livetrack.live.wire import DirectWrite, text_frame
from livetrack.service.runtime import Runtime

CLIENTS = 300
PAGE = "race:mile,board:mile:finish:all,feed:mile"


#: Hundreds of clients on one busy server: each may wait longer than one client would.
recv_until = partial(recv_one_until, timeout=60.0)


async def open_clients(url: str, topic_sets: list[str]) -> list[ClientConnection]:
    gate = asyncio.Semaphore(50)

    async def one(topics: str) -> ClientConnection:
        async with gate:
            return await connect(f"{url}/live?topics={topics}", compression=None, open_timeout=60)

    return list(await asyncio.gather(*(one(t) for t in topic_sets)))


async def post_finish(srv: Running, chip: str, at_ms: int) -> None:
    async with httpx.AsyncClient(base_url=srv.url, timeout=60) as http:
        reader = {"authorization": f"Bearer {srv.tokens['reader']}"}
        read = {"reader": "r1", "point": "finish", "chip": chip, "time": at_ms}
        r = await http.post("/api/v1/reads", json=[read], headers=reader)
        assert r.json()["accepted"] == 1


async def fire_gun(srv: Running) -> None:
    """Start the race and wait until the fold has the gun, so that the snapshots clients get
    on connecting already show the race started (only the finish posted later changes)."""
    async with httpx.AsyncClient(base_url=srv.url, timeout=PATIENCE_S) as http:
        timer = {"authorization": f"Bearer {srv.tokens['timer']}"}
        r = await http.post("/api/v1/races/mile/gun", json={"time": GUN}, headers=timer)
        assert r.is_success
    await srv.asettle()


def runtime(srv: Running) -> Runtime:
    rt = srv.app.state.runtime  # type: ignore[attr-defined]
    assert isinstance(rt, Runtime)
    return rt


async def test_every_one_of_hundreds_of_clients_receives_the_posted_update(
    tmp_path: Path,
) -> None:
    people = [person("1", first_name="Ada", last_name="Lovelace"), person("2")]
    with serve(event(), tmp_path / "log.db", people) as srv:
        await fire_gun(srv)
        clients = await open_clients(srv.ws_url, [PAGE] * CLIENTS)
        try:
            snapshots = await asyncio.gather(
                *(recv_until(ws, 'id="t-board-mile-finish-all"') for ws in clients)
            )
            # the snapshot is one message carrying every subscribed region
            assert all('id="t-race-mile"' in s and 'id="t-feed-mile"' in s for s in snapshots)
            hub = runtime(srv).hub
            assert hub.clients == CLIENTS and len(hub._groups) == 1
            # uvicorn's default websocket implementation takes the direct write, which can also
            # wait for a backed-up connection to drain (the hub's drain then writes the frame)
            assert all(isinstance(s.write, DirectWrite) for s in hub._subs["feed:mile"])
            await post_finish(srv, "C1", GUN + 431_000)
            got = await asyncio.gather(*(recv_until(ws, "Ada Lovelace") for ws in clients))
            missing = [g[:300] for g in got if 'id="t-feed-mile"' not in g]
            assert not missing, missing[0]
        finally:
            await asyncio.gather(*(ws.close() for ws in clients), return_exceptions=True)


async def test_clients_with_different_topic_sets_each_get_their_regions(tmp_path: Path) -> None:
    people = [person("1", first_name="Ada", last_name="Lovelace"), person("2")]
    sets = ["board:mile:finish:all", "feed:mile,runner:1", PAGE]
    with serve(event(), tmp_path / "log.db", people) as srv:
        await fire_gun(srv)
        clients = await open_clients(srv.ws_url, [sets[i % 3] for i in range(150)])
        try:
            await asyncio.gather(
                *(recv_until(ws, 'id="t-') for ws in clients)
            )  # every client's snapshot
            await post_finish(srv, "C1", GUN + 431_000)
            got = await asyncio.gather(*(recv_until(ws, "Ada Lovelace") for ws in clients))
            for i, msg in enumerate(got):
                assert ('id="t-board-mile-finish-all"' in msg) == (i % 3 != 1)
                assert ('id="t-feed-mile"' in msg) == (i % 3 != 0)
            assert len(runtime(srv).hub._groups) == 3
        finally:
            await asyncio.gather(*(ws.close() for ws in clients), return_exceptions=True)


async def test_closed_clients_are_unsubscribed(tmp_path: Path) -> None:
    with serve(event(), tmp_path / "log.db", [person("1")]) as srv:
        clients = await open_clients(srv.ws_url, [PAGE] * 50)
        await asyncio.gather(*(recv_until(ws, 'id="t-feed-mile"') for ws in clients))
        await asyncio.gather(*(ws.close() for ws in clients))
        hub = runtime(srv).hub
        deadline = asyncio.get_running_loop().time() + PATIENCE_S
        while hub.clients and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        assert hub.clients == 0 and hub.topic_count == 0 and not hub._groups
        async with connect(srv.ws_url + "/live?topics=race:mile", open_timeout=30) as ws:
            assert 'id="t-race-mile"' in await recv_until(ws, 'id="t-race-mile"')


async def test_a_direct_write_refuses_once_the_client_has_closed(tmp_path: Path) -> None:
    """The direct write does not read the websocket's own state: the client's close must have
    closed the transport by the time the next tick could write, so nothing follows the close."""
    with serve(event(), tmp_path / "log.db", [person("1")]) as srv:

        async def on_server(write: DirectWrite, payload: bytes) -> bool:
            async def call() -> bool:
                return write(text_frame(payload))

            return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(call(), srv.loop))

        async with connect(srv.ws_url + "/live?topics=race:mile", compression=None) as ws:
            await recv_until(ws, 'id="t-race-mile"')
            (sub,) = [s for g in runtime(srv).hub._groups.values() for s in g.members]
            assert isinstance(sub.write, DirectWrite)
            write = sub.write
            assert await on_server(write, b"<p>before</p>")
            assert await asyncio.wait_for(ws.recv(), PATIENCE_S) == "<p>before</p>"
            await ws.close()
        assert not await on_server(write, b"<p>after</p>")
