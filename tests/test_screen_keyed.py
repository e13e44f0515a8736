"""The big screen sends what changed: one new finisher is a new row in the feed and on the
boards it enters, the charity total and its charity's line, the record watch losing a runner
on pace; the heat results of a race in rounds send the row a correction changed. What is
sent, applied as the page applies it (``static/patch.js``), gives the screen a fresh render
would have drawn."""

from __future__ import annotations

import asyncio
import re
from datetime import datetime
from datetime import time as dtime

from factory import event, gun, person, read
from meetkit import drawn_state, heat_rows, lif

from livetrack import sim
from livetrack.cli import demo_event
from livetrack.domain.records import ChipRead, GunStart
from livetrack.domain.state import RaceState
from livetrack.domain.topics import dom_id
from livetrack.ingest.heats import import_lif
from livetrack.live.hub import Hub, Subscriber
from livetrack.web import features
from livetrack.web.render import Renderer

SCREEN = ["race:mile", "sfeed:mile", "sboards:mile", "srecord:mile", "scharity:mile"]
STEP = re.compile(r'<template data-p="([^"]*)">(.*?)</template>', re.S)
OPEN = re.compile(r'<([a-zA-Z][a-zA-Z0-9]*)\b[^>]*?\sid="([^"]+)"[^>]*>')
VOID = {"br", "img", "input", "meta", "link", "hr", "wbr"}


# -- the page's patcher, on HTML text ----------------------------------------------------------


def _extent(html: str, eid: str) -> tuple[int, int, int]:
    """Where the element with id ``eid`` is: its start, the end of its start tag, its end."""
    opening = re.compile(rf'<([a-zA-Z][a-zA-Z0-9]*)\b[^>]*?\sid="{re.escape(eid)}"[^>]*>')
    m = opening.search(html)
    assert m is not None, f"no element {eid!r} on the page: the patch would not apply"
    tag = m.group(1)
    if tag in VOID:
        return m.start(), m.end(), m.end()
    depth = 1
    for t in re.finditer(rf"<(/?){tag}\b[^>]*>", html[m.end() :]):
        depth += -1 if t.group(1) else 1
        if depth == 0:
            return m.start(), m.end(), m.end() + t.end()
    raise AssertionError(f"{eid!r} is not closed")


def _element_id(html: str) -> str:
    m = OPEN.match(html)
    assert m is not None, html[:80]
    return m.group(2)


def _without(html: str, eid: str) -> str:
    if f'id="{eid}"' not in html:
        return html
    start, _, end = _extent(html, eid)
    return html[:start] + html[end:]


def _derive(html: str) -> str:
    """A list marked ``data-derive="rank"``: each row's position is its place in the list."""
    out, at = [], 0
    for m in re.finditer(r'<ol id="([^"]+)" data-derive="rank">', html):
        _, inner, end = _extent(html, m.group(1))
        rows = html[inner:end]
        parts = re.split(r'(<li id="[^"]+"><span class="spos">)[^<]*(?=</span>)', rows)
        # parts: text, then (a row's opening, the text after its position) for each row
        rows = parts[0] + "".join(
            f"{parts[i]}{i // 2 + 1}{parts[i + 1]}" for i in range(1, len(parts), 2)
        )
        out += [html[at:inner], rows]
        at = end
    return "".join([*out, html[at:]])


def apply(page: str, message: str) -> str:
    """``message`` applied to ``page`` as the browser does: its patch steps in order, then the
    regions it carries whole, swapped by id; then ranked lists' positions derived."""
    for op, html in STEP.findall(message):
        kind, _, ref = op.partition(":")
        if kind == "drop":
            page = _without(page, ref)
            continue
        eid = _element_id(html)
        if kind == "":
            start, _, end = _extent(page, eid)
            page = page[:start] + html + page[end:]
            continue
        page = _without(page, eid)
        _, inner, end = _extent(page, ref)
        at = inner if kind == "first" else end
        page = page[:at] + html + page[at:]
    rest = STEP.sub("", message).strip()
    while rest:
        eid = _element_id(rest)
        _, _, end = _extent(rest, eid)
        start, _, old_end = _extent(page, eid)
        page = page[:start] + rest[:end] + page[old_end:]
        rest = rest[end:].strip()
    return _derive(page)


