"""The timer's console: start guns, reader health, unmatched chips, corrections, the
announcer's feed and the problems list.

Routes (every write needs a token via :func:`livetrack.web.guards.guard`; every record it
writes carries who wrote it (the token's label), when (server time) and why (a reason)):

- ``GET /timer``: the console page.
- ``POST /api/v1/corrections``: ``{"id", "kind": "void"|"edit"|"add"|"undo", "bib", "point",
  "time", "target", "reason"}``. Timer: any. Marshal: only ``undo`` of a sighting or an
  obstacle judgement it made at its own checkpoint, or of a status it reported itself.
- ``POST /api/v1/status``: ``{"id", "bib", "status": "DNS"|"DNF"|"DQ"|"ok", "reason"}``.
  Timer: any status; marshal: ``DNF`` only.
- ``POST /api/v1/assign``: ``{"id", "chip", "bib"}`` (timer): the chip's reads so far count.
- ``GET /api/v1/history/{bib}``: the runner's passings and audited history, as HTML (timer).

The start gun is ``POST /api/v1/races/{race}/gun`` (``livetrack.web.api``); a late press is
corrected by posting the real time (the latest gun wins) and a gun is undone by an ``undo``
correction whose target is the gun's key.

Topic kinds: ``guns``, ``readers``, ``announce``, ``problems``, ``unmatched``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from livetrack.domain import topics
from livetrack.domain.plausible import implausible
from livetrack.domain.records import (
    ChipAssign,
    Correction,
    Judgement,
    Record,
    Sighting,
    StatusChange,
    TokenRecord,
)
from livetrack.domain.state import RaceState, Runner
from livetrack.domain.topics import Kind
from livetrack.service.readers import ReaderManager
from livetrack.service.runtime import clock_of, now_ms
from livetrack.web.guards import (
    Invalid,
    guard,
    ident,
    invalid,
    json_object,
    passing_time,
    runtime,
    store,
    text,
    when,
    who,
)
from livetrack.web.regions import Ctx, Derive, Region
from livetrack.web.render import Renderer
from livetrack.web.results import accuracy_view
from livetrack.web.timer_views import (
    announce_view,
    guns_view,
    history_view,
    problems_view,
    readers_view,
    unmatched_view,
    utc_offset,
)

STATUSES = ("ok", "DNS", "DNF", "DQ")
KINDS = ("void", "edit", "add", "undo")


def timer_page(request: Request) -> HTMLResponse:
    r: Renderer = request.state.renderer
    st = runtime(request).state
    html = r.page(
        "timer.html",
        day=st.event.date.isoformat(),
        offset=utc_offset(st),
        races=st.event.races,
        topics=[],  # its script subscribes them once signed in; the page says how fresh
    )
    return HTMLResponse(html)


# -- writes ------------------------------------------------------------------------------


def _runner(st: RaceState, bib: str) -> Runner:
    r = st.runners.get(bib)
    if r is None:
        raise Invalid(f"bib: no runner with bib {bib!r}")
    return r


def _on_course(r: Runner, point: str) -> None:
    if point not in {cp.id for cp in r.race.course.checkpoints}:
        raise Invalid(f"point: {point!r} is not on {r.race.name}'s course")


def find_record(st: RaceState, key: str) -> Record | None:
    """The record with ``key`` among runners' histories (or that raised a problem)."""
    for r in st.runners.values():
        for rec in r.history:
            if rec.key == key:
                return rec
    return None


def _marshal_may_undo(st: RaceState, grant: TokenRecord, target: str) -> None:
    """A marshal may undo only its own entries (sightings, judgements and reports it wrote
    itself)."""
    me = who(grant)
    problem = st.problems.get(target)
    if problem is not None and target.startswith(("sighting:", "judgement:")):
        if problem.by != me:
            raise HTTPException(403, "a marshal may undo only its own sightings and reports")
        return
    rec = find_record(st, target)
    if rec is None:
        raise HTTPException(404, f"nothing to undo with key {target!r} (yet)")
    if isinstance(rec, Sighting | Judgement) and rec.point != grant.point:
        raise HTTPException(403, f"this marshal token is for {grant.point!r}, not {rec.point!r}")
    if isinstance(rec, Sighting | StatusChange | Judgement) and rec.by == me:
        return
    raise HTTPException(403, "a marshal may undo only its own sightings and reports")


def _marshal_may_report(grant: TokenRecord, runner: Runner) -> None:
    """A marshal may report DNF only for a runner of a race through its checkpoint who has
    not finished."""
    course = runner.race.course.checkpoints
    if grant.point not in {cp.id for cp in course}:
        raise HTTPException(
            403, f"{runner.race.name} does not pass {grant.point!r}: not this marshal's runner"
        )
    if course[-1].id in runner.passings:
        raise HTTPException(403, f"bib {runner.bib} has finished: only the timer may change that")


async def post_correction(request: Request) -> Response:
    rt = runtime(request)
    grant = guard(request, ("marshal", "timer"))
    data = await json_object(request, 10_000)
    st = rt.state
    try:
        kind = data.get("kind")
        if kind not in KINDS:
            raise Invalid(f"kind: one of {', '.join(KINDS)}")
        if grant.role == "marshal" and kind != "undo":
            raise HTTPException(403, "a marshal token may not do this (needs timer)")
        cid = ident(data)
        at = now_ms()
        if kind == "undo":
            target = text(data, "target", 200)
            if grant.role == "marshal":
                _marshal_may_undo(st, grant, target)
            reason = text(data, "reason", 200, required=False)
            record = Correction(cid, "undo", target=target, reason=reason, by=who(grant), at_ms=at)
        else:
            bib = text(data, "bib", 32)
            point = text(data, "point", 64)
            _on_course(_runner(st, bib), point)
            t = None if kind == "void" else passing_time(st, bib, when(data))
            reason = text(data, "reason", 200)
            if t is not None and data.get("confirm") is not True:
                why = implausible(st, st.runners[bib], point, t)
                if why:
                    return JSONResponse(
                        {"error": f"time: {why}. Send it again with confirm to store it anyway.",
                         "confirm": True},
                        status_code=422,
                    )  # fmt: skip
            record = Correction(cid, kind, bib, point, t, "", reason, who(grant), at)
    except Invalid as exc:
        return invalid(exc)
    return JSONResponse({"results": await store(rt, [record])})


