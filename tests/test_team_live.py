"""A team's own page is live: its ``team:<race>:<key>`` region is dirty when a member changes
or the race's finish boards move (only while somebody watches it), and is pushed to a
websocket subscriber like every other region."""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import quote

import httpx
import websockets
from conftest import PATIENCE_S
from factory import GUN, event, gun, person, read
from server import serve

from livetrack.domain.records import StatusChange
from livetrack.domain.state import RaceState
from livetrack.domain.topics import dom_id
from livetrack.web import features
from livetrack.web.formats import team_name, team_topic
from livetrack.web.render import Renderer

TEAM = "Harriers, A & B <script>"


def _renderer() -> Renderer:
    return features.renderer(RaceState(event()))


def _entered(r: Renderer) -> set[str]:
    """Three of ``TEAM`` and one of another team in the mile, one of ``TEAM`` in the loop;
    the mile's gun has gone. Returns the topics the fold marked."""
    st = r.state
    changed: set[str] = set()
    for rec in [
        person("1", team=TEAM, first_name="Ada", last_name="<b>Lovelace</b>"),
        person("2", team=TEAM),
        person("3", team=TEAM),
        person("4", team="Others"),
        person("5", "loop", team=TEAM),
        gun("mile"),
    ]:
        changed |= st.apply(rec)
    return changed


def test_team_topics_round_trip_and_unknown_or_misspelt_teams_are_rejected() -> None:
    r = _renderer()
    _entered(r)
    topic = team_topic("mile", TEAM)
    assert "," not in topic and " " not in topic
    assert team_name(topic.split(":", 2)[2]) == TEAM
    assert r.is_topic(topic)
    assert r.is_topic(team_topic("loop", TEAM))
    assert not r.is_topic(team_topic("mile", "Nobody"))
    assert not r.is_topic(team_topic("chip", TEAM))  # no such team in that race
    assert not r.is_topic(team_topic("nope", TEAM))
    assert not r.is_topic("team:mile:" + TEAM)  # not the canonical spelling
    assert not r.is_topic("team:mile:")
    assert not r.is_topic("team:mile:%FF")
    assert not r.is_topic("team:mile")
    assert dom_id(topic).startswith("t-team-mile-")


def test_a_members_finish_dirties_the_watched_team_page_with_its_new_time() -> None:
    r = _renderer()
    _entered(r)
    topic = team_topic("mile", TEAM)
    before = r.topic(topic)
    assert f'id="{dom_id(topic)}"' in before and 'hx-swap-oob="true"' in before
    assert "7:11" not in before

    changed = r.state.apply(read("C1", "finish", 431))
    assert "runner:1" in changed
    assert topic in r.derive(set(changed), {topic: None, "runner:9": None}.keys())
    assert topic not in r.derive(set(changed), ())
    assert topic not in r.derive(set(changed), ["runner:1", team_topic("loop", TEAM)])

    after = r.topic(topic)
    assert "7:11" in after and after != before
    # escaped in the pushed fragment as on the page
    assert "<script>" not in after and "&lt;script&gt;" in after
    assert "<b>Lovelace</b>" not in after and "&lt;b&gt;Lovelace&lt;/b&gt;" in after


def test_only_the_members_own_topic_or_a_finish_board_of_its_race_makes_it_dirty() -> None:
    r = _renderer()
    _entered(r)
    topic, loop_topic = team_topic("mile", TEAM), team_topic("loop", TEAM)
    watched = [topic, loop_topic]

    # another team's runner at halfway: no finish board moved
    changed = r.state.apply(read("C4", "half", 200))
    assert any(t.startswith("board:mile:half:") for t in changed)
    got = r.derive(set(changed), watched)
    assert topic not in got and loop_topic not in got

    # the same runner finishing moves the mile's finish boards: the mile team may move too
    changed = r.state.apply(read("C4", "finish", 400))
    got = r.derive(set(changed), watched)
    assert topic in got and loop_topic not in got

    # a member's status change (their own topic) does
    changed = r.state.apply(StatusChange("s1", "2", "DNF"))
    got = r.derive(set(changed), watched)
    assert topic in got and loop_topic not in got
    assert "DNF" in r.topic(topic)


