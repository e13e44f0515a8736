"""The timer's console: start guns, reader health, unmatched chips, corrections, the
announcer's feed and the problems list.

Routes (every write needs a token via :func:`livetrack.web.guards.guard`; every record it
writes carries who wrote it (the token's label), when (server time) and why (a reason)):

- ``GET /timer``: the console page.
- ``POST /api/v1/corrections``: ``{"id", "kind": "void"|"edit"|"add"|"undo", "bib", "point",
  "time", "target", "reason"}``. Timer: any. Marshal: only ``undo`` of a sighting at its own
  checkpoint, or of a status it reported itself.
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
from datetime import date, datetime, time
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from livetrack.domain import topics
from livetrack.domain.expect import start_ms
from livetrack.domain.plausible import implausible
from livetrack.domain.ranking import ALL
from livetrack.domain.readers import QUIET_MS
from livetrack.domain.records import (
    ChipAssign,
    Correction,
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
    json_body,
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
from livetrack.web.views import fmt_clock, fmt_elapsed, race_status

STATUSES = ("ok", "DNS", "DNF", "DQ")
KINDS = ("void", "edit", "add", "undo")


def race_day(state: RaceState, race_id: str = "") -> date:
    """The day a time typed on the console for ``race_id`` is read on: the day of its gun (or
    scheduled start) in the event's time zone, else the event's date."""
    at = state.gun_ms(race_id) if race_id in state.event.races else None
    if at is None:
        return state.event.date
    return datetime.fromtimestamp(at / 1000, state.event.tz).date()


def utc_offset(state: RaceState, day: date | None = None) -> str:
    """The event's UTC offset on ``day`` (default the event's date), ``+01:00`` (the console
    builds ISO times with it)."""
    noon = datetime.combine(day or state.event.date, time(12), state.event.tz)
    delta = noon.utcoffset()
    minutes = int(delta.total_seconds() // 60) if delta is not None else 0
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def timer_page(request: Request) -> HTMLResponse:
    r: Renderer = request.state.renderer
    st = runtime(request).state
    html = r.page(
        "timer.html", day=st.event.date.isoformat(), offset=utc_offset(st), races=st.event.races
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
    """A marshal may undo only its own entries (sightings and reports it wrote itself)."""
    me = who(grant)
    problem = st.problems.get(target)
    if problem is not None and target.startswith("sighting:"):
        if problem.by != me:
            raise HTTPException(403, "a marshal may undo only its own sightings and reports")
        return
    rec = find_record(st, target)
    if rec is None:
        raise HTTPException(404, f"nothing to undo with key {target!r} (yet)")
    if isinstance(rec, Sighting) and rec.point != grant.point:
        raise HTTPException(403, f"this marshal token is for {grant.point!r}, not {rec.point!r}")
    if isinstance(rec, Sighting | StatusChange) and rec.by == me:
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
    data = await json_body(request, 10_000)
    if not isinstance(data, dict):
        return invalid(Invalid("body must be a JSON object"))
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
    data = await json_body(request, 10_000)
    if not isinstance(data, dict):
        return invalid(Invalid("body must be a JSON object"))
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
    data = await json_body(request, 10_000)
    if not isinstance(data, dict):
        return invalid(Invalid("body must be a JSON object"))
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


# -- view models ---------------------------------------------------------------------------


def _describe(st: RaceState, rec: Record) -> tuple[str, int, str, str]:
    """(what, when, who, why) of one history record."""
    if isinstance(rec, Sighting):
        return (f"seen at {rec.point} {fmt_clock(st, rec.time_ms)}", rec.received_ms, rec.by, "")
    if isinstance(rec, Correction):
        if rec.kind == "undo":
            return (f"undo {rec.target}", rec.at_ms, rec.by, rec.reason)
        at = "" if rec.time_ms is None else f" → {fmt_clock(st, rec.time_ms)}"
        return (f"{rec.kind} {rec.point}{at}", rec.at_ms, rec.by, rec.reason)
    if isinstance(rec, StatusChange):
        return (f"status {rec.status}", rec.at_ms, rec.by, rec.reason)
    if isinstance(rec, ChipAssign):
        return (f"chip {rec.chip} assigned", 0, rec.by, "")
    return (rec.TYPE, 0, "", "")


def history_view(st: RaceState, bib: str) -> dict[str, Any] | None:
    r = st.runners.get(bib)
    if r is None:
        return None
    undone = {c.target for c in r.history if isinstance(c, Correction) and c.kind == "undo"}
    entries = []
    for rec in reversed(r.history):
        what, at, by, why = _describe(st, rec)
        undoable = isinstance(rec, Sighting | StatusChange) or (
            isinstance(rec, Correction) and rec.kind != "undo"
        )
        entries.append(
            {
                "key": rec.key,
                "what": what,
                "when": fmt_clock(st, at) if at else "",
                "by": by,
                "why": why,
                "undone": rec.key in undone,
                "undoable": undoable and rec.key not in undone,
            }
        )
    begin = start_ms(st, r)
    passings = []
    for cp in r.race.course.checkpoints:
        p = r.passings.get(cp.id)
        passings.append(
            {
                "id": cp.id,
                "name": cp.name,
                "clock": fmt_clock(st, p.time_ms) if p else "",
                "elapsed": fmt_elapsed(p.time_ms - begin) if p and begin is not None else "",
                "source": p.source if p else "",
                "confirmed": bool(p and p.confirmed),
                "flag": bool(p and p.contradiction),
            }
        )
    day = race_day(st, r.race.id)
    return {
        "bib": r.bib,
        "name": r.name,
        "race": r.race.name,
        "day": day.isoformat(),
        "offset": utc_offset(st, day),
        "status": r.status,
        "reason": r.status_reason,
        "passings": passings,
        "entries": entries,
    }


def guns_view(st: RaceState, now: int) -> dict[str, Any]:
    races = []
    for race in st.event.races.values():
        rs = race_status(st, race, now)
        waves = []
        whole = st.guns.get((race.id, ""), [])
        for w in race.waves:
            records = st.guns.get((race.id, w.id), [])
            waves.append(
                {
                    "id": w.id,
                    "started": bool(records or whole),
                    "name": w.name if w.id else "whole race",
                    "gun": fmt_clock(st, st.gun_ms(race.id, w.id))
                    if rs["status"] != "not started"
                    else "",
                    "records": [
                        {"key": k, "clock": fmt_clock(st, t), "current": i == len(records) - 1}
                        for i, (k, t) in enumerate(records)
                    ],
                }
            )
        if len(race.waves) > 1:
            waves.insert(
                0,
                {
                    "id": "",
                    "started": bool(whole),
                    "name": "all waves",
                    "gun": "",
                    "records": [
                        {"key": k, "clock": fmt_clock(st, t), "current": i == len(whole) - 1}
                        for i, (k, t) in enumerate(whole)
                    ],
                },
            )
        day = race_day(st, race.id)
        races.append({**rs, "waves": waves, "day": day.isoformat(), "offset": utc_offset(st, day)})
    return {"races": races}


def _feeds(st: RaceState, point: str) -> list[tuple[str, str]]:
    """(race, checkpoint) pairs that timing point ``point`` feeds."""
    tp = st.event.points.get(point)
    if tp is None:
        return []
    return [
        (race.id, cp.id)
        for race in st.event.races.values()
        for cp in race.course.checkpoints
        if cp.id in tp.checkpoints
    ]


def _offset(ms: int | None) -> str:
    if ms is None:
        return ""
    if abs(ms) < 60_000:
        return f"{ms / 1000:+.1f} s"
    return ("+" if ms > 0 else "-") + fmt_elapsed(abs(ms))


def readers_view(st: RaceState, now: int, heard_now: int | None = None) -> dict[str, Any]:
    """Reader health at event time ``now``. Reads are heard on the server's wall clock, so
    silence is measured against ``heard_now`` (the wall clock; default ``now``): a simulated
    or replayed race runs ahead of the wall clock, and its readers are not quiet for that."""
    heard = now if heard_now is None else heard_now
    running: dict[str, int] = {}
    for race in st.event.races.values():
        rs = race_status(st, race, now)
        if rs["status"] == "running" and rs["gun_ms"] is not None:
            running[race.id] = rs["gun_ms"]
    ids = list(dict.fromkeys([*st.event.readers, *st.readers.readers, *st.read_conflicts]))
    rows = []
    for rid in ids:
        stats = st.readers.get(rid)
        cfg = st.event.readers.get(rid)
        point = stats.point if stats else (cfg.point if cfg else "")
        feeds = [(race, cp) for race, cp in _feeds(st, point) if race in running]
        alert = ""
        if feeds:
            if stats is None or stats.last_heard_ms is None:
                passed = any(st.boards.count(race, cp, ALL) for race, cp in feeds if cp != "")
                if passed:
                    alert = "no reads, but runners have passed this point"
            elif heard - stats.last_heard_ms > QUIET_MS:
                alert = f"quiet for {fmt_elapsed(heard - stats.last_heard_ms)} during a race"
        offset = stats.clock_offset_ms if stats else None
        rows.append(
            {
                "id": rid,
                "point": point,
                "connection": stats.connection(heard) if stats else "silent",
                "last_read": fmt_clock(st, stats.last_read_ms)
                if stats and stats.last_read_ms
                else "",
                "ago": fmt_elapsed(stats.quiet_for_ms(heard))
                if stats and stats.last_heard_ms
                else "",
                "per_minute": stats.per_minute(heard) if stats else 0,
                "reads": stats.reads if stats else 0,
                "offset": _offset(offset),
                "alert": alert,
                "conflicts": st.read_conflicts.get(rid, 0),
            }
        )
    return {"rows": rows, "alerts": sum(1 for r in rows if r["alert"] or r["conflicts"])}


def announce_view(st: RaceState, limit: int = 12) -> dict[str, Any]:
    latest: list[tuple[int, str]] = []
    for feed in st.finishers.values():
        latest.extend(feed.islice(-limit, None, reverse=True))
    latest.sort(reverse=True)
    rows = []
    for t, bib in latest[:limit]:
        r = st.runners[bib]
        finish = r.race.course.checkpoints[-1].id
        rows.append(
            {
                "bib": bib,
                "name": r.name,
                "club": r.p.club,
                "race": r.race.name,
                "ranked": r.race.ranked,
                "position": st.position(r, finish, ALL),
                "category": r.category,
                "category_position": st.position(r, finish, r.category) if r.category else None,
                "time": fmt_elapsed(st.elapsed(r, finish)),
                "clock": fmt_clock(st, t),
            }
        )
    return {"rows": rows}


def problems_view(st: RaceState, limit: int = 200) -> dict[str, Any]:
    """Everything the timer should look at: records the fold could not place, contradictions,
    manual-only passings, missing splits and impossible paces."""
    items: list[dict[str, Any]] = [
        {"kind": p.kind, "bib": p.bib, "point": p.point, "detail": p.detail, "key": p.key}
        for p in st.problems.values()
    ]
    for r in st.runners.values():
        cps = r.race.course.checkpoints
        last = max((i for i, cp in enumerate(cps) if cp.id in r.passings), default=-1)
        prev_t = st.gun_ms(r.race.id, r.p.wave)
        prev_d = 0.0
        for i, cp in enumerate(cps):
            p = r.passings.get(cp.id)
            base = {"bib": r.bib, "point": cp.id, "key": ""}
            if p is None:
                if 0 < i < last and r.status == "ok":
                    items.append({**base, "kind": "missing-split", "detail": f"no {cp.name} time"})
                continue
            if p.contradiction:
                seen = ", ".join(fmt_clock(st, t) for t, _ in r.inputs.sightings.get(cp.id, ()))
                items.append(
                    {
                        **base,
                        "kind": "contradiction",
                        "detail": f"{p.source} {fmt_clock(st, p.time_ms)}; marshal saw {seen}",
                    }
                )
            elif p.source == "manual":
                items.append(
                    {**base, "kind": "manual-only", "detail": f"seen {fmt_clock(st, p.time_ms)}"}
                )
            if i > 0 and prev_t is not None:
                dt = (p.time_ms - prev_t) / 1000
                metres = cp.distance_m - prev_d
                if metres > 0 and (dt <= 0 or metres / dt > r.race.max_speed_mps):
                    items.append(
                        {
                            **base,
                            "kind": "impossible-pace",
                            "detail": f"{metres:.0f} m in {fmt_elapsed(int(dt * 1000))}",
                        }
                    )
            prev_t, prev_d = p.time_ms, cp.distance_m
    return {"rows": items[:limit], "count": len(items)}


def unmatched_view(st: RaceState) -> dict[str, Any]:
    rows = []
    for chip, count in sorted(st.unmatched.items()):
        reads = st.reads_by_chip.get(chip, [])
        last = max((t for _, t in reads), default=None)
        rows.append({"chip": chip, "reads": count, "last": fmt_clock(st, last)})
    return {"rows": rows}


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
    """A panel of the timer's console: one ``timer.html`` block, for timers only."""
    return Region(
        kind, "timer.html", block, var, lambda c, t: view(c.state), touch_s=touch_s, derive=derive
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