def same_dom(a: str, b: str) -> bool:
    """Equal but for the white space between elements (which the page does not keep)."""
    return re.sub(r">\s+<", "><", a).strip() == re.sub(r">\s+<", "><", b).strip()


def region_of(page: str, topic: str) -> str:
    start, _, end = _extent(page, dom_id(topic))
    return page[start:end]


# -- a mile at its finish ----------------------------------------------------------------------

CHARITIES = ["Shelter", "Oxfam", "Cancer Research"]


def _mile() -> Renderer:
    """Twelve entrants; eight have finished, the other four are on record pace at halfway."""
    r = features.renderer(RaceState(event()))
    for b in range(1, 13):
        r.state.apply(
            person(str(b), charity=CHARITIES[b % 3], pledged=20.0 - b, club=f"Club {b % 4}")
        )
    r.state.apply(gun("mile"))
    for b in range(1, 13):  # 9 to 12 reach halfway in 3:21 to 3:24: inside 6:58 at the finish
        r.state.apply(read(f"C{b}", "half", 230 + 4 * b if b < 9 else 200 + b))
    for b in range(1, 9):
        r.state.apply(read(f"C{b}", "finish", 450 + 7 * b))
    return r


def test_one_new_finisher_is_a_small_frame_that_gives_the_fresh_screen() -> None:
    async def run() -> None:
        r = _mile()
        hub = Hub(r.topic, derive=r.derive)
        got: list[str] = []

        async def send(text: str) -> None:
            got.append(text)

        screen = Subscriber(send, SCREEN)
        hub.subscribe(screen)
        await asyncio.sleep(0)
        assert len(got) == 1  # the snapshot: every region whole
        page = got[0]
        assert all(f'id="{dom_id(t)}"' in page for t in SCREEN)
        hub.mark(r.state.apply(read("C9", "finish", 520)))  # runner 9 finishes
        hub.flush()
        await asyncio.sleep(0)
        assert len(got) == 2
        update = got[1]
        assert "First9 Last9" in update
        assert not [t for t in SCREEN if f'id="{dom_id(t)}"' in update]  # no region whole
        assert len(update) < len(page) / 5, (len(update), len(page))
        page = apply(page, update)
        for t in SCREEN:
            fresh = r.frame(t).full
            assert same_dom(region_of(page, t), fresh), t
        screen.close()

    asyncio.run(run())


def _after_a_finish(r: Renderer, topic: str) -> tuple[str, str, str]:
    """The region before, what goes to its watchers when runner 9 finishes, and the region
    after (fresh)."""
    before = r.frame(topic)
    r.state.apply(read("C9", "finish", 520))
    after = r.frame(topic, before)
    assert after.delta is not None, f"{topic}: sent whole"
    assert same_dom(apply(before.full, after.delta), after.full), topic
    return before.full, after.delta, after.full


def test_the_feed_sends_the_new_finisher_first_and_drops_the_oldest() -> None:
    whole, delta, _ = _after_a_finish(_mile(), "sfeed:mile")
    assert [op for op, _ in STEP.findall(delta)] == ["drop:t-sf-mile-2", "first:t-sfeed-mile-l"]
    assert "First9 Last9" in delta and "Last8" not in delta
    assert len(delta) < len(whole) / 3


def test_the_boards_send_the_finishers_row_only_where_it_enters() -> None:
    whole, delta, after = _after_a_finish(_mile(), "sboards:mile")
    # runner 9 (a woman) is ninth: off the overall top six, fifth of the women
    assert [op for op, _ in STEP.findall(delta)] == [
        "after:t-sb-mile-div-F-7",
        "after:t-sb-mile-div-FSEN-7",
    ]
    assert "t-sb-mile-div-all-9" not in after and "Last7" not in delta
    assert len(delta) < len(whole) / 5


