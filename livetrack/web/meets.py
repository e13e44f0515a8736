"""Races run in rounds on the web: the live regions, the timer's rounds desk and its writes.

Routes (every write needs a timer token, :func:`livetrack.web.guards.guard`; each record
carries who wrote it and when):

- ``GET /timer/rounds``: the rounds desk (draws, adjustments, photo-finish uploads and the
  hand-timed fallback for every race run in rounds).
- ``GET /api/v1/rounds/{race}``: every round's heats, lanes, results and Q/q as JSON.
- ``POST /api/v1/lif?name=FILE.lif``: a FinishLynx ``.lif`` file as the body. 200 with the
  stored record and the lines left out (``problems``, each ``file:line: why``) when some of
  it could be imported; 422 with ``problems`` when nothing could.
- ``POST /api/v1/rounds/{race}/draw``: ``{"id", "round"}``: draw a round (the first round's
  heats; a later round again, with a new seed, before it has a result).
- ``POST /api/v1/rounds/{race}/adjust``: ``{"id", "round", "kind": "scratch"|"add"|"lot"|
  "undo", "bib", "heat", "lane", "target", "reason"}``.
- ``POST /api/v1/rounds/{race}/hand``: ``{"round", "heat", "lines"[, "replace"]}``: a
  hand-timed heat, one athlete a line, ``place, bib, time[, lane]``; answered like the upload.
  A heat that has a photo-finish result is answered 409 (``"held": "lif:<file>"``) and keeps
  it, unless ``"replace": true`` says to put the hand times in its place.

Topic kinds: ``rounds:<race>`` (public: every round's heats, lanes, results and Q/q, on the
race page), ``srounds:<race>`` (public: the big screen's panel) and ``rdesk:<race>`` (staff,
timer only: the desk).
"""

from __future__ import annotations

import secrets
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from livetrack.domain import topics
from livetrack.domain.meet_records import ADJUST_KINDS, DrawRound, RoundAdjust
from livetrack.domain.state import RaceState
from livetrack.ingest.heats import Import, import_hand, import_lif
from livetrack.ingest.lif import decode_file
from livetrack.ingest.reads import BodyError
from livetrack.service.runtime import now_ms
from livetrack.web.guards import (
    Invalid,
    guard,
    ident,
    invalid,
    json_object,
    read_body,
    runtime,
    store,
    text,
    who,
)
from livetrack.web.meets_views import has_rounds, rounds_view, screen_view
from livetrack.web.regions import Region, is_race
from livetrack.web.render import Renderer, race_summary

ROUNDS = topics.declare("rounds", ("race",))
SROUNDS = topics.declare("srounds", ("race",))
RDESK = topics.declare("rdesk", ("race",), "staff")

#: The largest ``.lif`` file accepted (a heat's file is a few hundred bytes).
MAX_LIF_BYTES = 256_000


def desk_page(request: Request) -> HTMLResponse:
    rt = runtime(request)
    r: Renderer = request.state.renderer
    races = [rid for rid in rt.event.races if has_rounds(rt.state, rid)]
    desk = {RDESK(rid): topics.dom_id(RDESK(rid)) for rid in races}
    return HTMLResponse(r.page("rounds_desk.html", desk=desk, races=races))


def _race(st: RaceState, request: Request) -> str:
    race_id = str(request.path_params["race"])
    if not has_rounds(st, race_id):
        raise Invalid(f"race: {race_id!r} is not run in rounds at this event")
    return race_id


def _round(st: RaceState, race_id: str, data: dict[str, Any]) -> str:
    rid = text(data, "round", 20)
    config = st.event.races[race_id].rounds
    if config is None or config.round(rid) is None:
        raise Invalid(f"round: {race_id} has no round {rid!r}")
    return rid


def _number(data: dict[str, Any], key: str) -> int:
    value = data.get(key)
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 99:
        raise Invalid(f"{key}: a whole number from 1")
    return value


