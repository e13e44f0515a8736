"""Server-rendered pages and their live regions (the fold's own kinds: the races, a race's
header, feed, boards and map, a runner's card). Each region's page draws the same block, from
the same view model, as its pushes."""

from __future__ import annotations

from collections.abc import Collection

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse

from livetrack.domain import topics
from livetrack.domain.alerts import has_spots
from livetrack.domain.ranking import ALL
from livetrack.domain.state import (
    RACES_TOPIC,
    RaceState,
    board_topic,
    feed_topic,
    map_topic,
    parse_shift,
    race_topic,
    runner_topic,
)
from livetrack.domain.topics import Topic
from livetrack.service.runtime import Runtime
from livetrack.web import map_views, views
from livetrack.web.meets import ROUNDS
from livetrack.web.regions import Ctx, Region, is_race
from livetrack.web.render import Renderer, safe


def _rt(request: Request) -> tuple[Runtime, Renderer]:
    return request.state.runtime, request.state.renderer


def home(request: Request) -> HTMLResponse:
    _, r = _rt(request)
    return HTMLResponse(r.page("home.html", races=r.model(RACES_TOPIC), topics=[RACES_TOPIC]))


def furthest_reached(state: RaceState, race_id: str, checkpoints: list[str]) -> str:
    """The board a race page opens on: the furthest checkpoint anyone has reached (the finish
    once there are finishers; the finish too before anyone has passed a checkpoint)."""
    for cp in reversed(checkpoints):
        if state.boards.count(race_id, cp, ALL):
            return cp
    return checkpoints[-1]


def race(request: Request) -> HTMLResponse:
    rt, r = _rt(request)
    race_id = request.path_params["race"]
    race = rt.event.races.get(race_id)
    if race is None:
        raise HTTPException(404, f"No race {race_id!r} at this event.")
    cps = [cp.id for cp in race.course.checkpoints[1:]]
    point = request.query_params.get("point") or furthest_reached(rt.state, race_id, cps)
    if point not in cps:
        point = cps[-1]
    present = {d for rn in rt.state.runners.values() if rn.race.id == race_id for d in rn.divisions}
    divisions = [ALL, *sorted(present - {ALL}, key=lambda d: (len(d) > 1, d))]
    division = request.query_params.get("division", ALL)
    if division not in divisions:
        division = ALL
    head, board, feed = (
        race_topic(race_id),
        board_topic(race_id, point, division),
        feed_topic(race_id),
    )
    if race.rounds is not None:  # heats and finals: their start lists and results instead
        rounds = ROUNDS(race_id)
        html = r.page("race.html", rs=r.model(head), ro=r.model(rounds), topics=[head, rounds])
        return HTMLResponse(html)
    html = r.page(
        "race.html",
        rs=r.model(head),
        b=r.model(board),
        f=r.model(feed),
        point=point,
        division=division,
        divisions=divisions,
        ro=None,
        topics=[head, board, feed],
    )
    return HTMLResponse(html)


def runner(request: Request) -> HTMLResponse:
    rt, r = _rt(request)
    bib = request.path_params["bib"]
    if bib not in rt.state.runners:
        raise HTTPException(404, f"No runner with bib {bib!r}.")
    race = rt.state.runners[bib].race
    card, head = runner_topic(bib), race_topic(race.id)
    # the race's header too (hidden): the page's freshness notice reads the race's status
    return HTMLResponse(
        r.page(
            "runner.html",
            rn=r.model(card),
            rs=r.model(head),
            topics=[card, head],
            stands=has_spots(race),
        )
    )


def search(request: Request) -> HTMLResponse:
    rt, r = _rt(request)
    q = request.query_params.get("q", "")[:60]
    return HTMLResponse(r.page("search.html", q=q, results=safe(views.search, rt.state, q)))


def me(request: Request) -> HTMLResponse:
    _, r = _rt(request)
    return HTMLResponse(r.page("me.html", topics=[]))  # its script subscribes it


def course_map(request: Request) -> HTMLResponse:
    rt, r = _rt(request)
    race_id = request.path_params["race"]
    race = rt.event.races.get(race_id)
    if race is None:
        raise HTTPException(404, f"No race {race_id!r} at this event.")
    head = race_topic(race_id)  # hidden: the page's freshness notice reads the race's status
    html = r.page(
        "map.html",
        m=safe(map_views.course_map, rt.state, race_id),
        fp=r.model(map_topic(race_id)),
        rs=r.model(head),
        race_name=race.name,
        topics=[map_topic(race_id), head],
    )
    return HTMLResponse(html)


# -- live regions ------------------------------------------------------------------------------


def _board_valid(st: RaceState, t: Topic) -> bool:
    race = st.event.races.get(t["race"])
    return race is not None and any(cp.id == t["checkpoint"] for cp in race.course.checkpoints[1:])


def _board(c: Ctx, t: Topic) -> object:
    return views.board(c.state, t["race"], t["checkpoint"], t["division"])


def _shifted_cards(c: Ctx, dirty: set[str], watched: Collection[str]) -> set[str]:
    """The watched runner cards whose positions a late passing shifted: the fold's
    :data:`~livetrack.domain.topics.SHIFT` signals say where, and from which time on."""
    shifted: dict[tuple[str, str], int] = {}  # (race, checkpoint) -> fastest time moved
    for name in dirty:
        shift = parse_shift(name)
        if shift is not None:
            key = (shift[0], shift[1])
            shifted[key] = min(shift[2], shifted.get(key, shift[2]))
    if not shifted:
        return set()
    runners = c.state.runners
    cards: set[str] = set()
    for name in watched:
        if not name.startswith("runner:"):
            continue
        runner = runners.get(topics.parse(name)["bib"])
        if runner is None:
            continue
        race = runner.race.id
        for cp, elapsed in runner.ranked.items():
            moved = shifted.get((race, cp))
            if moved is not None and elapsed > moved:
                cards.add(name)
                break
    return cards


REGIONS = [
    # the race clocks' text is left out (pages tick them from the gun time), so the races and
    # a race's header change only when the data does
    Region(
        topics.RACES,
        "home.html",
        "races",
        "races",
        lambda c, t: views.races(c.state, c.now, clock_text=False),
        keyed=True,
    ),
    Region(
        topics.RACE,
        "race.html",
        "header",
        "rs",
        lambda c, t: views.race_status(
            c.state, c.state.event.races[t["race"]], c.now, clock_text=False
        ),
        is_race,
        keyed=True,
    ),
    Region(
        topics.FEED,
        "race.html",
        "feed",
        "f",
        lambda c, t: views.feed(c.state, t["race"]),
        is_race,
        keyed=True,
    ),
    Region(
        topics.RUNNER,
        "runner.html",
        "card",
        "rn",
        lambda c, t: views.runner(c.state, t["bib"], c.now, c.cache),
        lambda st, t: t["bib"] in st.runners,
        derive=_shifted_cards,
        cache=views.FieldMedians,
        keyed=True,
    ),
    Region(topics.BOARD, "race.html", "board", "b", _board, _board_valid, keyed=True),
    Region(
        topics.MAP,
        "map.html",
        "field",
        "fp",
        lambda c, t: map_views.field_positions(c.state, t["race"]),
        is_race,
        keyed=True,
    ),
]
