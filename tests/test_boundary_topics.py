"""Every live topic kind is public or staff, and the sockets keep to it: the public socket
``/live`` refuses every staff topic (close 1008, the reason says so), from any Origin and with
no token; the staff socket serves staff topics only to tokens whose role (and checkpoint, for a
marshal) may see them, as the write API does. The test walks every registered kind both ways,
so a new kind fails it until it is placed on one side."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import websockets
from conftest import PATIENCE_S
from factory import event, person
from server import Running, serve, tokens_for

from livetrack.domain.state import RaceState
from livetrack.domain.topics import BadTopic, dom_id
from livetrack.web import features
from livetrack.web.auth import issue
from livetrack.web.render import Renderer

#: Who may watch each kind: "public" (anyone, on /live) or the roles that may on /ws/staff.
STAFF_KINDS = {"guns", "readers", "announce", "accuracy", "problems", "unmatched", "marshal",
               "rdesk"}  # fmt: skip
PUBLIC_KINDS = {
    "races", "race", "feed", "runner", "board", "map", "teams", "team", "champ", "charity",
    "record", "relay", "sboards", "scharity", "sfeed", "srecord", "rounds", "srounds",
}  # fmt: skip
RESTS = ("", "mile", "loop", "relay", "1", "half", "mile:finish:all", "mile:Harriers")


PEOPLE = [person("1", team="Harriers"), person("2", team="Harriers"), person("3", race="loop")]


def renderer() -> Renderer:
    """Every live region the app serves, over the test's event and entrants."""
    state = RaceState(event())
    for p in PEOPLE:
        state.apply(p)
    return features.renderer(state)


def kinds() -> list[str]:
    """Every kind of topic a socket may be asked for (each region's kind)."""
    return sorted(renderer().regions)


def example(srv: Running, kind: str) -> str:
    """A topic of ``kind`` that this event has."""
    r = renderer()
    for rest in RESTS:
        topic = f"{kind}:{rest}" if rest else kind
        try:
            r.find(topic)
        except BadTopic:
            continue
        return topic
    raise AssertionError(f"no example topic for kind {kind!r}")


def closed(exc: websockets.ConnectionClosed) -> str:
    frame = exc.rcvd
    return f"closed {frame.code} {frame.reason}" if frame else "closed"


async def first_frame_or_close(url: str, hello: dict[str, object] | None = None) -> str:
    """The first frame the socket sends, or ``closed <code> <reason>``."""
    async with websockets.connect(url, open_timeout=PATIENCE_S,
                                  origin="https://elsewhere.example") as ws:  # fmt: skip
        if hello is not None:
            await ws.send(json.dumps(hello))
        try:
            msg = await asyncio.wait_for(ws.recv(), PATIENCE_S)
        except websockets.ConnectionClosed as exc:
            return closed(exc)
        assert isinstance(msg, str)
        return msg


async def staff_frame_or_close(srv: Running, token: str, topic: str) -> str:
    async with websockets.connect(srv.ws_url + "/ws/staff", open_timeout=PATIENCE_S) as ws:
        await ws.send(json.dumps({"token": token, "topics": [topic]}))
        try:
            msg = await asyncio.wait_for(ws.recv(), PATIENCE_S)
        except websockets.ConnectionClosed as exc:
            return closed(exc)
        assert isinstance(msg, str)
        return msg


def test_every_topic_kind_is_either_public_or_staff() -> None:
    unplaced = set(kinds()) - STAFF_KINDS - PUBLIC_KINDS
    assert not unplaced, f"topic kinds with no side: {sorted(unplaced)}"


async def test_the_public_socket_refuses_every_staff_topic_and_serves_every_public_one(
    tmp_path: Path,
) -> None:
    with serve(event(), tmp_path / "log.db", PEOPLE) as srv:
        await srv.asettle()
        for kind in kinds():
            topic = example(srv, kind)
            for how in ("query", "message"):
                if how == "query":
                    got = await first_frame_or_close(f"{srv.ws_url}/live?topics={topic}")
                else:
                    got = await first_frame_or_close(f"{srv.ws_url}/live", {"topics": [topic]})
                if kind in STAFF_KINDS:
                    assert got.startswith("closed 1008"), (topic, how, got[:200])
                    assert "staff" in got, (topic, how, got)
                else:
                    assert f'id="{dom_id(topic)}"' in got, (topic, how, got[:200])
            # a staff topic hidden among public ones is refused all the same
            if kind in STAFF_KINDS:
                got = await first_frame_or_close(f"{srv.ws_url}/live?topics=races,{topic}")
                assert got.startswith("closed 1008"), (topic, got[:200])


async def test_the_staff_socket_serves_staff_topics_by_role_and_checkpoint(tmp_path: Path) -> None:
    toks, records = tokens_for(("half", "finish"))
    toks["reader"], rec = issue("reader", label="a reader")
    records.append(rec)
    with serve(event(), tmp_path / "log.db", PEOPLE, tokens=(toks, records)) as srv:
        await srv.asettle()
        for kind in sorted(STAFF_KINDS):
            topic = example(srv, kind)
            got = await staff_frame_or_close(srv, toks["timer"], topic)
            assert f'id="{dom_id(topic)}"' in got, ("timer", topic, got[:200])
            got = await staff_frame_or_close(srv, toks["reader"], topic)
            assert got.startswith("closed 1008"), ("reader", topic, got[:200])
            got = await staff_frame_or_close(srv, "lt_not_a_token", topic)
            assert got.startswith("closed 1008"), ("unknown token", topic, got[:200])
            if kind == "marshal":
                mine = await staff_frame_or_close(srv, toks["marshal:half"], "marshal:half")
                assert 'id="t-marshal-half"' in mine, mine[:200]
                other = await staff_frame_or_close(srv, toks["marshal:finish"], "marshal:half")
                assert other.startswith("closed 1008") and "finish" in other, other
            else:
                got = await staff_frame_or_close(srv, toks["marshal:half"], topic)
                assert got.startswith("closed 1008"), ("marshal", topic, got[:200])