def test_a_runner_arriving_above_sends_one_row_and_the_page_ranks_the_rest() -> None:
    r = _mile()
    before = r.frame("sboards:mile")
    r.state.apply(read("C10", "finish", 460))  # second overall: everyone below moves down
    after = r.frame("sboards:mile", before)
    assert after.delta is not None
    ops = [op for op, _ in STEP.findall(after.delta)]
    assert "drop:t-sb-mile-div-all-6" in ops and "after:t-sb-mile-div-all-1" in ops
    assert "Last2" not in after.delta  # the rows moved down are not sent: positions derived
    assert same_dom(apply(before.full, after.delta), after.full)


def test_the_charity_panel_sends_the_total_and_the_finishers_charity() -> None:
    _, delta, _ = _after_a_finish(_mile(), "scharity:mile")
    steps = STEP.findall(delta)
    assert [_element_id(html) for _, html in steps] == [
        "t-scharity-mile-t",
        "t-scharity-mile-s",
        "t-sc-mile-Shelter",  # runner 9's charity
    ]
    assert "by 9 finishers" in delta and "Oxfam" not in delta


def test_the_record_watch_drops_the_finisher_from_those_on_pace() -> None:
    whole, delta, after = _after_a_finish(_mile(), "srecord:mile")
    assert "t-sp-mile-9" in whole and "t-sp-mile-9" not in after
    assert next(op for op, _ in STEP.findall(delta)) == "drop:t-sp-mile-9"


def test_a_corrected_heat_result_sends_the_row_it_changed() -> None:
    st = drawn_state()
    r = features.renderer(st)

    def heat(number: int, fix: str = "") -> None:
        rows = heat_rows(st, "heats", number, 14_000 + number * 37)
        if fix:  # the sixth's time, read again from the photo
            rows[5] = (*rows[5][:3], fix, rows[5][4])
        got = import_lif(st, lif(number, rows), f"h{number}.lif")
        assert got.record is not None
        st.apply(got.record)

    heat(1)
    heat(2)
    before = r.frame("srounds:b100")
    heat(2, "14.597")
    after = r.frame("srounds:b100", before)
    assert after.delta is not None
    assert [op for op, _ in STEP.findall(after.delta)] == [""]
    assert "14.60" in after.delta and after.delta.count("<li") == 1
    assert same_dom(apply(before.full, after.delta), after.full)


def test_every_screen_region_of_the_demos_races_patches_to_its_fresh_render() -> None:
    """The demo's mile (with its championship), team race, fun run and relay, played 20 s at
    a time: whenever a screen region changes, what is sent turns the screen before into the
    screen a fresh render draws."""
    ev = demo_event()
    gun_ms = int(datetime.combine(ev.date, dtime(10, 0), ev.tz).timestamp() * 1000)
    races = ["mile", "team", "fun", "relay"]
    people = sim.make_participants(ev, {"mile": 40, "team": 40, "fun": 40, "relay": 6})
    r = features.renderer(RaceState(ev))
    r.state.apply_all(people)
    names = [f"{k}:{race}" for race in races for k in ("sfeed", "sboards", "scharity")]
    before = {t: r.frame(t) for t in names}
    patched = {t: 0 for t in names}
    whole = dict(patched)
    until = gun_ms
    for a in [*sim.plan(ev, people, {race: gun_ms for race in races}), None]:
        if a is None or a.at_ms > until:
            for t in names:
                f = r.frame(t, before[t])
                if f.full == before[t].full:
                    continue
                if f.delta is None:
                    whole[t] += 1
                else:
                    patched[t] += 1
                    assert same_dom(apply(before[t].full, f.delta), f.full), t
                before[t] = f
            if a is None:
                break
            until = a.at_ms + 20_000
        if a.kind == "gun":
            r.state.apply(GunStart(a.race, a.at_ms, a.wave, id=f"g-{a.race}-{a.wave}"))
        elif a.kind == "read" and a.read is not None:
            b = a.read
            r.state.apply(
                ChipRead(str(b["reader"]), str(b["point"]), str(b["chip"]), a.at_ms, int(b["seq"]))  # type: ignore[call-overload]
            )
    # each feed goes whole once (its first finisher); the boards when a board is added
    assert all(patched[f"sfeed:{race}"] > 3 * whole[f"sfeed:{race}"] for race in races)
    assert all(patched[f"sboards:{race}"] > 0 for race in ("mile", "team", "relay"))
    assert patched["scharity:fun"] > whole["scharity:fun"], (patched, whole)