async def _answer(rt: Any, got: Import) -> Response:
    """Store what an import gives (one record, or nothing) and say what was left out."""
    if got.record is None:
        return JSONResponse(
            {"error": f"nothing could be imported from {got.file}", "problems": got.messages},
            status_code=422,
        )
    results = await store(rt, [got.record])
    rec = got.record
    return JSONResponse(
        {"results": results, "race": rec.race, "round": rec.round, "heat": rec.heat,
         "imported": len(rec.rows), "problems": got.messages}
    )  # fmt: skip


async def post_lif(request: Request) -> Response:
    rt = runtime(request)
    grant = guard(request, ("timer",))
    name = request.query_params.get("name", "upload.lif").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if c.isprintable())[:100] or "upload.lif"
    try:
        body = await read_body(request, MAX_LIF_BYTES)
    except BodyError as exc:
        raise HTTPException(exc.status, str(exc)) from None
    content = decode_file(body)
    if content is None:
        return JSONResponse({"error": f"{name} is not a text file", "problems": []}, 422)
    return await _answer(rt, import_lif(rt.state, content, name, who(grant), now_ms()))


async def post_hand(request: Request) -> Response:
    rt = runtime(request)
    grant = guard(request, ("timer",))
    data = await json_object(request, 20_000)
    try:
        race_id = _race(rt.state, request)
        rid = _round(rt.state, race_id, data)
        heat = _number(data, "heat")
        lines = data.get("lines")
        if not isinstance(lines, str) or not lines.strip():
            raise Invalid("lines: one athlete a line, 'place, bib, time'")
        replace = data.get("replace", False)
        if not isinstance(replace, bool):
            raise Invalid("replace: true or false")
    except Invalid as exc:
        return invalid(exc)
    rr = rt.state.meet.get(race_id)
    held = rr.results.get((rid, heat)) if rr is not None else None
    if held is not None and held.source.startswith("lif:") and not replace:
        config = rt.state.event.races[race_id].rounds
        rnd = config.round(rid) if config is not None else None
        name = rnd.name if rnd is not None else rid
        photo = held.source.removeprefix("lif:")
        return JSONResponse(
            {
                "error": f"{name} heat {heat} has a photo-finish result ({photo}): hand times "
                "would replace it. Nothing was stored; send them again with replace: true "
                "to replace the photo-finish result.",
                "held": held.source,
            },
            status_code=409,
        )
    got = import_hand(rt.state, race_id, rid, heat, lines, who(grant), now_ms())
    return await _answer(rt, got)


async def post_draw(request: Request) -> Response:
    rt = runtime(request)
    grant = guard(request, ("timer",))
    data = await json_object(request, 10_000)
    st = rt.state
    try:
        race_id = _race(st, request)
        rid = _round(st, race_id, data)
        rr = st.meet.get(race_id)
        if rr is not None and rr.has_results(rid):
            raise Invalid(f"round: {rid} has results already; its draw stands")
        config = st.event.races[race_id].rounds
        assert config is not None
        if config.index(rid) > 0 and (rr is None or not rr.seed):
            raise Invalid("round: draw the first round first")
        record = DrawRound(ident(data), race_id, rid, secrets.token_hex(8), who(grant), now_ms())
    except Invalid as exc:
        return invalid(exc)
    return JSONResponse({"results": await store(rt, [record])})