async def post_status(request: Request) -> Response:
    rt = runtime(request)
    grant = guard(request, ("marshal", "timer"))
    data = await json_object(request, 10_000)
    try:
        status = data.get("status")
        if status not in STATUSES:
            raise Invalid(f"status: one of {', '.join(STATUSES)}")
        if grant.role == "marshal" and status != "DNF":
            raise HTTPException(403, "a marshal may report DNF only (DNS/DQ need the timer)")
        bib = text(data, "bib", 32)
        runner = _runner(rt.state, bib)
        if grant.role == "marshal":
            _marshal_may_report(grant, runner)
        reason = text(data, "reason", 200, required=status != "ok")
        record = StatusChange(ident(data), bib, status, reason, who(grant), now_ms())
    except Invalid as exc:
        return invalid(exc)
    return JSONResponse({"results": await store(rt, [record])})


async def post_assign(request: Request) -> Response:
    rt = runtime(request)
    grant = guard(request, ("timer",))
    data = await json_object(request, 10_000)
    try:
        chip = text(data, "chip", 64)
        bib = text(data, "bib", 32)
        _runner(rt.state, bib)
        record = ChipAssign(ident(data), chip, bib, who(grant))
    except Invalid as exc:
        return invalid(exc)
    return JSONResponse({"results": await store(rt, [record])})


def get_readers(request: Request) -> Response:
    """The native readers' connections as this process sees them (timer only): whether this
    process runs them (``leading``; another process does when false) and each reader's
    connector health (:meth:`~livetrack.service.readers.ReaderManager.health`)."""
    guard(request, ("timer",))
    manager: ReaderManager | None = getattr(request.app.state, "readers", None)
    if manager is None:
        return JSONResponse({"leading": False, "readers": []})
    return JSONResponse({"leading": manager.leading, "readers": manager.health()})


def get_history(request: Request) -> Response:
    rt = runtime(request)
    guard(request, ("timer",))
    view = history_view(rt.state, request.path_params["bib"])
    if view is None:
        return JSONResponse({"error": "no runner with that bib"}, status_code=404)
    r: Renderer = request.state.renderer
    return HTMLResponse(r.block("timer.html", "history", h=view, offset=utc_offset(rt.state)))


GUNS = topics.declare("guns", (), "staff")
READERS = topics.declare("readers", (), "staff")
ANNOUNCE = topics.declare("announce", (), "staff")
ACCURACY = topics.declare("accuracy", (), "staff")


def _console(
    kind: Kind,
    block: str,
    var: str,
    view: Callable[[RaceState], Any],
    touch_s: float = 0.0,
    derive: Derive | None = None,
) -> Region:
    """A panel of the timer's console: one ``timer.html`` block, for timers only; its pushes
    carry the rows and parts that changed (those the block marks)."""
    return Region(
        kind,
        "timer.html",
        block,
        var,
        lambda c, t: view(c.state),
        touch_s=touch_s,
        derive=derive,
        keyed=True,
    )


def _announce_dirty(c: Ctx, dirty: set[str], watched: Collection[str]) -> set[str]:
    """The announcer's list is dirty in the tick a finish feed changes (while watched)."""
    name = ANNOUNCE()
    if name in watched and any(t.startswith("feed:") for t in dirty):
        return {name}
    return set()


def _accuracy_dirty(c: Ctx, dirty: set[str], watched: Collection[str]) -> set[str]:
    """Prediction accuracy is dirty in the tick a finish feed changes (while watched)."""
    name = ACCURACY()
    if name in watched and any(t.startswith("feed:") for t in dirty):
        return {name}
    return set()


ROUTES: list[BaseRoute] = [
    Route("/timer", timer_page),
    Route("/api/v1/corrections", post_correction, methods=["POST"]),
    Route("/api/v1/status", post_status, methods=["POST"]),
    Route("/api/v1/assign", post_assign, methods=["POST"]),
    Route("/api/v1/history/{bib}", get_history),
    Route("/api/v1/readers", get_readers),
]

#: The time-dependent panels are drawn again on their own period while watched (the guns'
#: clocks every second; the announcer's list and the prediction accuracy at once when
#: finishes come in, see ``_announce_dirty``; the accuracy also as the forecasts observe the
#: passings behind the latest).
REGIONS: list[Region] = [
    _console(GUNS, "guns", "g", lambda st: guns_view(st, clock_of(st)), 1.0),
    _console(READERS, "readers", "rd", lambda st: readers_view(st, clock_of(st), now_ms()), 2.0),
    _console(ANNOUNCE, "announce", "a", announce_view, 2.0, _announce_dirty),
    _console(ACCURACY, "accuracy", "ac", accuracy_view, 10.0, _accuracy_dirty),
    _console(topics.PROBLEMS, "problems", "pr", problems_view, 3.0),
    _console(topics.UNMATCHED, "unmatched", "u", unmatched_view),
]
