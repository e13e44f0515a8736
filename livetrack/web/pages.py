"""Server-rendered pages. Each live region comes from the same block its pushes use."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse

from livetrack.domain.ranking import ALL
from livetrack.domain.state import (
    RACES_TOPIC,
    RaceState,
    board_topic,
    feed_topic,
    map_topic,
    race_topic,
    runner_topic,
)
from livetrack.service.runtime import Runtime, clock
from livetrack.web import views
from livetrack.web.render import Renderer, safe


def _rt(request: Request) -> tuple[Runtime, Renderer]:
    return request.state.runtime, request.state.renderer


def home(request: Request) -> HTMLResponse:
    rt, r = _rt(request)
    races = safe(views.races, rt.state, clock(rt))
    return HTMLResponse(r.page("home.html", races=races, topics=[RACES_TOPIC]))


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
    topics = [race_topic(race_id), board_topic(race_id, point, division), feed_topic(race_id)]
    html = r.page(
        "race.html",
        rs=safe(views.race_status, rt.state, race, clock(rt)),
        b=safe(views.board, rt.state, race_id, point, division),
        f=safe(views.feed, rt.state, race_id),
        point=point,
        division=division,
        divisions=divisions,
        topics=topics,
    )
    return HTMLResponse(html)


def runner(request: Request) -> HTMLResponse:
    rt, r = _rt(request)
    bib = request.path_params["bib"]
    data = views.runner(rt.state, bib, clock(rt))
    if data is None:
        raise HTTPException(404, f"No runner with bib {bib!r}.")
    return HTMLResponse(r.page("runner.html", rn=data, topics=[runner_topic(bib)]))


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
    html = r.page(
        "map.html",
        m=safe(views.course_map, rt.state, race_id),
        fp=safe(views.field_positions, rt.state, race_id),
        race_name=race.name,
        topics=[map_topic(race_id)],
    )
    return HTMLResponse(html)