def _check_adjust(st: RaceState, race_id: str, rid: str, kind: str, data: dict[str, Any]) -> None:
    rr = st.meet.get(race_id)
    rs = rr.state(rid) if rr is not None else None
    if kind == "undo":
        return
    bib = text(data, "bib", 20)
    runner = st.runners.get(bib)
    if runner is None or runner.race.id != race_id:
        raise Invalid(f"bib: no athlete {bib!r} in {st.event.races[race_id].name}")
    if (rs is None or rs.draw is None) and kind != "lot":
        raise Invalid(f"round: {rid} is not drawn yet")
    if kind == "scratch":
        where = rs.draw.where(bib) if rs is not None and rs.draw is not None else None
        if where is None:
            raise Invalid(f"bib: {bib} is not in the draw of {rid}")
        if rs is not None and where[0] in rs.heats_in:
            raise Invalid(f"bib: heat {where[0]} of {rid} has its result already")
    if kind == "add":
        heat, lane = _number(data, "heat"), _number(data, "lane")
        config = st.event.races[race_id].rounds
        assert config is not None and rs is not None and rs.draw is not None
        if lane > config.lanes or heat > rs.draw.heats:
            raise Invalid(f"lane: heat {heat} lane {lane} is not on this draw")
        if heat in rs.heats_in:
            raise Invalid(f"heat: heat {heat} of {rid} has its result already")
        taken = dict((ln, b) for b, ln in rs.draw.heat(heat))
        if lane in taken and taken[lane] != bib:
            raise Invalid(f"lane: lane {lane} of heat {heat} is bib {taken[lane]}'s")
    if kind == "lot" and (rs is None or bib not in rs.marks):
        raise Invalid(f"bib: {bib} has no result in {rid} to draw lots for")


async def post_adjust(request: Request) -> Response:
    rt = runtime(request)
    grant = guard(request, ("timer",))
    data = await json_object(request, 10_000)
    st = rt.state
    try:
        race_id = _race(st, request)
        rid = _round(st, race_id, data)
        kind = data.get("kind")
        if kind not in ADJUST_KINDS:
            raise Invalid(f"kind: one of {', '.join(ADJUST_KINDS)}")
        _check_adjust(st, race_id, rid, kind, data)
        target = text(data, "target", 100) if kind == "undo" else ""
        record = RoundAdjust(
            ident(data), race_id, rid, kind,
            bib=text(data, "bib", 20, required=False) if kind != "undo" else "",
            heat=_number(data, "heat") if kind == "add" else 0,
            lane=_number(data, "lane") if kind == "add" else 0,
            target=target, reason=text(data, "reason", 200, required=kind != "lot"),
            by=who(grant), at_ms=now_ms(),
        )  # fmt: skip
    except Invalid as exc:
        return invalid(exc)
    return JSONResponse({"results": await store(rt, [record])})


def get_rounds(request: Request) -> Response:
    """Every round of a race in rounds as JSON (public, like the race page)."""
    st = runtime(request).state
    race_id = str(request.path_params["race"])
    if not has_rounds(st, race_id):
        return JSONResponse({"error": f"no race {race_id!r} run in rounds here"}, 404)
    return JSONResponse(rounds_view(st, race_id))


def desk_view(state: RaceState, race_id: str) -> dict[str, Any]:
    """The rounds view with what the desk adds: the adjustments that may be undone."""
    view = rounds_view(state, race_id)
    rr = state.meet.get(race_id)
    view["adjusts"] = [
        {"key": a.key, "round": a.round, "kind": a.kind, "bib": a.bib, "heat": a.heat,
         "lane": a.lane, "reason": a.reason, "by": a.by}
        for a in (rr.adjusts if rr is not None else [])
    ]  # fmt: skip
    return view


ROUTES: list[BaseRoute] = [
    Route("/timer/rounds", desk_page),
    Route("/api/v1/lif", post_lif, methods=["POST"]),
    Route("/api/v1/rounds/{race}", get_rounds),
    Route("/api/v1/rounds/{race}/draw", post_draw, methods=["POST"]),
    Route("/api/v1/rounds/{race}/adjust", post_adjust, methods=["POST"]),
    Route("/api/v1/rounds/{race}/hand", post_hand, methods=["POST"]),
]

REGIONS = [
    race_summary(ROUNDS, "rounds.html", "rounds", "ro", rounds_view),
    race_summary(SROUNDS, "screen_rounds.html", "srounds", "sr", screen_view, keyed=True),
    Region(
        RDESK,
        "rounds_desk.html",
        "desk",
        "d",
        lambda c, t: desk_view(c.state, t["race"]),
        is_race,
        roles=("timer",),
        per_race=True,
    ),
]