def test_the_page_renders_the_region_and_subscribes_to_it(tmp_path: Path) -> None:
    people = [person("1", team=TEAM), person("2", team=TEAM)]
    with (
        serve(event(), tmp_path / "log.db", people) as srv,
        httpx.Client(base_url=srv.url, timeout=PATIENCE_S) as http,
    ):
        page = http.get(f"/races/mile/teams/{quote(TEAM, safe='')}")
        assert page.status_code == 200
        html = page.text
        topic = team_topic("mile", TEAM)
        assert f'id="{dom_id(topic)}"' in html
        assert f"topics={quote(topic + ',teams:mile', safe='/')}" in html
        assert TEAM not in html
        assert "Harriers, A &amp; B &lt;script&gt;" in html
        assert http.get("/races/mile/teams/Nobody").status_code == 404


async def _recv_until(ws: websockets.ClientConnection, needle: str) -> str:
    while True:
        msg = await ws.recv()
        assert isinstance(msg, str)
        if needle in msg:
            return msg


async def test_a_members_read_reaches_the_team_page_subscriber_as_their_row_alone(
    tmp_path: Path,
) -> None:
    people = [
        person("1", first_name="Ada", last_name="Lovelace", team=TEAM),
        person("2", team=TEAM),
        person("3", team="Others"),
    ]
    with serve(event(), tmp_path / "log.db", people) as srv:
        async with httpx.AsyncClient(base_url=srv.url, timeout=PATIENCE_S) as http:
            timer = {"authorization": f"Bearer {srv.tokens['timer']}"}
            reader = {"authorization": f"Bearer {srv.tokens['reader']}"}
            r = await http.post("/api/v1/races/mile/gun", json={"time": GUN}, headers=timer)
            assert r.is_success
            await srv.asettle()
            topic = team_topic("mile", TEAM)
            region = f'id="{dom_id(topic)}"'
            url = srv.ws_url + "/live?topics=" + quote(topic, safe="")
            async with websockets.connect(url, open_timeout=PATIENCE_S) as ws:
                first = await asyncio.wait_for(_recv_until(ws, region), PATIENCE_S)
                assert "Ada Lovelace" in first and "7:11" not in first  # the snapshot

                read_ = {"reader": "r1", "point": "finish", "chip": "C1", "time": GUN + 431_000}
                r = await http.post("/api/v1/reads", json=[read_], headers=reader)
                assert r.json()["accepted"] == 1

                async def with_the_time() -> str:
                    # the region may change before the read is folded in (the field's boards)
                    while True:
                        msg = await ws.recv()
                        assert isinstance(msg, str)
                        if "7:11" in msg:
                            return msg

                frag = await asyncio.wait_for(with_the_time(), PATIENCE_S)
                # what changed, not the region: Ada's row and the team's line, put in place
                assert '<template data-p="' in frag and region not in frag
                assert f'id="{dom_id("tmm:mile:1")}"' in frag
                assert "Others" not in frag and "<script>" not in frag
                assert len(frag) < len(first) / 2


def test_a_runner_who_leaves_a_team_makes_the_page_they_left_dirty() -> None:
    r = _renderer()
    _entered(r)
    topic = team_topic("mile", TEAM)
    assert "Lovelace" in r.topic(topic)  # the page as drawn lists runner 1

    # runner 1's entry moves them to another team: their own topic names only the new one
    changed = r.state.apply(person("1", team="Elsewhere AC", first_name="Ada", last_name="L"))
    assert topic in r.derive(set(changed), [topic])
    assert topic not in r.derive(set(changed), ["runner:1"])  # only while somebody watches it
    assert "Ada" not in r.topic(topic)
